"""Hallucination in generated radiology reports and in zero-shot VLM calls, by protected group.

- :func:`label_reports`: an offline, rule-based labeler of the 14 CheXpert observations
  (positive / negative / uncertain / absent) with NegBio-style negation and uncertainty;
- :func:`hallucination_table`: per-report hallucinated / omitted / contradicted findings and a
  severity score, against reference reports or labels;
- :func:`evaluate_reports`: their rates per group and intersection with bootstrap CIs clustered
  by patient, gaps and permutation tests (``fairfoundry evaluate-reports``);
- :func:`zero_shot_hallucination`: confident positive zero-shot calls on absent findings, by
  group; :func:`zero_shot_hallucination_table` for several attributes (what ``fit
  --adaptation zero-shot`` writes);
- :class:`GroupedEvaluation`, :func:`attribute_groups`: the per-sample evaluation result and
  group building shared with :mod:`fairfoundry.segmentation`.

Layer 1 (numpy / pandas / jinja2; no torch). See ``docs/hallucination.md``.
"""

from ._grouped import OUTPUT_FILES, Attribute, GroupedEvaluation, attribute_groups
from ._labeler import (
    FINDINGS,
    LEVELS,
    NEGATIVE,
    OBSERVATIONS,
    POSITIVE,
    UNCERTAIN,
    label_report,
    label_reports,
)
from ._metrics import REPORT_METRICS, SEVERITY, hallucination_table
from ._reports import evaluate_reports
from ._zeroshot import zero_shot_hallucination, zero_shot_hallucination_table

__all__ = ["FINDINGS", "LEVELS", "NEGATIVE", "OBSERVATIONS", "OUTPUT_FILES", "POSITIVE",
           "REPORT_METRICS", "SEVERITY", "UNCERTAIN", "Attribute", "GroupedEvaluation",
           "attribute_groups", "evaluate_reports", "hallucination_table", "label_report",
           "label_reports", "zero_shot_hallucination", "zero_shot_hallucination_table"]
