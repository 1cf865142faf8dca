"""``load_dataset``: a spec's files -> a harmonised manifest, in named steps (ids, labels,
attributes, derived columns, split, file check)."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import FairfoundryError
from ._harmonise import (
    UNKNOWN,
    add_geography,
    age_from_dates,
    harmonise_age,
)
from ._spec_registry import SPECS, get_spec
from ._spec_schema import ATTRIBUTE_HARMONISERS, AttributeSpec, DatasetSpec
from ._spec_tables import RawFrame, _base_frame, _need, _plain, _template

__all__ = ["DatasetLoad", "load_dataset"]

log = logging.getLogger(__name__)


@dataclass
class DatasetLoad:
    """Result of :func:`load_dataset`: the manifest, files that could not be read, notes."""

    manifest: Any
    spec: DatasetSpec
    root: Path
    problems: Any = None
    notes: list[str] = field(default_factory=list)


def _resolve_column(attr: AttributeSpec, frame) -> str | None:
    """The first of an attribute's column names present in ``frame`` (None if none is)."""
    for name in [attr.column, *attr.alternatives]:
        if name is not None and name in frame.columns:
            return name
    return None


def _harmonise_attribute(name: str, attr: AttributeSpec, frame, *, source: str, notes: list[str]):
    import numpy as np
    import pandas as pd

    n = len(frame)
    if attr.value is not None and attr.column is None:
        raw = pd.Series([attr.value] * n, index=frame.index)
    elif name == "age" and attr.column is None:
        if attr.birth_date:
            b = _need(frame, attr.birth_date, what="age", source=source)
            s = _need(frame, attr.study_date or "", what="age", source=source)
            years = pd.Series(age_from_dates(b, s), index=frame.index)
        else:
            by = pd.to_numeric(_need(frame, attr.birth_year, what="age", source=source),
                               errors="coerce")
            sd = _need(frame, attr.study_date or "", what="age", source=source)
            study_year = pd.to_numeric(sd.astype(str).str.slice(0, 4), errors="coerce")
            years = (study_year - by).astype(float)
        bad = years.isna() & frame[attr.birth_date or attr.birth_year].notna()
        if bad.any():
            notes.append(f"age: {int(bad.sum())} row(s) with an invalid birth or study date "
                         f"left unknown")
        return years.where((years >= 0) & (years <= 120))
    else:
        raw = _need(frame, attr.column, what=name, source=source)
    if name == "age":
        ages = harmonise_age(raw, unit=attr.unit, strict=attr.strict,
                             name=attr.column or "age")
        if ages.attrs.get("implausible"):
            notes.append(f"age: {ages.attrs['implausible']} implausible value(s) (<0 or >120 "
                         f"years) set to unknown")
        return ages.to_numpy()
    func = ATTRIBUTE_HARMONISERS[name]
    label = attr.column or name
    if func == "free":
        return _free_values(raw, attr.map or {}, attr.missing)
    out = func(raw, mapping=attr.map, strict=attr.strict, name=label, missing=attr.missing)
    return np.asarray(out, dtype=object)


def _free_values(raw, mapping: dict, missing: list):
    """Free-text attributes (site, language, ...): map what the spec maps, keep the rest."""
    import numpy as np

    from ._harmonise import map_values

    codes, out = map_values(raw, mapping, missing=missing, fallback=lambda u, _key: _plain(u))
    table = np.array([*out, UNKNOWN], dtype=object)
    return table[codes]


def _labels(spec: DatasetSpec, frame, *, source: str):
    import numpy as np
    import pandas as pd

    lab = spec.labels
    out = {}
    if lab.kind == "none":
        return out
    if lab.kind == "multiclass":
        col = _need(frame, lab.column, what="labels", source=source)
        values = col.map(lambda v: lab.map.get(v, v)) if lab.map else col
        if lab.classes:
            bad = values.notna() & ~values.isin(lab.classes)
            if bad.any():
                counts = values[bad].value_counts().head(10).to_dict()
                raise FairfoundryError(f"{source}: label column {lab.column!r} has values outside "
                                       f"the spec's classes: {counts}",
                                       hint=f"classes are: {', '.join(lab.classes)}")
        out["label"] = values.to_numpy(dtype=object)
        return out
    if lab.kind == "binary":
        col = _need(frame, lab.column, what="labels", source=source)
        if lab.positive:
            out["label"] = np.where(col.isna(), np.nan, col.isin(lab.positive).astype(float))
        else:
            out["label"] = pd.to_numeric(col, errors="coerce").to_numpy()
        return out
    if lab.kind in ("onehot", "multilabel_columns"):
        cols = lab.columns or lab.classes
        for c in cols:
            values = pd.to_numeric(_need(frame, c, what="labels", source=source), errors="coerce")
            if lab.uncertain != "keep":
                values = values.replace(-1.0, {"zero": 0.0, "one": 1.0, "nan": np.nan}[lab.uncertain])
            out[c] = values.to_numpy()
        if lab.kind == "onehot":
            mat = np.column_stack([out[c] for c in cols])
            idx = np.nanargmax(np.nan_to_num(mat, nan=-1), axis=1)
            out = {**{c: out[c] for c in cols}, "label": np.asarray(cols, dtype=object)[idx]}
        return out
    if lab.kind == "multilabel_string":
        col = _need(frame, lab.column, what="labels", source=source).fillna("")
        sets = col.astype(str).str.split(re.escape(lab.separator), regex=True)
        exploded = sets.explode().str.strip()
        found = set(exploded.unique()) - {""}
        if lab.classes:
            extra = sorted(found - set(lab.classes) - set(lab.map or {}))
            if extra:
                counts = exploded[exploded.isin(extra)].value_counts().head(10).to_dict()
                raise FairfoundryError(f"{source}: label column {lab.column!r} has findings "
                                       f"outside the spec's classes: {counts}")
        classes = lab.classes or sorted(found)
        dummies = pd.crosstab(exploded.index, exploded).reindex(index=frame.index, fill_value=0)
        for c in classes:
            out[c] = (dummies[c].to_numpy() > 0).astype(int) if c in dummies else np.zeros(len(frame), int)
        return out
    raise FairfoundryError(f"unknown label kind {lab.kind!r}")  # pragma: no cover


