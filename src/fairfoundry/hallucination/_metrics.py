r"""Hallucination, omission and contradiction of findings in generated reports.

Both the generated report and the reference (a reference report, labelled by
:func:`label_reports`, or reference labels) give each finding one of *positive*, *negative*,
*uncertain* or *absent* (not mentioned). For a finding :math:`f` of report :math:`i`:

- **hallucinated**: the generated report asserts it (positive) and the reference does not
  (negative or absent): :math:`H_{if} = [g_{if} = +]\,[r_{if} \in \{-, \varnothing\}]`;
- **omitted**: the reference asserts it and the generated report does not (negative or
  absent): :math:`O_{if} = [r_{if} = +]\,[g_{if} \in \{-, \varnothing\}]`;
- **contradicted** (a negation flip): one side asserts it and the other explicitly denies it,
  :math:`C_{if} = [g_{if} = +][r_{if} = -] + [g_{if} = -][r_{if} = +]`. A flip is one error: it
  is *either* a hallucination ("pleural effusion" vs reference "no pleural effusion") *or* an
  omission (the reverse), and ``contradicted`` flags which errors were flips; nothing is
  counted twice.

Uncertain statements on either side are neither assertions nor denials: a finding the reference
calls uncertain is left out of that finding's rates (its truth is unknown), and a generated
hedge is not counted as a hallucination or an omission.

Per report: ``hallucination`` (1 when any finding is hallucinated), ``n_hallucinated``,
``omission``, ``n_omitted``, ``contradiction``, ``n_contradicted`` and
``hallucination_severity`` :math:`= \sum_f w_f H_{if}` with the documented
:data:`SEVERITY` weights. Per finding: ``hallucinated:<finding>`` is :math:`H_{if}` on the
reports whose reference does not assert the finding (NaN otherwise), so its group mean is the
rate :math:`P(g_f = + \mid r_f \ne +, \text{group})`; ``omitted:<finding>`` is :math:`O_{if}`
on the reports whose reference asserts it, the miss rate :math:`P(g_f \ne + \mid r_f = +)`.

Layer 1: numpy / pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .._errors import FairfoundryError
from ._labeler import FINDINGS, NEGATIVE, POSITIVE, UNCERTAIN

__all__ = ["SEVERITY", "REPORT_METRICS", "hallucination_table"]

#: default severity weight of a hallucinated finding: 3 for findings that trigger urgent action
#: when reported (pneumothorax; fracture; pneumonia and consolidation, which lead to
#: antibiotics), 2 for findings that change management (effusion, edema, lung lesion, which leads
#: to follow-up imaging or biopsy), 1 for the rest (descriptive or lower-stakes findings). These
#: are fairfoundry's choice, documented in docs/hallucination.md; pass ``severity=`` to use your
#: own.
SEVERITY: dict[str, float] = {
    "Pneumothorax": 3.0, "Fracture": 3.0, "Pneumonia": 3.0, "Consolidation": 3.0,
    "Pleural Effusion": 2.0, "Edema": 2.0, "Lung Lesion": 2.0,
    "Enlarged Cardiomediastinum": 1.0, "Cardiomegaly": 1.0, "Lung Opacity": 1.0,
    "Atelectasis": 1.0, "Pleural Other": 1.0, "Support Devices": 1.0,
}
#: per-report metrics (binary ones are rates per group)
REPORT_METRICS = ("hallucination", "n_hallucinated", "hallucination_severity", "omission",
                  "n_omitted", "contradiction", "n_contradicted")
BINARY_METRICS = ("hallucination", "omission", "contradiction")


def _codes(frame: pd.DataFrame, findings: Sequence[str], what: str) -> np.ndarray:
    missing = [f for f in findings if f not in frame.columns]
    if missing:
        raise FairfoundryError(f"{what} labels have no column {missing[0]!r}",
                               hint=f"expected the CheXpert observations: {', '.join(findings)}")
    a = frame[list(findings)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isfinite(a) & ~np.isin(a, (POSITIVE, NEGATIVE, UNCERTAIN))
    if bad.any():
        i, j = (int(x[0]) for x in np.nonzero(bad))
        raise FairfoundryError(f"{what} label {findings[j]!r} at row {i + 1} is {a[i, j]!r}",
                               hint="use 1 (positive), 0 (negative), -1 (uncertain) or blank")
    return a


def hallucination_table(generated: pd.DataFrame, reference: pd.DataFrame, *,
                        findings: Sequence[str] = FINDINGS,
                        severity: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Per-report hallucination values (see the module docstring for the definitions).

    Parameters
    ----------
    generated, reference : DataFrame
        One row per report, aligned; columns = the findings, codes 1 / 0 / -1 / NaN (as
        :func:`label_reports` returns).
    findings : the findings scored (default: the 13 CheXpert findings; "No Finding" is a
        summary, not a finding).
    severity : finding -> weight (default :data:`SEVERITY`; unlisted findings weigh 1).

    Returns
    -------
    DataFrame
        Columns :data:`REPORT_METRICS`, then ``hallucinated:<f>`` and ``omitted:<f>`` per
        finding (NaN where the rate's condition does not hold).

    Examples
    --------
    >>> from fairfoundry.hallucination import label_reports
    >>> g = label_reports(["Pleural effusion."])
    >>> r = label_reports(["No pleural effusion."])
    >>> t = hallucination_table(g, r)
    >>> int(t["n_hallucinated"][0]), int(t["n_contradicted"][0]), int(t["n_omitted"][0])
    (1, 1, 0)
    """
    findings = list(findings)
    if len(generated) != len(reference):
        raise FairfoundryError(f"generated ({len(generated)}) and reference ({len(reference)}) "
                               "labels have different numbers of rows")
    g = _codes(generated, findings, "generated")
    r = _codes(reference, findings, "reference")
    w = np.array([float((severity or SEVERITY).get(f, 1.0)) for f in findings])
    g_pos, g_neg = g == POSITIVE, (g == NEGATIVE) | np.isnan(g)
    r_pos, r_not = r == POSITIVE, (r == NEGATIVE) | np.isnan(r)
    H = g_pos & r_not
    om = r_pos & g_neg
    C = (g_pos & (r == NEGATIVE)) | ((g == NEGATIVE) & r_pos)
    out = {
        "hallucination": H.any(axis=1).astype(float),
        "n_hallucinated": H.sum(axis=1).astype(float),
        "hallucination_severity": (H * w).sum(axis=1),
        "omission": om.any(axis=1).astype(float),
        "n_omitted": om.sum(axis=1).astype(float),
        "contradiction": C.any(axis=1).astype(float),
        "n_contradicted": C.sum(axis=1).astype(float),
    }
    for j, f in enumerate(findings):
        out[f"hallucinated:{f}"] = np.where(r_not[:, j], H[:, j].astype(float), np.nan)
    for j, f in enumerate(findings):
        out[f"omitted:{f}"] = np.where(r_pos[:, j], om[:, j].astype(float), np.nan)
    return pd.DataFrame(out, index=generated.index)
