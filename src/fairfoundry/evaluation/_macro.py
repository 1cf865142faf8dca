"""Macro averages over labels, with CIs from the labels' shared bootstrap replicates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._errors import FairfoundryError

__all__ = ["MACRO_LABEL", "aligned_replicates", "first_replicate_rows", "macro_by_group",
           "macro_summary"]

#: ``label`` value of the macro averages over labels.
MACRO_LABEL = "macro"


def first_replicate_rows(res) -> np.ndarray | None:
    """Sorted rows of bootstrap replicate 0 (to check that labels share their resamples)."""
    if not res.replicates:
        return None
    try:
        return np.sort(res.replicate_rows(0))
    except (AttributeError, FairfoundryError):
        return None


def aligned_replicates(replicates: dict, overall_attr: str) -> dict | None:
    """The replicates when every label of every attribute was resampled identically, else None.

    The engine's resampling depends only on groups, clusters and seed, so the labels of one
    attribute share their bootstrap rows and a macro mean can be taken replicate by replicate.
    """
    if not replicates:
        return None
    for per_label in replicates.values():
        rows = [r["rows0"] for r in per_label.values()]
        if any(r is None for r in rows) or any(not np.array_equal(rows[0], r) for r in rows[1:]):
            return None
    out = dict(replicates)
    out["overall"] = replicates[overall_attr]
    return out


def _macro_ci(values: list[np.ndarray], conf: float) -> tuple[float, float]:
    if not values:
        return np.nan, np.nan
    stacked = np.vstack(values)
    defined = np.isfinite(stacked).any(axis=0)  # replicates where at least one label is defined
    mean = np.nanmean(stacked[:, defined], axis=0) if defined.any() else np.array([])
    if mean.size < 2:
        return np.nan, np.nan
    alpha = (1.0 - conf) / 2.0
    lo, hi = np.quantile(mean, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _macro_reason(ok: np.ndarray, n_labels: int) -> str:
    if not ok.any():
        return "undefined for every label"
    if not ok.all():
        return f"mean over the {int(ok.sum())} of {n_labels} labels where it is defined"
    return ""


def macro_by_group(table: pd.DataFrame, labels: list[str], reps: dict | None,
                    conf: float) -> pd.DataFrame:
    r"""Mean over labels of each (attribute, group, metric) estimate.

    The CI is the percentile interval of the replicate-wise mean over labels (labels share
    their bootstrap resamples): :math:`\bar m^{*b} = \frac1L \sum_l m_l^{*b}`.
    """
    sub = table[table["label"].isin(labels)]
    rows = []
    for (attr, group, metric), part in sub.groupby(["attribute", "group", "metric"], sort=False):
        est = part["estimate"].to_numpy(dtype=float)
        ok = np.isfinite(est)
        suppressed = part["reason"].astype(str).str.startswith("suppressed").any()
        reason = part["reason"].iloc[0] if suppressed else _macro_reason(ok, len(labels))
        lo = hi = np.nan
        if reps is not None and ok.any() and not suppressed and attr in reps:
            vals = []
            for lab, good in zip(part["label"], ok, strict=True):
                r = reps[attr].get(lab)
                if good and r and metric in r["per"] and group in r["names"]:
                    vals.append(np.asarray(r["per"][metric])[:, r["names"].index(group)])
            if len(vals) == int(ok.sum()):
                lo, hi = _macro_ci(vals, conf)
        rows.append({"label": MACRO_LABEL, "attribute": attr, "group": group, "metric": metric,
                     "estimate": float(est[ok].mean()) if ok.any() and not suppressed else np.nan,
                     "ci_low": lo, "ci_high": hi, "n": part["n"].iloc[0], "reason": reason})
    return pd.DataFrame(rows)


def macro_summary(summary: pd.DataFrame, labels: list[str], reps: dict | None,
                   conf: float) -> pd.DataFrame:
    """Mean over labels of each (attribute, summary metric), with a replicate-wise CI."""
    sub = summary[summary["label"].isin(labels)]
    rows = []
    for (attr, metric), part in sub.groupby(["attribute", "metric"], sort=False):
        if metric.endswith(("_worst_group", "_vs_reference")):
            continue  # which group is worst differs by label: a mean would mix groups
        est = pd.to_numeric(part["estimate"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(est)
        lo = hi = np.nan
        if reps is not None and ok.any() and attr in reps:
            vals = []
            for lab, good in zip(part["label"], ok, strict=True):
                r = reps[attr].get(lab)
                if good and r and metric in r["summary"]:
                    vals.append(np.asarray(r["summary"][metric], dtype=float))
            if len(vals) == int(ok.sum()):
                lo, hi = _macro_ci(vals, conf)
        rows.append({"label": MACRO_LABEL, "attribute": attr, "metric": metric,
                     "estimate": float(est[ok].mean()) if ok.any() else np.nan,
                     "ci_low": lo, "ci_high": hi, "p_value": np.nan,
                     "reason": _macro_reason(ok, len(labels)),
                     "detail": f"mean over {len(labels)} labels"})
    return pd.DataFrame(rows)