def load_dataset(spec: DatasetSpec | str, root: str | os.PathLike, *, check_files: bool = False,
                 strict: bool = False, bins: list[float] | None = None) -> DatasetLoad:
    """Read a dataset's metadata under ``root`` into a harmonised manifest, following its spec.

    Parameters
    ----------
    spec : a :class:`DatasetSpec` or a registered name (``fairfoundry datasets list``) or a
        path to a spec YAML file
    root : folder holding the dataset's files as downloaded
    check_files : check that every image path exists (missing ones go to ``problems``)
    strict : raise on the first missing image instead of listing it
    bins : age bin edges (default: the spec's ``age_bins``)

    Returns
    -------
    DatasetLoad
        ``manifest`` with ``sample_id``, ``patient_id``, ``path``, ``split``, label columns,
        each attribute of the spec harmonised (plus ``age_group``, ``region``,
        ``income_group`` when age / country are known) and the spec's extras; ``problems``
        (``path``, ``error``); ``notes`` on values set to unknown.

    Raises
    ------
    FairfoundryError
        Unknown dataset (lists the known), missing root or files (says which), attribute values
        outside a spec's value map (lists them with counts), malformed ages.
    """
    if not isinstance(spec, DatasetSpec):
        spec = get_spec(spec)
    root = Path(root).expanduser()  # "~/data/HAM10000" as in the docs
    if not root.exists():
        raise FairfoundryError(f"dataset root {root} does not exist")
    if not root.is_dir():
        raise FairfoundryError(f"dataset root {root} is not a directory")
    notes: list[str] = []
    raw = _base_frame(spec, root, notes)
    if strict and raw.problems is not None and len(raw.problems):
        first = raw.problems.iloc[0]
        raise FairfoundryError(f"{spec.name}: {len(raw.problems)} file(s) under {root} could not "
                               f"be read, e.g. {first['path']}: {first['error']}",
                               hint="drop --strict to list them in problems.csv and go on")
    frame = raw.frame.reset_index(drop=True)
    out = _ids(spec, frame, notes)
    for k, v in _labels(spec, frame, source=spec.name).items():
        out[k] = v
    _add_attributes(out, spec, frame, raw, notes)
    out = _derived_columns(out, spec, frame, bins)
    _add_split(out, spec, frame, notes)
    dup = out["sample_id"].duplicated()
    if dup.any():
        raise FairfoundryError(f"{spec.name}: {int(dup.sum())} duplicated sample id(s), e.g. "
                               f"{out.loc[dup, 'sample_id'].head(3).tolist()}")
    probs = _file_problems(out, spec, root, raw.problems, check_files=check_files, strict=strict)
    return DatasetLoad(manifest=out, spec=spec, root=root, problems=probs, notes=notes)


# ------------------------------------------------------------------ the steps of load_dataset
def _ids(spec: DatasetSpec, frame, notes: list[str]):
    """A new frame with ``sample_id``, ``path`` and ``patient_id`` (the sample id where the
    dataset records no patient), plus every DICOM header column."""
    import pandas as pd

    src = spec.name
    out = pd.DataFrame(index=frame.index)
    if spec.format in ("npz_bundle", "dicom"):
        out["sample_id"] = frame["sample_id"].astype(str)
        out["path"] = frame["path"].astype(str)
        for c in frame.columns:
            if c not in out.columns and spec.format == "dicom":
                out[c] = frame[c]
        if spec.format == "npz_bundle":
            out["split"] = frame["split"]
            for c in [c for c in frame.columns if c.startswith("label")]:
                out[c] = frame[c]
    else:
        sid = spec.sample_id or "file"
        out["sample_id"] = _need(frame, sid, what="sample_id", source=src).map(_plain).astype(str)
        if spec.path:
            out["path"] = _template(frame, spec.path, what="path")
    if spec.patient_id:
        pid = _need(frame, spec.patient_id, what="patient_id", source=src)
        out["patient_id"] = pid.map(lambda v: None if v is None or v != v else _plain(v))
        n_missing = int(out["patient_id"].isna().sum())
        if n_missing:
            out["patient_id"] = out["patient_id"].fillna(out["sample_id"])
            notes.append(f"patient_id: {n_missing} row(s) without a patient id use their sample_id "
                         f"(each counts as its own patient)")
    elif "patient_id" not in out.columns:
        out["patient_id"] = out["sample_id"]
        notes.append("no patient id in this dataset: each image counts as its own patient")
    return out


