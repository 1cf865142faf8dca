r"""Ranking metrics: ROC AUC and average precision, from one sort with tie blocks."""

from __future__ import annotations

import numpy as np

from ._checks import as_binary, as_scores, as_weights, same_length
from ._kernel import build_layout, segment_stats

__all__ = ["roc_auc", "average_precision", "single_segment_stats"]


def single_segment_stats(y_true, y_score, *, sample_weight=None, need=(), threshold=0.5,
                         ece_bins=10, ece_strategy="uniform", probability=True):
    """Validate inputs and run the weighted kernel on one segment (all rows)."""
    y = as_binary(y_true, name="y_true")
    s = as_scores(y_score, name="y_score", probability=probability)
    n = same_length(y, s)
    w = as_weights(sample_weight, n)
    layout = build_layout(y, s, np.zeros(n, dtype=np.int64), 1, threshold=threshold,
                          ece_bins=ece_bins, ece_strategy=ece_strategy)
    W = w[layout.order][None, :]
    integer = bool(np.all(w == np.round(w)))
    stats = segment_stats(layout.segments[0], W, layout, need=set(need), integer_weights=integer)
    return {k: float(v[0]) for k, v in stats.items() if v.ndim == 1}


def roc_auc(y_true, y_score, *, sample_weight=None) -> float:
    r"""Area under the ROC curve (tie-aware); NaN if a class is absent.

    .. math:: \mathrm{AUC} = \frac{\sum_{i: y_i=1} \sum_{j: y_j=0} w_i w_j
              \left(\mathbb{1}[s_i > s_j] + \tfrac12 \mathbb{1}[s_i = s_j]\right)}
              {\left(\sum_{i: y_i=1} w_i\right)\left(\sum_{j: y_j=0} w_j\right)}

    the Mann-Whitney statistic, computed from one sort with tie blocks. Equals scikit-learn's
    ``roc_auc_score`` (trapezoidal ROC area). Source: Hanley & McNeil, Radiology 1982.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> roc_auc([0, 1], [0.5, 0.5])
    0.5
    """
    return single_segment_stats(y_true, y_score, sample_weight=sample_weight,
                                need={"auc"}, probability=False)["auc"]


def average_precision(y_true, y_score, *, sample_weight=None) -> float:
    r"""Average precision (area under the step precision-recall curve); NaN without positives.

    .. math:: \mathrm{AP} = \sum_k (R_k - R_{k-1}) P_k

    over the distinct score thresholds in decreasing order, ties counted together. Equals
    scikit-learn's ``average_precision_score`` (no interpolation).
    Source: scikit-learn; Manning, Raghavan & Schütze, *Introduction to IR*, 2008, ch. 8.

    Examples
    --------
    >>> round(average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 6)
    0.833333
    """
    return single_segment_stats(y_true, y_score, sample_weight=sample_weight,
                                need={"ap"}, probability=False)["ap"]
