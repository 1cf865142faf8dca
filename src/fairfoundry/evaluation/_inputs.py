"""Reading and validating the prediction table given to :func:`fairfoundry.evaluate`.

Validation happens once, here, so the metric engine can trust its arrays. Every problem raises
:class:`~fairfoundry._errors.FairfoundryError` naming the column and the row (1-based data row,
the header not counted, plus the sample id when there is an id column).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import FairfoundryError, did_you_mean

log = logging.getLogger(__name__)

__all__ = ["ID_CANDIDATES", "score_candidates", "resolve_column", "find_score_column",
           "find_id_column", "Table", "load_table"]

#: column names tried, in order, when no id column is given.
ID_CANDIDATES = ("sample_id", "image_id", "Image Index", "image_index", "image", "image_path",
                 "path", "study_id", "dicom_id", "id")

#: score column names tried when there is a single label.
_SINGLE_SCORE = ("y_score", "score", "prob", "y_prob", "proba", "probability", "p", "pred", "y_pred_proba",
                 "prediction")


def score_candidates(label: str) -> list[str]:
    """Score column names auto-detected for ``label``, in order of preference."""
    return [f"prob_{label}", f"p_{label}", f"score_{label}", f"pred_{label}", f"{label}_prob",
            f"{label}_score", f"{label}_pred", f"{label}_p", f"y_score_{label}"]


def _lookup(frame: pd.DataFrame, name: str) -> str | None:
    if name in frame.columns:
        return name
    lowered = {str(c).lower(): c for c in frame.columns}
    return lowered.get(name.lower())


#: parameter of :func:`fairfoundry.evaluate` behind each flag whose name differs
_PARAM_OF_FLAG = {"--id": "id_col", "--jobs": "n_jobs"}


def param_name(option: str) -> str:
    """The library parameter named by ``option`` (``--split-col`` -> ``split_col``)."""
    return _PARAM_OF_FLAG.get(option, option.lstrip("-").replace("-", "_"))


def resolve_column(frame: pd.DataFrame, name: str, *, option: str, source: str) -> str:
    """Return ``name`` if it is a column of ``frame`` (exact, else case-insensitive), or raise.

    ``option`` is the parameter (``sensitive``; a flag spelling ``--sensitive`` is accepted):
    the message names it as ``sensitive='sexe': ...``, and the CLI shows its flag.
    """
    found = _lookup(frame, name)
    if found is None:
        param = param_name(option)
        raise FairfoundryError(
            f"{param}={name!r}: column not found in {source}",
            hint=did_you_mean(name, frame.columns, what="columns"), param=param,
        )
    return str(found)


def find_score_column(frame: pd.DataFrame, label: str, *, single: bool, source: str) -> str:
    """Auto-detect the score column of ``label`` (see :func:`score_candidates`)."""
    tried = score_candidates(label) + (list(_SINGLE_SCORE) if single else [])
    for cand in tried:
        found = _lookup(frame, cand)
        if found is not None and found != label:
            return str(found)
    raise FairfoundryError(
        f"no score column found for label {label!r} in {source} (tried {', '.join(tried[:6])}, ...)",
        hint="name it with --score; " + did_you_mean(f"prob_{label}", frame.columns, what="columns"),
    )


def find_id_column(frame: pd.DataFrame) -> str | None:
    """The first column named like a sample id (:data:`ID_CANDIDATES`), or None."""
    for cand in ID_CANDIDATES:
        found = _lookup(frame, cand)
        if found is not None:
            return str(found)
    return None


@dataclass
class Table:
    """A loaded prediction table and where it came from."""

    frame: pd.DataFrame
    source: str
    fingerprint: str
    path: Path | None = None
    extra: dict = field(default_factory=dict)


def load_table(data) -> Table:
    """Load ``data`` (DataFrame, or path to CSV / TSV / Parquet) into a :class:`Table`."""
    from .._io import file_fingerprint, frame_fingerprint, read_table

    if isinstance(data, pd.DataFrame):
        if data.shape[0] == 0:
            raise FairfoundryError("the input DataFrame has no rows")
        frame = data.reset_index(drop=True)
        return Table(frame, "DataFrame", "frame:" + frame_fingerprint(frame))
    path = Path(data)
    frame = read_table(path, what="input")
    if frame.shape[1] < 2:
        raise FairfoundryError(
            f"input file {path} has a single column ({frame.columns[0]!r})",
            hint="is it comma-separated? use a .tsv suffix for tab-separated files",
        )
    return Table(frame.reset_index(drop=True), str(path), "sha256:" + file_fingerprint(path), path)


def _show(value) -> str:
    """repr of a cell value without numpy's type wrapper (``2``, not ``np.int64(2)``)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