def _add_attributes(out, spec: DatasetSpec, frame, raw: RawFrame, notes: list[str]) -> None:
    """Each attribute of the spec, harmonised, into ``out`` (unknown when its optional column or
    table is absent; a value outside the map names the file it came from)."""
    import numpy as np

    src = spec.name
    for name, attr in spec.attributes.items():
        if spec.format == "dicom" and attr.column is None and attr.value is None:
            continue
        if spec.format == "dicom" and attr.column in (None, name) and name in frame.columns:
            col = frame[name]
            out[name] = col if name == "age" else col.astype(object).where(col.notna(), UNKNOWN)
            continue
        if attr.column is not None:
            found = _resolve_column(attr, frame)
            if found is None and (raw.skipped_tables or attr.optional):
                out[name] = np.nan if name == "age" else UNKNOWN
                where = (f"is in a table that was not found ({', '.join(raw.skipped_tables)})"
                         if raw.skipped_tables else "is not in the files")
                notes.append(f"{name}: column {attr.column!r} {where}; {name} is unknown")
                continue
            if found is not None and found != attr.column:
                attr = attr.model_copy(update={"column": found})
        try:
            out[name] = _harmonise_attribute(name, attr, frame, source=src, notes=notes)
        except FairfoundryError as exc:
            where = raw.column_files.get(str(attr.column))
            hint = exc.hint or ""
            if SPECS.get(spec.name) is spec and "value map" in exc.message:
                hint += (f"; to change a shipped spec: `fairfoundry datasets show {src} > "
                         f"my-{src}.yaml`, edit its {name} map, then --dataset my-{src}.yaml")
            what = "" if attr.column in (None, name) else f" (the {name} attribute)"
            raise FairfoundryError(f"{src}{f' ({where})' if where else ''}: {exc.message}{what}",
                                   hint=hint or None) from exc


def _derived_columns(out, spec: DatasetSpec, frame, bins):
    """``age_group`` (binned once), ``region`` / ``income_group`` from ``country``, extras."""
    import numpy as np
    import pandas as pd

    from ._bins import bin_values

    if "age" in out.columns:
        out["age"] = pd.to_numeric(out["age"], errors="coerce").astype(float)
        out["age_group"] = np.asarray(bin_values(out["age"], bins or spec.age_bins), dtype=object)
    if "country" in out.columns:
        out = add_geography(out)
    for new, col in spec.extras.items():
        if col in frame.columns:
            out[new] = frame[col].to_numpy()
    return out


def _add_split(out, spec: DatasetSpec, frame, notes: list[str]) -> None:
    """The official split (mapped), or a seeded patient-level random split."""
    if spec.split.rule == "column" and spec.split.column:
        col = _need(frame, spec.split.column, what="split", source=spec.name)
        mapped = col.map(lambda v: (spec.split.map or {}).get(v, v))
        out["split"] = mapped.map(lambda v: None if v is None or v != v else str(v))
    elif spec.split.rule == "patient_random" and "split" not in out.columns:
        from ._splits import patient_split

        strat = [s for s in spec.split.stratify if s in out.columns]
        out["split"] = patient_split(out, ratios=spec.split.ratios, seed=spec.split.seed,
                                     stratify=strat or None)
        shares = " / ".join(f"{k} {100 * v:g} %" for k, v in spec.split.ratios.items())
        notes.append(f"split: no official split, so a seeded patient-level random split "
                     f"({shares} of patients, seed {spec.split.seed})")


def _file_problems(out, spec: DatasetSpec, root: Path, problems, *, check_files: bool,
                   strict: bool):
    """Files that could not be read, plus (``check_files``) image files that do not exist."""
    import numpy as np
    import pandas as pd

    from ._readers import PROBLEM_COLUMNS

    probs = problems if problems is not None else pd.DataFrame(columns=PROBLEM_COLUMNS)
    if check_files and "path" in out.columns and spec.format not in ("npz_bundle",):
        exists = np.array([(root / p).exists() for p in out["path"]])
        if not exists.all():
            missing = out.loc[~exists, "path"]
            if strict:
                raise FairfoundryError(f"{spec.name}: {len(missing)} image file(s) missing under "
                                       f"{root}, e.g. {missing.head(3).tolist()}")
            probs = pd.concat([probs, pd.DataFrame({"path": missing.to_numpy(),
                                                    "error": "file not found"})],
                              ignore_index=True)
    return probs
