r"""Threshold metrics from the confusion cells TP, FP, FN, TN.

All rates are ratios of (weighted) confusion cells; a rate whose denominator is zero is NaN
(never 0, never a crash), and :func:`rates_from_counts` says why. The public functions take
binary predictions ``y_pred`` like scikit-learn's; the engine computes the same formulas from
cumulative sums (see ``_kernel``).
"""

from __future__ import annotations

import numpy as np

from ._checks import as_binary, as_weights, same_length

__all__ = [
    "confusion_counts", "rates_from_counts", "REASONS",
    "n_samples", "positives", "prevalence", "accuracy", "balanced_accuracy",
    "tpr", "fpr", "tnr", "fnr", "ppv", "npv", "selection_rate", "f1",
]

#: why a rate is NaN, keyed by the empty denominator
REASONS = {
    "empty": "group is empty",
    "no_pos": "group has no positives",
    "no_neg": "group has no negatives",
    "no_pred_pos": "no predicted positives in group",
    "no_pred_neg": "no predicted negatives in group",
    "no_f1": "no positives and no predicted positives in group",
}


def confusion_counts(y_true, y_pred, *, sample_weight=None) -> tuple[float, float, float, float]:
    """Weighted ``(tp, fp, fn, tn)`` with one ``np.bincount``.

    Examples
    --------
    >>> confusion_counts([0, 1, 1, 0], [0, 1, 0, 1])
    (1.0, 1.0, 1.0, 1.0)
    """
    y = as_binary(y_true, name="y_true")
    p = as_binary(y_pred, name="y_pred")
    n = same_length(y, p)
    w = as_weights(sample_weight, n)
    cells = np.bincount((2 * y + p).astype(np.int64), weights=w, minlength=4)
    tn, fp, fn, tp = (float(c) for c in cells)
    return tp, fp, fn, tn


def _div(num, den):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def rates_from_counts(tp, fp, fn, tn) -> dict[str, np.ndarray]:
    """Every confusion-based metric (arrays broadcast) from the four cells.

    Returns a dict with ``n, positives, prevalence, accuracy, balanced_accuracy, tpr, fpr,
    tnr, fnr, ppv, npv, selection_rate, f1``.
    """
    tp, fp, fn, tn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn, tn))
    n = tp + fp + fn + tn
    pos = tp + fn
    neg = fp + tn
    tpr_ = _div(tp, pos)
    tnr_ = _div(tn, neg)
    return {
        "n": n,
        "positives": pos,
        "prevalence": _div(pos, n),
        "accuracy": _div(tp + tn, n),
        "balanced_accuracy": (tpr_ + tnr_) / 2.0,
        "tpr": tpr_,
        "fpr": _div(fp, neg),
        "tnr": tnr_,
        "fnr": _div(fn, pos),
        "ppv": _div(tp, tp + fp),
        "npv": _div(tn, tn + fn),
        "selection_rate": _div(tp + fp, n),
        "f1": _div(2.0 * tp, 2.0 * tp + fp + fn),
    }


def nan_reason(metric: str, *, n: float, pos: float, neg: float, pred_pos: float,
               pred_neg: float) -> str:
    """The reason a metric is undefined for a group with these counts ('' when defined)."""
    if n <= 0:
        return REASONS["empty"]
    if metric in {"tpr", "fnr", "auc", "average_precision"} and pos <= 0:
        return REASONS["no_pos"]
    if metric in {"fpr", "tnr"} and neg <= 0:
        return REASONS["no_neg"]
    if metric in {"balanced_accuracy", "calibration_slope", "calibration_intercept", "auc"}:
        if pos <= 0:
            return REASONS["no_pos"]
        if neg <= 0:
            return REASONS["no_neg"]
    if metric == "ppv" and pred_pos <= 0:
        return REASONS["no_pred_pos"]
    if metric == "npv" and pred_neg <= 0:
        return REASONS["no_pred_neg"]
    if metric == "f1" and pos <= 0 and pred_pos <= 0:
        return REASONS["no_f1"]
    return ""


def _rate(name: str, y_true, y_pred, sample_weight) -> float:
    return float(rates_from_counts(*confusion_counts(y_true, y_pred,
                                                     sample_weight=sample_weight))[name])


def n_samples(y_true, *, sample_weight=None) -> float:
    """Number of samples (total weight), :math:`n = \\sum_i w_i`.

    Source: fairlearn ``count``.

    Examples
    --------
    >>> n_samples([0, 1, 1])
    3.0
    """
    y = as_binary(y_true)
    return float(as_weights(sample_weight, len(y)).sum())


