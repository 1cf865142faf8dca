"""``evaluate_reports``: hallucination rates of generated reports by protected group.

Layer 1: reads a table, labels both report columns with the rule-based labeler, scores every
report (:func:`hallucination_table`) and averages per group with
:func:`fairfoundry.metrics.evaluate_group_means` (CIs clustered by patient, gaps, tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .._errors import FairfoundryError, did_you_mean
from ._grouped import GroupedEvaluation, run_grouped
from ._labeler import FINDINGS, OBSERVATIONS, label_reports
from ._metrics import REPORT_METRICS, SEVERITY, hallucination_table

__all__ = ["evaluate_reports", "load_input", "row_namer"]

_ID_CANDIDATES = ("sample_id", "study_id", "report_id", "image_id", "dicom_id", "id")


def load_input(data, *, what: str = "input") -> tuple[pd.DataFrame, dict]:
    """A DataFrame, or a CSV / TSV / Parquet path, as ``(frame, info)``."""
    from .._io import file_fingerprint, frame_fingerprint, read_table

    if isinstance(data, pd.DataFrame):
        if data.empty:
            raise FairfoundryError(f"the {what} DataFrame has no rows")
        frame = data.reset_index(drop=True)
        return frame, {"source": "DataFrame", "fingerprint": "frame:" + frame_fingerprint(frame),
                       "n_rows": len(frame)}
    path = os.fspath(data)
    frame = read_table(path, what=what).reset_index(drop=True)
    return frame, {"source": str(path), "fingerprint": "sha256:" + file_fingerprint(path),
                   "n_rows": len(frame)}


def row_namer(frame: pd.DataFrame, id_col: str | None):
    """``i -> "row 3 (sample_id 's2')"`` (1-based data rows, header not counted)."""
    def name(i: int) -> str:
        ref = f"row {int(i) + 1}"
        if id_col is not None:
            ref += f" ({id_col} {frame[id_col].iloc[int(i)]!r})"
        return ref
    return name


def resolve_id(frame: pd.DataFrame, id_col: str | None) -> str | None:
    """The sample id column (given, or the first of the usual names); checked unique."""
    if id_col is not None and id_col not in frame.columns:
        raise FairfoundryError(f"--id column {id_col!r} not found",
                               hint=did_you_mean(id_col, frame.columns, what="columns"))
    if id_col is None:
        id_col = next((c for c in _ID_CANDIDATES if c in frame.columns), None)
    if id_col is not None:
        ids = frame[id_col]
        miss = np.flatnonzero(ids.isna().to_numpy())
        if miss.size:
            raise FairfoundryError(f"id column {id_col!r} is empty at row {miss[0] + 1}")
        dup = np.flatnonzero(ids.duplicated().to_numpy())
        if dup.size:
            raise FairfoundryError(f"duplicate sample id {ids.iloc[dup[0]]!r} in column "
                                   f"{id_col!r} (row {dup[0] + 1})",
                                   hint="one row per sample; samples are aligned by id")
    return id_col


def _column(frame: pd.DataFrame, col: str, option: str) -> str:
    if col not in frame.columns:
        raise FairfoundryError(f"{option} column {col!r} not found",
                               hint=did_you_mean(col, frame.columns, what="columns"))
    return col


def _reference_labels(frame: pd.DataFrame, prefix: str, findings: Sequence[str], rows):
    cols = {f: f"{prefix}{f}" for f in findings}
    missing = [c for c in cols.values() if c not in frame.columns]
    if missing:
        raise FairfoundryError(f"reference label column {missing[0]!r} not found",
                               hint=f"with --reference-labels, --reference {prefix!r} is the "
                                    "prefix of one column per finding, e.g. "
                                    f"{prefix}Pleural Effusion")
    out = pd.DataFrame({f: pd.to_numeric(frame[c], errors="coerce") for f, c in cols.items()})
    for f, c in cols.items():
        raw = frame[c]
        bad = np.flatnonzero((out[f].isna() & raw.notna()).to_numpy()
                             | (out[f].notna() & ~out[f].isin([1, 0, -1])).to_numpy())
        if bad.size:
            raise FairfoundryError(f"reference label column {c!r}: {rows(bad[0])} is "
                                   f"{raw.iloc[bad[0]]!r}",
                                   hint="use 1 (positive), 0 (negative), -1 (uncertain) or "
                                        "blank (not mentioned)")
    return out


def evaluate_reports(data, *, generated: str, reference: str, sensitive: Sequence[str],
                     intersect: Sequence[Sequence[str]] = (),
                     bins: Mapping[str, Sequence[float]] | None = None,
                     cluster: str | None = None, id_col: str | None = None,
                     reference_labels: bool = False, findings: Sequence[str] = FINDINGS,
                     severity: Mapping[str, float] | None = None,
                     reference_group: Mapping[str, str] | None = None, n_bootstrap: int = 0,
                     n_permutations: int = 0, confidence: float = 0.95, seed: int = 0,
                     min_events: int = 10) -> GroupedEvaluation:
    """Hallucination, omission and contradiction rates of generated reports by group.

    Parameters
    ----------
    data : DataFrame or path (CSV / TSV / Parquet)
        One row per generated report.
    generated : column of the generated report text.
    reference : column of the reference report text, or (``reference_labels=True``) the prefix
        of one reference label column per finding (``ref_Pleural Effusion``, ... with 1 / 0 /
        -1 / blank).
    sensitive, intersect, bins : protected attributes, intersections, numeric bins
        (``{"age": [40, 60, 80]}``).
    cluster : column of the patient id: bootstrap replicates and permutations move whole
        patients.
    id_col : sample id column (default: ``sample_id``, ``study_id``, ... when present);
        checked unique.
    findings : findings scored (default: the 13 CheXpert findings).
    severity : finding -> weight of ``hallucination_severity`` (default :data:`SEVERITY`).
    reference_group : attribute -> reference group of ``*_vs_reference``.
    n_bootstrap, n_permutations, confidence, seed : as :func:`fairfoundry.metrics.evaluate_group_means`.
    min_events : fewest events and non-events per group for a headline.

    Returns
    -------
    GroupedEvaluation
        ``per_sample`` holds each report's values and both label sets (``gen:<obs>``,
        ``ref:<obs>``).

    Raises
    ------
    FairfoundryError
        A report empty or not text, a missing reference, an unknown column: naming the row.
    """
    frame, info = load_input(data)
    id_col = resolve_id(frame, id_col)
    rows = row_namer(frame, id_col)
    findings = list(findings)
    unknown = [f for f in findings if f not in FINDINGS]
    if unknown:
        raise FairfoundryError(f"unknown finding {unknown[0]!r}",
                               hint=did_you_mean(unknown[0], FINDINGS, what="findings"))
    sev = dict(SEVERITY)
    for k, w in (severity or {}).items():
        if k not in FINDINGS:
            raise FairfoundryError(f"--severity: unknown finding {k!r}",
                                   hint=did_you_mean(k, FINDINGS, what="findings"))
        if not (isinstance(w, (int, float)) and np.isfinite(w) and w >= 0):
            raise FairfoundryError(f"--severity {k}: weight must be a number >= 0, got {w!r}")
        sev[k] = float(w)
    gcol = _column(frame, generated, "--generated")
    gen = label_reports(frame[gcol].tolist(), name=f"generated report column {gcol!r}",
                        rows=rows)
    if reference_labels:
        ref = _reference_labels(frame, reference, findings, rows)
    else:
        rcol = _column(frame, reference, "--reference")
        raw = frame[rcol]
        miss = np.flatnonzero(raw.isna().to_numpy())
        if miss.size:
            raise FairfoundryError(f"reference report column {rcol!r}: {rows(miss[0])} has no "
                                   "reference", hint="every generated report needs its "
                                                     "reference; drop that row")
        ref = label_reports(raw.tolist(), name=f"reference report column {rcol!r}", rows=rows)
    values = hallucination_table(gen, ref, findings=findings, severity=sev)
    directions = {c: -1 for c in values.columns}

    def labels_too(per_sample: pd.DataFrame) -> pd.DataFrame:
        extra = {f"gen:{o}": gen[o].to_numpy() for o in OBSERVATIONS}
        extra |= {f"ref:{o}": ref[o].to_numpy() for o in ref.columns}
        return pd.concat([per_sample, pd.DataFrame(extra)], axis=1)

    notes = ["Labels come from fairfoundry's rule-based CheXpert-style labeler (offline; phrase "
             "lists informed by the CheXpert labeler, MIT; NegBio-style negation and "
             "uncertainty). A rule-based labeler misses paraphrases: read rates as lower bounds "
             "of the errors a radiologist would find.",
             "hallucination = the generated report asserts a finding the reference does not; "
             "a negation flip counts once (as a hallucination or an omission, flagged as "
             "contradiction)."]
    return run_grouped(
        kind="fairfoundry.report_hallucination", title="Hallucination in generated reports",
        values=values, frame=frame, id_col=id_col, sensitive=list(sensitive),
        intersect=[list(g) for g in intersect], bins=bins, cluster=cluster,
        reference_group=reference_group, n_bootstrap=n_bootstrap,
        n_permutations=n_permutations, confidence=confidence, seed=seed, label=gcol,
        config={"generated": generated, "reference": reference,
                "reference_labels": bool(reference_labels), "findings": findings,
                "severity": {f: sev[f] for f in findings}, "id_col": id_col},
        info=info, notes=notes, directions=directions, binary_metrics=REPORT_METRICS,
        headline_metrics=REPORT_METRICS, min_events=min_events, extra_columns=labels_too)