class RowNamer:
    """Names rows in messages: ``row 12 (sample_id '0001.png')``, 1-based, header not counted."""

    def __init__(self, frame: pd.DataFrame, id_col: str | None):
        self.frame = frame
        self.id_col = id_col

    def __call__(self, i: int) -> str:
        ref = f"row {int(i) + 1}"
        if self.id_col is not None:
            ref += f" ({self.id_col} {_show(self.frame[self.id_col].iloc[int(i)])})"
        return ref


def check_unique_ids(frame: pd.DataFrame, id_col: str) -> None:
    """Raise if ``id_col`` has missing or duplicate values, naming both rows."""
    ids = frame[id_col]
    missing = np.flatnonzero(ids.isna().to_numpy())
    if missing.size:
        raise FairfoundryError(f"id column {id_col!r} is empty at row {missing[0] + 1}",
                               hint="every row needs a sample id; or choose another column with --id")
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        first = np.flatnonzero(dup)[0]
        value = ids.iloc[first]
        rows = np.flatnonzero((ids == value).to_numpy())[:5] + 1
        n_dup = int(ids.duplicated().sum())
        raise FairfoundryError(
            f"duplicate sample id {_show(value)} in column {id_col!r} (rows {', '.join(map(str, rows))}); "
            f"{n_dup} duplicate row(s) in all",
            hint="one row per sample (wide format: one label/score column pair per finding); "
                 "or name a unique column with --id",
        )


def binary_labels(frame: pd.DataFrame, col: str, rows: RowNamer) -> np.ndarray:
    """Column ``col`` as int8 0/1, or raise naming the first bad row."""
    raw = frame[col]
    if raw.dtype == bool:
        return raw.to_numpy().astype(np.int8)
    num = pd.to_numeric(raw, errors="coerce")
    if raw.dtype == object or str(raw.dtype).startswith(("string", "str")):
        low = raw.astype("string").str.strip().str.lower()
        num = num.where(~low.isin(["true", "false"]), (low == "true").astype(float))
    values = num.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        seen = pd.unique(raw.dropna())[:8]
        what = "is missing" if pd.isna(raw.iloc[i]) else f"is {_show(raw.iloc[i])}"
        raise FairfoundryError(
            f"label column {col!r} must be binary (0/1): {rows(i)} {what}; "
            f"{int(bad.sum())} row(s) are not 0/1",
            hint=f"values seen: {', '.join(map(_show, seen))}; encode the positive class as 1",
        )
    return values.astype(np.int8)


def numeric_scores(frame: pd.DataFrame, col: str, rows: RowNamer, *, logits: bool) -> np.ndarray:
    """Column ``col`` as float64 probabilities (sigmoid applied when ``logits``), or raise."""
    raw = frame[col]
    num = pd.to_numeric(raw, errors="coerce")
    values = num.to_numpy(dtype=np.float64, na_value=np.nan)
    not_numeric = np.isnan(values) & raw.notna().to_numpy()
    if not_numeric.any():
        i = int(np.flatnonzero(not_numeric)[0])
        raise FairfoundryError(
            f"score column {col!r} is not numeric: {rows(i)} holds {_show(raw.iloc[i])}",
            hint=f"{int(not_numeric.sum())} non-numeric value(s); scores must be numbers",
        )
    missing = ~np.isfinite(values)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        what = "is missing (NaN)" if np.isnan(values[i]) else f"is {values[i]} (not finite)"
        raise FairfoundryError(
            f"score column {col!r}: {rows(i)} {what}; {int(missing.sum())} row(s) without a finite score",
            hint="drop those rows or fill in the model's score; fairfoundry never imputes",
        )
    if logits:
        return 1.0 / (1.0 + np.exp(-values))
    outside = (values < 0.0) | (values > 1.0)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise FairfoundryError(
            f"score column {col!r} has values outside [0, 1]: {rows(i)} is {values[i]:g} "
            f"(range {values.min():g} to {values.max():g})",
            hint="pass --scores-are-logits (scores_are_logits=True) if these are logits",
        )
    return values