def positives(y_true, *, sample_weight=None) -> float:
    """Number of positives, :math:`\\sum_i w_i y_i`.

    Source: the positive count of a confusion matrix (scikit-learn ``confusion_matrix``, ``tp + fn``).

    Examples
    --------
    >>> positives([0, 1, 1])
    2.0
    """
    y = as_binary(y_true)
    return float(as_weights(sample_weight, len(y)) @ y)


def prevalence(y_true, *, sample_weight=None) -> float:
    """Share of positives, :math:`\\sum_i w_i y_i / \\sum_i w_i`.

    Source: the prevalence of epidemiology, ``(tp + fn) / n`` (fairlearn's ``mean_prediction`` of ``y_true``).

    Examples
    --------
    >>> prevalence([0, 1, 1, 1])
    0.75
    """
    return positives(y_true, sample_weight=sample_weight) / n_samples(
        y_true, sample_weight=sample_weight)


def accuracy(y_true, y_pred, *, sample_weight=None) -> float:
    """Accuracy, :math:`(TP + TN) / n`. Source: scikit-learn ``accuracy_score``.

    Examples
    --------
    >>> accuracy([0, 1, 1, 0], [0, 1, 0, 0])
    0.75
    """
    return _rate("accuracy", y_true, y_pred, sample_weight)


def balanced_accuracy(y_true, y_pred, *, sample_weight=None) -> float:
    """Balanced accuracy, :math:`(TPR + TNR) / 2`; NaN if a class is absent.

    Source: Brodersen et al., ICPR 2010; scikit-learn ``balanced_accuracy_score``.

    Examples
    --------
    >>> balanced_accuracy([0, 1, 1, 0], [0, 1, 0, 0])
    0.75
    """
    return _rate("balanced_accuracy", y_true, y_pred, sample_weight)


def tpr(y_true, y_pred, *, sample_weight=None) -> float:
    """True positive rate (sensitivity, recall), :math:`TP / (TP + FN)`; NaN without positives.

    Source: fairlearn ``true_positive_rate``; scikit-learn ``recall_score``.

    Examples
    --------
    >>> tpr([0, 1, 1, 0], [0, 1, 0, 0])
    0.5
    """
    return _rate("tpr", y_true, y_pred, sample_weight)


def fpr(y_true, y_pred, *, sample_weight=None) -> float:
    """False positive rate, :math:`FP / (FP + TN)`; NaN without negatives.

    Source: fairlearn ``false_positive_rate``.

    Examples
    --------
    >>> fpr([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    return _rate("fpr", y_true, y_pred, sample_weight)


def tnr(y_true, y_pred, *, sample_weight=None) -> float:
    """True negative rate (specificity), :math:`TN / (TN + FP)`; NaN without negatives.

    Source: fairlearn ``true_negative_rate``.

    Examples
    --------
    >>> tnr([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    return _rate("tnr", y_true, y_pred, sample_weight)


def fnr(y_true, y_pred, *, sample_weight=None) -> float:
    """False negative rate (miss rate), :math:`FN / (FN + TP)`; NaN without positives.

    Source: fairlearn ``false_negative_rate``.

    Examples
    --------
    >>> fnr([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    return _rate("fnr", y_true, y_pred, sample_weight)


def ppv(y_true, y_pred, *, sample_weight=None) -> float:
    """Positive predictive value (precision), :math:`TP / (TP + FP)`; NaN without predicted
    positives. Source: scikit-learn ``precision_score``.

    Examples
    --------
    >>> ppv([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    return _rate("ppv", y_true, y_pred, sample_weight)


def npv(y_true, y_pred, *, sample_weight=None) -> float:
    """Negative predictive value, :math:`TN / (TN + FN)`; NaN without predicted negatives.

    Source: standard diagnostic-test definition (Altman & Bland, BMJ 1994).

    Examples
    --------
    >>> npv([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    return _rate("npv", y_true, y_pred, sample_weight)


def selection_rate(y_true, y_pred, *, sample_weight=None) -> float:
    """Share predicted positive, :math:`(TP + FP) / n`. Source: fairlearn ``selection_rate``.

    Examples
    --------
    >>> selection_rate([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    return _rate("selection_rate", y_true, y_pred, sample_weight)


def f1(y_true, y_pred, *, sample_weight=None) -> float:
    """F1 score, :math:`2TP / (2TP + FP + FN)`; NaN when there are neither positives nor
    predicted positives. Source: scikit-learn ``f1_score``.

    Examples
    --------
    >>> f1([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    return _rate("f1", y_true, y_pred, sample_weight)
