"""Decision thresholds: fixed, or chosen on a validation split by a named rule.

A threshold turns scores into decisions with ``y_pred = (y_score >= threshold)``, the same
convention as :func:`fairfoundry.metrics.evaluate_groups` and scikit-learn's ``roc_curve``.
Rules that look at labels (Youden, max F1, target sensitivity/specificity) must be applied to
a split that is *not* the one being reported; :func:`fairfoundry.evaluate` enforces that.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .._errors import FairfoundryError

__all__ = ["ThresholdRule", "parse_threshold", "choose_threshold", "roc_points", "THRESHOLD_METHODS"]

#: rule names accepted by :func:`parse_threshold` (besides a plain number).
THRESHOLD_METHODS = ("fixed", "youden", "max_f1", "sensitivity", "specificity")

_TARGET = re.compile(r"^\s*(sens|sensitivity|tpr|spec|specificity|tnr)\s*[=:@]\s*([0-9.eE+-]+)\s*$")


@dataclass(frozen=True)
class ThresholdRule:
    """How a decision threshold is obtained.

    Attributes
    ----------
    method : {"fixed", "youden", "max_f1", "sensitivity", "specificity"}
    value : float or None
        The threshold itself for ``fixed``; the target rate for ``sensitivity`` and
        ``specificity``; None otherwise.
    """

    method: str
    value: float | None = None

    @property
    def needs_labels(self) -> bool:
        """True when the rule looks at labels (so it must be chosen on a separate split)."""
        return self.method != "fixed"

    def __str__(self) -> str:
        if self.method == "fixed":
            return f"{self.value:g}"
        if self.method == "sensitivity":
            return f"sens={self.value:g}"
        if self.method == "specificity":
            return f"spec={self.value:g}"
        return self.method


def parse_threshold(spec: float | str | ThresholdRule) -> ThresholdRule:
    """Parse a threshold specification.

    Accepted: a number (``0.5``), ``"youden"``, ``"max_f1"``, ``"sens=0.9"`` (also
    ``sensitivity=0.9`` / ``tpr=0.9``) and ``"spec=0.95"`` (also ``specificity=`` / ``tnr=``).

    Examples
    --------
    >>> parse_threshold("sens=0.9")
    ThresholdRule(method='sensitivity', value=0.9)
    >>> parse_threshold(0.3).method
    'fixed'
    """
    if isinstance(spec, ThresholdRule):
        return spec
    if isinstance(spec, (int, float, np.floating, np.integer)) and not isinstance(spec, bool):
        value = float(spec)
        if not math.isfinite(value):
            raise FairfoundryError(f"threshold must be a finite number, got {spec!r}")
        return ThresholdRule("fixed", value)
    text = str(spec).strip()
    low = text.lower().replace("-", "_")
    if low in ("youden", "youden_j", "j"):
        return ThresholdRule("youden")
    if low in ("max_f1", "maxf1", "f1"):
        return ThresholdRule("max_f1")
    match = _TARGET.match(low)
    if match:
        kind, raw = match.groups()
        try:
            target = float(raw)
        except ValueError:
            target = float("nan")
        if not 0.0 < target <= 1.0:
            raise FairfoundryError(f"threshold {text!r}: the target rate must be in (0, 1]")
        method = "sensitivity" if kind in ("sens", "sensitivity", "tpr") else "specificity"
        return ThresholdRule(method, target)
    try:
        return parse_threshold(float(text))
    except ValueError:
        pass
    raise FairfoundryError(
        f"unknown threshold {text!r}",
        hint="use a number (0.5), youden, max_f1, sens=0.9 or spec=0.95",
    )


def _roc_points(y_true: np.ndarray, y_score: np.ndarray):
    """Distinct thresholds (descending) with cumulative TP and FP counts at ``score >= t``."""
    order = np.argsort(-y_score, kind="mergesort")
    s = y_score[order]
    y = y_true[order]
    last_of_block = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.cumsum(y)[last_of_block].astype(float)
    fp = (last_of_block + 1 - tp).astype(float)
    return s[last_of_block], tp, fp


def roc_points(y_true, y_score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The ROC operating points: one per distinct score, tie-aware.

    For each distinct score :math:`t` (descending), :math:`\mathrm{TPR}(t)` and
    :math:`\mathrm{FPR}(t)` of the decision ``y_score >= t`` (as scikit-learn's ``roc_curve`` with
    ``drop_intermediate=False``, without its leading infinite threshold).

    Returns
    -------
    thresholds, fpr, tpr : arrays of shape (k,)
        NaN rates when a class is absent.

    Examples
    --------
    >>> t, fpr, tpr = roc_points([0, 1, 1], [0.2, 0.9, 0.2])
    >>> t.tolist(), fpr.tolist(), tpr.tolist()
    ([0.9, 0.2], [0.0, 1.0], [0.5, 1.0])
    """
    y = np.asarray(y_true).astype(np.int64).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    if s.size == 0:
        empty = np.empty(0)
        return empty, empty, empty
    thr, tp, fp = _roc_points(y, s)
    n_pos, n_neg = tp[-1], fp[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return thr, fp / n_neg, tp / n_pos


def choose_threshold(y_true, y_score, rule: float | str | ThresholdRule) -> float:
    r"""Choose a decision threshold on ``(y_true, y_score)`` by ``rule``.

    Candidates are the distinct scores; predictions are ``y_score >= t``.

    - ``youden``: maximise Youden's :math:`J = \mathrm{TPR} - \mathrm{FPR}` (Youden, Cancer 1950);
      ties go to the highest threshold.
    - ``max_f1``: maximise :math:`F_1 = 2\,TP / (2\,TP + FP + FN)`; ties go to the highest threshold.
    - ``sensitivity`` (target :math:`s`): the highest threshold with :math:`\mathrm{TPR} \ge s`
      (the most specific operating point reaching the target sensitivity).
    - ``specificity`` (target :math:`s`): the lowest threshold with :math:`\mathrm{TNR} \ge s`
      (the most sensitive operating point keeping the target specificity); if only "predict
      nobody positive" qualifies, a value just above the highest score.
    - ``fixed``: the rule's value, whatever the data.

    Parameters
    ----------
    y_true : array of shape (n,), values in {0, 1}
    y_score : array of shape (n,), finite
    rule : number, rule string (see :func:`parse_threshold`) or :class:`ThresholdRule`

    Returns
    -------
    float

    Raises
    ------
    FairfoundryError
        If a data-driven rule is given data with a single class.

    Examples
    --------
    >>> choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], "youden")
    0.8
    >>> choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], "sens=1.0")
    0.35
    """
    rule = parse_threshold(rule)
    if rule.method == "fixed":
        return float(rule.value)
    y = np.asarray(y_true).astype(np.int64).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise FairfoundryError(
            f"cannot choose a {rule} threshold: the data has {n_pos} positives and {n_neg} negatives",
            hint="both classes are needed; pass a fixed --threshold instead",
        )
    thr, tp, fp = _roc_points(y, s)
    tpr = tp / n_pos
    fpr = fp / n_neg
    if rule.method == "youden":
        return float(thr[int(np.argmax(tpr - fpr))])
    if rule.method == "max_f1":
        f1 = 2 * tp / (2 * tp + fp + (n_pos - tp))
        return float(thr[int(np.argmax(f1))])
    if rule.method == "sensitivity":
        idx = int(np.searchsorted(tpr, rule.value - 1e-12, side="left"))
        return float(thr[min(idx, thr.size - 1)])
    # specificity: TNR = 1 - FPR >= target  <=>  FPR <= 1 - target; FPR is non-decreasing
    ok = np.flatnonzero(fpr <= (1.0 - rule.value) + 1e-12)
    if ok.size == 0:
        return float(np.nextafter(thr[0], np.inf))
    return float(thr[ok[-1]])
