r"""Model selection criteria computed on validation data only.

A checkpoint, a hyper-parameter or a mitigation strength is chosen by one of:

- ``overall_auc``: ROC AUC on all validation samples (mean over labels for multi-label);
- ``worst_group_auc``: the smallest per-group AUC (groups with a single class are skipped);
- ``dto``: MEDFAIR's *distance to optimal*: the Euclidean distance between a candidate's
  per-group AUCs and the utopia point whose coordinate for each group is the best AUC of that
  group over all candidates (Zong, Yang & Hospedales, "MEDFAIR: Benchmarking Fairness for
  Medical Imaging", ICLR 2023, Sec. 4.3):

  .. math:: \mathrm{DTO}_m = \sqrt{\sum_g \big(\max_{m'} \mathrm{AUC}_{m'g} - \mathrm{AUC}_{mg}\big)^2}

  lower is better.

:func:`pareto_front` marks candidates not dominated in (utility, fairness gap). AUC values
come from :mod:`fairfoundry.metrics` when it is available (the project's one AUC), else from
scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._errors import FairfoundryError

__all__ = ["CRITERIA", "auc", "dto", "pareto_front", "selection_scores", "criterion_mode"]

#: criterion -> "max" or "min"
CRITERIA: dict[str, str] = {"overall_auc": "max", "worst_group_auc": "max", "dto": "min", "loss": "min"}


def criterion_mode(name: str) -> str:
    """``"max"`` or ``"min"`` for a selection criterion (clear error for an unknown one)."""
    if name not in CRITERIA:
        from .._errors import did_you_mean

        raise FairfoundryError(f"unknown selection criterion {name!r}", hint=did_you_mean(name, CRITERIA, what="criteria"))
    return CRITERIA[name]


def auc(y_true, y_score) -> float:
    """ROC AUC of one label; NaN when only one class is present."""
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(y_score, dtype=float)
    keep = ~np.isnan(y)
    y, s = y[keep], s[keep]
    if y.size == 0 or np.unique(y).size < 2:
        return float("nan")
    try:
        from ..metrics import roc_auc
    except ImportError:
        roc_auc = None
    if roc_auc is not None:
        return float(roc_auc(y, s))
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _mean_auc(y, s) -> float:
    y = np.asarray(y, dtype=float)
    s = np.asarray(s, dtype=float)
    if y.ndim == 1:
        return auc(y, s)
    vals = [auc(y[:, k], s[:, k]) for k in range(y.shape[1])]
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def selection_scores(y_true, y_score, groups=None, *, min_group_size: int = 1) -> dict[str, float]:
    """Overall AUC, per-group AUCs, worst-group AUC and AUC gap on one (validation) set.

    Parameters
    ----------
    y_true : array (n,) or (n, k) of 0/1 (NaN = missing label)
    y_score : array of the same shape
    groups : array (n,) of group labels or integer codes (None: a single group)
    min_group_size : groups with fewer samples are left out of worst-group and gap

    Returns
    -------
    dict with ``overall_auc``, ``worst_group_auc``, ``auc_gap`` (max - min over groups) and
    ``auc[<group>]`` for each group (NaN when a group has one class only).
    """
    out = {"overall_auc": _mean_auc(y_true, y_score)}
    if groups is None:
        out["worst_group_auc"] = out["overall_auc"]
        out["auc_gap"] = 0.0
        return out
    groups = np.asarray(groups)
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(y_score, dtype=float)
    vals = []
    for g in np.unique(groups):
        m = groups == g
        v = _mean_auc(y[m], s[m]) if m.sum() >= min_group_size else float("nan")
        out[f"auc[{g}]"] = v
        if not math.isnan(v):
            vals.append(v)
    out["worst_group_auc"] = float(min(vals)) if vals else float("nan")
    out["auc_gap"] = float(max(vals) - min(vals)) if vals else float("nan")
    return out


def dto(group_aucs) -> np.ndarray:
    """MEDFAIR distance to the per-group utopia point for each candidate (row); lower is better.

    Parameters
    ----------
    group_aucs : array (m candidates, G groups); NaN cells (AUC undefined) are ignored.

    Examples
    --------
    >>> dto([[0.8, 0.6], [0.7, 0.7]]).round(3).tolist()
    [0.1, 0.1]
    """
    a = np.asarray(group_aucs, dtype=float)
    if a.ndim != 2 or a.shape[0] == 0:
        raise FairfoundryError("dto expects a 2-D array: candidates x groups")
    import warnings

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a group with NaN AUC in every candidate
        utopia = np.nanmax(a, axis=0)
    diff = np.where(np.isnan(a), 0.0, utopia[None, :] - a)
    diff = np.nan_to_num(diff)
    return np.sqrt((diff ** 2).sum(axis=1))


def pareto_front(utility: Sequence[float], gap: Sequence[float]) -> np.ndarray:
    """Boolean mask of candidates on the Pareto front of (higher utility, lower gap).

    A candidate is dominated when another has utility >= and gap <= with one strict.

    Examples
    --------
    >>> pareto_front([0.8, 0.7, 0.75], [0.1, 0.02, 0.2]).tolist()
    [True, True, False]
    """
    u = np.asarray(utility, dtype=float)
    g = np.asarray(gap, dtype=float)
    keep = np.ones(u.size, dtype=bool)
    for i in range(u.size):
        if np.isnan(u[i]) or np.isnan(g[i]):
            keep[i] = False
            continue
        dom = (u >= u[i]) & (g <= g[i]) & ((u > u[i]) | (g < g[i]))
        keep[i] = not dom.any()
    return keep
