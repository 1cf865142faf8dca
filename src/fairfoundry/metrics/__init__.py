"""Utility and fairness metrics for binary classifiers, by group, with bootstrap CIs.

Layer 0: numpy / pandas / scipy only. Per-metric functions take arrays like scikit-learn's;
:func:`evaluate_groups` computes every metric and summary for every group at once, with
stratified / clustered bootstrap CIs (percentile or BCa) and permutation p-values. See
``docs/metrics.md`` for the glossary of formulas and sources.
"""

from ._bootstrap import (
    ResamplePlan,
    bca_interval,
    pairwise_gap_interval,
    percentile_interval,
    permutation_pvalue,
)
from ._calibration import brier_score, calibration_slope_intercept, ece, log_loss
from ._confusion import (
    accuracy,
    balanced_accuracy,
    confusion_counts,
    f1,
    fnr,
    fpr,
    n_samples,
    npv,
    positives,
    ppv,
    prevalence,
    rates_from_counts,
    selection_rate,
    tnr,
    tpr,
)
from ._engine import (
    DIFF_METRICS,
    FAMILY,
    METRICS,
    GroupResult,
    evaluate_groups,
    intersect_groups,
    underdiagnosis_by_group,
)
from ._options import EngineOptions
from ._paired import paired_bootstrap_intervals, t_interval
from ._persample import evaluate_group_means
from ._ranking import average_precision, roc_auc
from ._records import PER_GROUP, MetricRecord, metric_record
from ._summary import (
    DIRECTION,
    SUMMARIES,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    equalized_odds_ratio,
    equalized_odds_score,
    es_accuracy,
    es_auc,
    gap,
    group_values,
    predictive_parity_difference,
    ratio,
    register_summary,
    to_overall,
    underdiagnosis_rate,
    vs_reference,
    worst_group,
)
from ._thresholds import (
    THRESHOLD_METHODS,
    ThresholdRule,
    choose_threshold,
    parse_threshold,
    roc_points,
)

__all__ = [
    "DIRECTION", "DIFF_METRICS", "FAMILY", "METRICS", "SUMMARIES", "GroupResult", "ResamplePlan",
    # the per-group metric records (name, kernel, direction, formula, source)
    "MetricRecord", "PER_GROUP", "metric_record",
    "accuracy", "average_precision", "balanced_accuracy", "bca_interval", "brier_score",
    "calibration_slope_intercept", "confusion_counts", "demographic_parity_difference",
    "demographic_parity_ratio", "ece", "equal_opportunity_difference",
    "equalized_odds_difference", "equalized_odds_ratio", "equalized_odds_score",
    "EngineOptions", "es_accuracy", "es_auc", "evaluate_groups", "f1", "fnr", "fpr", "gap", "group_values",
    "intersect_groups", "log_loss", "pairwise_gap_interval", "n_samples", "npv",
    "percentile_interval",
    "permutation_pvalue", "positives", "ppv", "predictive_parity_difference", "prevalence",
    "rates_from_counts", "ratio", "register_summary", "roc_auc", "selection_rate", "tnr",
    "to_overall", "tpr", "underdiagnosis_by_group", "underdiagnosis_rate", "vs_reference",
    "worst_group",
    # decision thresholds (fixed or chosen on a validation split)
    "THRESHOLD_METHODS", "ThresholdRule", "choose_threshold", "parse_threshold", "roc_points",
    # per-sample values (Dice, hallucination flags) averaged per group, same replicates
    "evaluate_group_means",
    # paired differences (over seeds; over shared bootstrap resamples)
    "paired_bootstrap_intervals", "t_interval",
]
