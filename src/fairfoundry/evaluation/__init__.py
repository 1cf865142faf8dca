"""Fairness evaluation of per-sample predictions: ``fairfoundry.evaluate`` and its outputs.

Layer 1: validates inputs, chooses thresholds, calls :mod:`fairfoundry.metrics` (the single source
of metric values) and assembles the :class:`Evaluation`; the HTML lives in :mod:`fairfoundry.report`.
"""

from ._evaluate import NO_FINDING_RULES, evaluate, prepare_evaluation
from ._examples import EXAMPLES, example_options
from ._findings import HEADLINE_METRICS, find_findings, holm_adjust
from ._macro import MACRO_LABEL
from ._plan import UNDERDIAGNOSIS_LABEL, EvaluationPlan
from ._result import BY_GROUP_COLUMNS, OUTPUT_FILES, SUMMARY_COLUMNS, TABLE_FILES, Evaluation

__all__ = [
    "BY_GROUP_COLUMNS",
    "EXAMPLES",
    "HEADLINE_METRICS",
    "MACRO_LABEL",
    "NO_FINDING_RULES",
    "OUTPUT_FILES",
    "TABLE_FILES",
    "SUMMARY_COLUMNS",
    "UNDERDIAGNOSIS_LABEL",
    "Evaluation",
    "EvaluationPlan",
    "evaluate",
    "example_options",
    "find_findings",
    "holm_adjust",
    "prepare_evaluation",
]
