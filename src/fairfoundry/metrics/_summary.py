r"""Fairness summaries: gaps, ratios, reference-group differences, equalized odds, ES-AUC.

Every summary is a function of the per-group values ``V`` (shape ``(K, G)``, one row per
bootstrap replicate / permutation) and the overall values ``O`` (shape ``(K,)``), so point
estimates, bootstrap replicates and permutation replicates all go through the same code.
Groups whose value is NaN (undefined, e.g. AUC of a group without positives) are skipped.

Naming (see ``docs/metrics.md``): ``*_gap`` is max - min over groups (0 is fair),
``*_ratio`` is min / max (1 is fair), ``*_score`` is documented with its formula.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._errors import FairfoundryError
from ._checks import as_binary, as_groups, as_scores, same_length
from ._confusion import rates_from_counts
from ._ranking import single_segment_stats
from ._records import PER_GROUP

__all__ = [
    "gap", "ratio", "to_overall", "vs_reference", "worst_group", "DIRECTION",
    "SUMMARIES", "register_summary", "Summary",
    "demographic_parity_difference", "demographic_parity_ratio",
    "equalized_odds_difference", "equalized_odds_ratio", "equal_opportunity_difference",
    "predictive_parity_difference", "es_auc", "es_accuracy", "equalized_odds_score",
    "underdiagnosis_rate", "group_values",
]

#: +1: higher is better; -1: lower is better; 0: no direction (worst = smallest value);
#: "one" / "zero": best at 1 / 0 (worst = furthest away)
#: (read from the per-group metric records, :data:`._records.PER_GROUP`)
DIRECTION: dict[str, object] = {r.name: r.direction for r in PER_GROUP.values()}


def _quiet():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore", RuntimeWarning)
    return ctx


def _2d(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v[None, :] if v.ndim == 1 else v


def _out(res, values):
    return float(res[0]) if np.asarray(values).ndim == 1 else res


def gap(values):
    r"""Largest minus smallest group value, :math:`\max_g m_g - \min_g m_g` (0 is fair).

    NaN groups are skipped; NaN when no group is defined. Works row-wise on ``(K, G)``.

    Source: fairlearn ``MetricFrame.difference(method="between_groups")``.

    Examples
    --------
    >>> gap([0.7, 0.9, 0.8])
    0.20000000000000007
    """
    v = _2d(values)
    ctx = _quiet()
    try:
        res = np.nanmax(v, axis=1) - np.nanmin(v, axis=1)
    finally:
        ctx.__exit__(None, None, None)
    return _out(res, values)


def ratio(values):
    r"""Smallest over largest group value, :math:`\min_g m_g / \max_g m_g` (1 is fair).

    As fairlearn's ``MetricFrame.ratio(method="between_groups")``; NaN when the largest is 0.

    Examples
    --------
    >>> ratio([0.5, 0.25])
    0.5
    """
    v = _2d(values)
    ctx = _quiet()
    try:
        hi = np.nanmax(v, axis=1)
        lo = np.nanmin(v, axis=1)
        res = np.where(hi != 0, lo / np.where(hi != 0, hi, 1.0), np.nan)
    finally:
        ctx.__exit__(None, None, None)
    return _out(res, values)


def to_overall(values, overall):
    r"""Largest absolute difference to the overall value, :math:`\max_g |m_g - m|`.

    As fairlearn's ``MetricFrame.difference(method="to_overall")``.

    Examples
    --------
    >>> to_overall([0.6, 0.9], 0.8)
    0.20000000000000007
    """
    v = _2d(values)
    o = np.asarray(overall, dtype=np.float64).reshape(-1)
    ctx = _quiet()
    try:
        res = np.nanmax(np.abs(v - o[:, None]), axis=1)
    finally:
        ctx.__exit__(None, None, None)
    return _out(res, values)


def vs_reference(values, *, reference: int, target: int | None = None):
    r"""Signed difference :math:`m_g - m_{\mathrm{ref}}` for the non-reference group ``g``
    furthest from the reference (or for ``target`` when given; ties go to the most negative
    difference). Returns ``(value, g)``.

    Source: the comparison against a named reference group of clinical fairness audits (as in
    fairlearn's ``MetricFrame.difference``, but signed and against a chosen group).

    Examples
    --------
    >>> vs_reference([0.9, 0.7, 0.85], reference=0)
    (-0.20000000000000007, 1)
    """
    v = _2d(values)
    d = v - v[:, [reference]]
    if target is None:
        cand = np.abs(d[0]).copy()
        cand[reference] = np.nan
        if np.all(np.isnan(cand)):
            res = np.full(v.shape[0], np.nan)
            return (_out(res, values), None)
        # ties in |difference| go to the most negative difference (order-independent value)
        best = np.flatnonzero(cand == np.nanmax(cand))
        target = int(best[np.argmin(d[0, best])])
    res = d[:, target]
    return (_out(res, values), target)


def _worst_index(v: np.ndarray, direction) -> np.ndarray:
    """Row-wise index of the worst group (``-1`` when the row is all NaN)."""
    if direction == 1:
        key = np.where(np.isnan(v), np.inf, v)
        idx = np.argmin(key, axis=1)
    elif direction == -1:
        key = np.where(np.isnan(v), -np.inf, v)
        idx = np.argmax(key, axis=1)
    elif direction in ("one", "zero"):
        centre = 1.0 if direction == "one" else 0.0
        key = np.where(np.isnan(v), -np.inf, np.abs(v - centre))
        idx = np.argmax(key, axis=1)
    else:
        key = np.where(np.isnan(v), np.inf, v)
        idx = np.argmin(key, axis=1)
    return np.where(np.all(np.isnan(v), axis=1), -1, idx)


def worst_group(values, *, direction=1):
    r"""Value of the worst group and its index: the minimum when higher is better
    (``direction=1``), the maximum when lower is better (``-1``), the furthest from 1 / 0 for
    ``"one"`` / ``"zero"`` (calibration slope / intercept), the smallest for ``0``.

    Source: the worst-group metric of Sagawa et al., "Distributionally Robust Neural Networks",
    ICLR 2020 (worst-group accuracy), applied to any metric.

    Examples
    --------
    >>> worst_group([0.9, 0.7, 0.85], direction=1)
    (0.7, 1)
    """
    v = _2d(values)
    idx = _worst_index(v, direction)
    res = np.where(idx >= 0, v[np.arange(v.shape[0]), np.maximum(idx, 0)], np.nan)
    if np.asarray(values).ndim == 1:
        return float(res[0]), (int(idx[0]) if idx[0] >= 0 else None)
    return res, idx


# --------------------------------------------------------------------------------------
# registry of named fairness summaries (beyond the per-metric gap/ratio/... family)


@dataclass(frozen=True)
class Summary:
    """A named summary: ``func(per_group, overall) -> (K,)`` over metric arrays."""

    name: str
    func: Callable[[dict, dict], np.ndarray]
    needs: tuple[str, ...]
    #: for permutation p-values: "high" (larger is more extreme), "low" (smaller is)
    extreme: str
    doc: str


SUMMARIES: dict[str, Summary] = {}


def register_summary(name: str, *, needs: tuple[str, ...], extreme: str, doc: str):
    """Register a named summary (decorator); adding one is one function."""

    def deco(func):
        if name in SUMMARIES:
            raise ValueError(f"summary {name!r} registered twice")
        SUMMARIES[name] = Summary(name, func, needs, extreme, doc)
        return func

    return deco


def _es(per, ov, m):
    v = _2d(per[m])
    o = np.asarray(ov[m], dtype=np.float64).reshape(-1)
    dev = np.nansum(np.abs(v - o[:, None]), axis=1)
    defined = np.any(~np.isnan(v), axis=1)
    return np.where(defined, o / (1.0 + dev), np.nan)


@register_summary("demographic_parity_difference", needs=("selection_rate",), extreme="high",
                  doc="max_g SR_g - min_g SR_g (fairlearn)")
def _dpd(per, ov):
    return gap(_2d(per["selection_rate"]))


@register_summary("demographic_parity_ratio", needs=("selection_rate",), extreme="low",
                  doc="min_g SR_g / max_g SR_g (fairlearn)")
def _dpr(per, ov):
    return ratio(_2d(per["selection_rate"]))


@register_summary("equalized_odds_difference", needs=("tpr", "fpr"), extreme="high",
                  doc="max(TPR gap, FPR gap) (fairlearn, agg='worst_case')")
def _eod(per, ov):
    return np.fmax(gap(_2d(per["tpr"])), gap(_2d(per["fpr"])))


@register_summary("equalized_odds_difference_mean", needs=("tpr", "fpr"), extreme="high",
                  doc="(TPR gap + FPR gap) / 2 (fairlearn, agg='mean')")
def _eodm(per, ov):
    return (gap(_2d(per["tpr"])) + gap(_2d(per["fpr"]))) / 2.0


@register_summary("equalized_odds_ratio", needs=("tpr", "fpr"), extreme="low",
                  doc="min(TPR ratio, FPR ratio) (fairlearn, agg='worst_case')")
def _eor(per, ov):
    return np.fmin(ratio(_2d(per["tpr"])), ratio(_2d(per["fpr"])))


@register_summary("equal_opportunity_difference", needs=("tpr",), extreme="high",
                  doc="max_g TPR_g - min_g TPR_g (fairlearn; Hardt et al. 2016)")
def _eopd(per, ov):
    return gap(_2d(per["tpr"]))


@register_summary("predictive_parity_difference", needs=("ppv",), extreme="high",
                  doc="max_g PPV_g - min_g PPV_g (Chouldechova 2017)")
def _ppd(per, ov):
    return gap(_2d(per["ppv"]))


@register_summary("es_auc", needs=("auc",), extreme="low",
                  doc="AUC / (1 + sum_g |AUC_g - AUC|) (FairCLIP, Luo et al. CVPR 2024)")
def _esauc(per, ov):
    return _es(per, ov, "auc")


@register_summary("es_accuracy", needs=("accuracy",), extreme="low",
                  doc="Acc / (1 + sum_g |Acc_g - Acc|) (FairCLIP, Luo et al. CVPR 2024)")
def _esacc(per, ov):
    return _es(per, ov, "accuracy")


@register_summary("equalized_odds_score", needs=("tpr", "fpr"), extreme="low",
                  doc="1 - (TPR gap + FPR gap) / 2: MEDFAIR/FairMedFM 'EqOdd' (1 is fair)")
def _eos(per, ov):
    return 1.0 - (gap(_2d(per["tpr"])) + gap(_2d(per["fpr"]))) / 2.0


# --------------------------------------------------------------------------------------
# public fairlearn-style functions


def group_values(y_true, y_pred, *, sensitive_features, sample_weight=None) -> pd.DataFrame:
    """Per-group confusion metrics (one row per group, sorted by group label).

    Examples
    --------
    >>> group_values([0, 1, 1, 0], [0, 1, 0, 0], sensitive_features=["a", "a", "b", "b"])["tpr"]
    group
    a    1.0
    b    0.0
    Name: tpr, dtype: float64
    """
    y = as_binary(y_true, name="y_true")
    p = as_binary(y_pred, name="y_pred")
    n = same_length(y, p)
    codes, names = as_groups(sensitive_features, n, name="sensitive_features")
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    G = len(names)
    cells = np.bincount(codes * 4 + (2 * y + p).astype(np.int64), weights=w,
                        minlength=4 * G).reshape(G, 4)
    r = rates_from_counts(cells[:, 3], cells[:, 1], cells[:, 2], cells[:, 0])
    return pd.DataFrame(r, index=pd.Index(names, name="group"))


def _overall(y_true, y_pred, sample_weight) -> pd.Series:
    return group_values(y_true, y_pred, sensitive_features=np.zeros(len(np.asarray(y_true))),
                        sample_weight=sample_weight).iloc[0]


def _method(values, overall, method: str, kind: str) -> float:
    if method == "between_groups":
        return gap(values) if kind == "difference" else ratio(values)
    if method == "to_overall":
        if kind == "difference":
            return to_overall(values, overall)
        r = np.asarray(values, dtype=np.float64) / overall
        r = np.where(r > 1, 1 / r, r)
        return float(np.nanmin(r))
    raise FairfoundryError(f"unknown method {method!r}", hint="use between_groups or to_overall")


def demographic_parity_difference(y_true, y_pred, *, sensitive_features,
                                  method: str = "between_groups", sample_weight=None) -> float:
    r"""Demographic parity difference, :math:`\max_g SR_g - \min_g SR_g` with selection rate
    :math:`SR_g = P(\hat y = 1 \mid A = g)`; 0 is fair. Exactly fairlearn's definition
    (``method="to_overall"``: :math:`\max_g |SR_g - SR|`).

    Examples
    --------
    >>> demographic_parity_difference([0, 1, 0, 1], [1, 1, 0, 1], sensitive_features="aabb")
    0.5
    """
    gv = group_values(y_true, y_pred, sensitive_features=list(sensitive_features),
                      sample_weight=sample_weight)
    ov = _overall(y_true, y_pred, sample_weight)
    return _method(gv["selection_rate"].to_numpy(), ov["selection_rate"], method, "difference")


def demographic_parity_ratio(y_true, y_pred, *, sensitive_features,
                             method: str = "between_groups", sample_weight=None) -> float:
    r"""Demographic parity ratio, :math:`\min_g SR_g / \max_g SR_g`; 1 is fair (fairlearn).

    Examples
    --------
    >>> demographic_parity_ratio([0, 1, 0, 1], [1, 1, 0, 1], sensitive_features="aabb")
    0.5
    """
    gv = group_values(y_true, y_pred, sensitive_features=list(sensitive_features),
                      sample_weight=sample_weight)
    ov = _overall(y_true, y_pred, sample_weight)
    return _method(gv["selection_rate"].to_numpy(), ov["selection_rate"], method, "ratio")


def equalized_odds_difference(y_true, y_pred, *, sensitive_features, agg: str = "worst_case",
                              method: str = "between_groups", sample_weight=None) -> float:
    r"""Equalized odds difference (fairlearn): with :math:`\Delta_{TPR}` and
    :math:`\Delta_{FPR}` the between-group differences (max - min),
    ``agg="worst_case"`` gives :math:`\max(\Delta_{TPR}, \Delta_{FPR})` and ``agg="mean"``
    gives :math:`(\Delta_{TPR} + \Delta_{FPR})/2`. 0 is fair. Source: Hardt, Price & Srebro,
    NeurIPS 2016; fairlearn. Not MEDFAIR's "EqOdd" (see :func:`equalized_odds_score`).

    Examples
    --------
    >>> equalized_odds_difference([0, 1, 0, 1], [1, 1, 0, 1], sensitive_features="aabb")
    1.0
    """
    if agg not in ("worst_case", "mean"):
        raise FairfoundryError(f"unknown agg {agg!r}", hint="use worst_case or mean")
    gv = group_values(y_true, y_pred, sensitive_features=list(sensitive_features),
                      sample_weight=sample_weight)
    ov = _overall(y_true, y_pred, sample_weight)
    d = [_method(gv[m].to_numpy(), ov[m], method, "difference") for m in ("tpr", "fpr")]
    return float(np.fmax(*d)) if agg == "worst_case" else float(np.mean(d))


def equalized_odds_ratio(y_true, y_pred, *, sensitive_features, agg: str = "worst_case",
                         method: str = "between_groups", sample_weight=None) -> float:
    r"""Equalized odds ratio (fairlearn): ``worst_case`` :math:`\min(r_{TPR}, r_{FPR})`,
    ``mean`` their mean, with :math:`r = \min_g / \max_g`. 1 is fair.

    Examples
    --------
    >>> equalized_odds_ratio([0, 1, 0, 1, 0], [1, 1, 0, 1, 1], sensitive_features="aabbb")
    0.5
    """
    if agg not in ("worst_case", "mean"):
        raise FairfoundryError(f"unknown agg {agg!r}", hint="use worst_case or mean")
    gv = group_values(y_true, y_pred, sensitive_features=list(sensitive_features),
                      sample_weight=sample_weight)
    ov = _overall(y_true, y_pred, sample_weight)
    r = [_method(gv[m].to_numpy(), ov[m], method, "ratio") for m in ("tpr", "fpr")]
    return float(np.fmin(*r)) if agg == "worst_case" else float(np.mean(r))


def equal_opportunity_difference(y_true, y_pred, *, sensitive_features,
                                 method: str = "between_groups", sample_weight=None) -> float:
    r"""Equal opportunity difference, :math:`\max_g TPR_g - \min_g TPR_g` (fairlearn;
    Hardt et al., NeurIPS 2016). 0 is fair.

    Examples
    --------
    >>> equal_opportunity_difference([1, 1, 1, 1], [1, 1, 0, 1], sensitive_features="aabb")
    0.5
    """
    gv = group_values(y_true, y_pred, sensitive_features=list(sensitive_features),
                      sample_weight=sample_weight)
    ov = _overall(y_true, y_pred, sample_weight)
    return _method(gv["tpr"].to_numpy(), ov["tpr"], method, "difference")


def predictive_parity_difference(y_true, y_pred, *, sensitive_features,
                                 sample_weight=None) -> float:
    r"""Predictive parity difference, :math:`\max_g PPV_g - \min_g PPV_g`; 0 is fair.

    Source: Chouldechova, Big Data 2017 (predictive parity = equal PPV across groups).

    Examples
    --------
    >>> predictive_parity_difference([1, 0, 1, 1], [1, 1, 1, 1], sensitive_features="aabb")
    0.5
    """
    gv = group_values(y_true, y_pred, sensitive_features=list(sensitive_features),
                      sample_weight=sample_weight)
    return gap(gv["ppv"].to_numpy())


def equalized_odds_score(y_true, y_pred, *, sensitive_features, sample_weight=None) -> float:
    r"""MEDFAIR / FairMedFM "EqOdd" score, :math:`1 - \tfrac12(\Delta_{TPR} + \Delta_{FPR})`
    with :math:`\Delta` the max - min gap over groups; **1 is fair** (the opposite direction
    of :func:`equalized_odds_difference`, where 0 is fair).

    Source: Zong, Yang & Hospedales, "MEDFAIR", ICLR 2023; Jin et al., "FairMedFM",
    NeurIPS 2024 Datasets & Benchmarks (both report it as "EqOdd", higher is better).

    Examples
    --------
    >>> equalized_odds_score([0, 1, 0, 1], [1, 1, 0, 1], sensitive_features="aabb")
    0.5
    """
    gv = group_values(y_true, y_pred, sensitive_features=list(sensitive_features),
                      sample_weight=sample_weight)
    return float(1.0 - (gap(gv["tpr"].to_numpy()) + gap(gv["fpr"].to_numpy())) / 2.0)


def _es_public(metric, y_true, y_score, groups, threshold):
    y = as_binary(y_true, name="y_true")
    s = as_scores(y_score, name="y_score", probability=False)
    n = same_length(y, s)
    codes, names = as_groups(groups, n)
    key = "auc" if metric == "auc" else "accuracy"

    def value(mask):
        if key == "auc":
            return single_segment_stats(y[mask], s[mask], need={"auc"}, probability=False)["auc"]
        return float(np.mean(y[mask] == (s[mask] >= threshold)))

    per = np.array([[value(codes == g) for g in range(len(names))]])
    ov = np.array([value(np.ones(n, dtype=bool))])
    return float(_es({key: per}, {key: ov}, key)[0])


def es_auc(y_true, y_score, *, groups) -> float:
    r"""Equity-scaled AUC.

    .. math:: \mathrm{ES\text{-}AUC} = \frac{\mathrm{AUC}}{1 + \sum_g |\mathrm{AUC}_g - \mathrm{AUC}|}

    Source: Luo et al., "FairCLIP", CVPR 2024 (their equity-scaled AUC). Groups whose AUC is
    undefined (one class) are left out of the sum. Not FairMedFM's ES-Dice (which divides by
    1 + the standard deviation).

    Examples
    --------
    >>> es_auc([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.6], groups=["a", "a", "b", "b"])
    1.0
    """
    return _es_public("auc", y_true, y_score, groups, 0.5)


def es_accuracy(y_true, y_score, *, groups, threshold: float = 0.5) -> float:
    r"""Equity-scaled accuracy, :math:`\mathrm{Acc} / (1 + \sum_g |\mathrm{Acc}_g - \mathrm{Acc}|)`
    with predictions :math:`\hat y = [s \ge t]`. Source: Luo et al., "FairCLIP", CVPR 2024.

    Examples
    --------
    >>> es_accuracy([0, 1, 0, 1], [0.1, 0.9, 0.6, 0.6], groups=["a", "a", "b", "b"])
    0.5
    """
    return _es_public("accuracy", y_true, y_score, groups, threshold)


def underdiagnosis_rate(no_finding_true, no_finding_pred, *, groups) -> pd.Series:
    r"""Underdiagnosis rate by group: among truly diseased patients (true "No Finding" = 0),
    the share predicted "No Finding" (= 1),

    .. math:: \mathrm{UR}_g = P(\hat{y}_{NF} = 1 \mid y_{NF} = 0, A = g)

    i.e. the false positive rate of the "No Finding" classifier. Source: Seyyed-Kalantari et
    al., "Underdiagnosis bias of artificial intelligence algorithms applied to chest
    radiographs in under-served patient populations", Nature Medicine 2021. NaN for a group
    without diseased patients.

    Examples
    --------
    >>> underdiagnosis_rate([0, 0, 1, 0, 0], [1, 0, 1, 0, 0], groups="aaabb").tolist()
    [0.5, 0.0]
    """
    gv = group_values(no_finding_true, no_finding_pred, sensitive_features=list(groups))
    return gv["fpr"].rename("underdiagnosis_rate")
