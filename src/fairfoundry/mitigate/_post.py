r"""Post-processing: group-specific thresholds and per-group calibration, fitted on validation.

Both are scikit-learn-style: ``fit(scores, y, groups)`` on validation predictions, then
``predict_proba(scores, groups)`` returns *transformed scores* in [0, 1]. Group thresholds are
expressed as scores too: a monotone per-group shift in logit space maps each group's threshold
to 0.5, so thresholding the new score at 0.5 applies the group-specific thresholds, ranking
within a group is unchanged (per-group AUC is unchanged), and the result stays a valid
``y_score`` for evaluation.
"""

from __future__ import annotations

import logging

import numpy as np

from .._errors import FairfoundryError
from ._registry import register

__all__ = ["GroupThreshold", "GroupCalibration"]

log = logging.getLogger(__name__)


def _logit(p):
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _as_str(groups) -> np.ndarray:
    g = np.asarray(groups, dtype=object)
    return np.array(["unknown" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in g],
                    dtype=object)


def _check(scores, y, groups):
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1:
        raise FairfoundryError("post-processing works on one label at a time: scores must be 1-D")
    if groups is None:
        raise FairfoundryError("post-processing mitigations need the sensitive attribute (groups=)")
    g = _as_str(groups)
    if len(g) != len(s):
        raise FairfoundryError(f"{len(s)} scores but {len(g)} group values")
    if y is not None:
        y = np.asarray(y, dtype=float)
        if len(y) != len(s):
            raise FairfoundryError(f"{len(s)} scores but {len(y)} labels")
    return s, y, g


class _PostBase:
    stage = "post"

    def _fallback(self, groups):
        unknown = sorted(set(groups.tolist()) - set(self.groups_))
        if unknown:
            log.warning("%s: groups not seen when fitting (%s) use the global mapping", self.name, ", ".join(unknown[:5]))

    def predict_proba(self, scores, groups) -> np.ndarray:
        """scikit-learn layout ``(n, 2)`` of transformed scores."""
        p = self.transform(scores, groups)
        return np.column_stack([1 - p, p])

    def predict(self, scores, groups) -> np.ndarray:
        """0/1 decisions with the group-specific rule."""
        return (self.transform(scores, groups) >= 0.5).astype(int)


@register("group-threshold", stage="post")
class GroupThreshold(_PostBase):
    r"""Group-specific decision thresholds chosen on validation for DP, EOpp or EO.

    With the reference operating point from one global threshold ``t0`` on validation
    (``t0=None``: the threshold maximising Youden's J = TPR - FPR):

    - ``constraint="dp"``: each group's threshold gives the global positive rate
      (demographic parity);
    - ``"eopp"``: each group's threshold gives the global TPR (equal opportunity);
    - ``"eo"``: each group's threshold minimises :math:`\max(|TPR_g - TPR|, |FPR_g - FPR|)`
      (equalized odds with deterministic thresholds).

    Hardt, Price & Srebro, "Equality of Opportunity in Supervised Learning", NeurIPS 2016 solve
    equalized odds exactly with *randomised* thresholds (fairlearn's ``ThresholdOptimizer``);
    here thresholds are deterministic, so EO is met approximately, and a patient always gets
    the same decision. Groups with no positives (or no negatives) in validation keep ``t0``.
    """

    def __init__(self, constraint: str = "eo", t0: float | None = None):
        if constraint not in ("dp", "eopp", "eo"):
            raise ValueError("constraint must be 'dp', 'eopp' or 'eo'")
        self.constraint, self.t0 = constraint, t0

    def fit(self, scores, y, groups):
        s, y, g = _check(scores, y, groups)
        if y is None or np.unique(y[~np.isnan(y)]).size < 2:
            raise FairfoundryError("group thresholds need both classes in the validation split")
        keep = ~np.isnan(y)
        s, y, g = s[keep], y[keep].astype(int), g[keep]
        if self.t0 is None:
            cand = np.unique(s)
            tpr = np.array([np.mean(s[y == 1] >= t) for t in cand])
            fpr = np.array([np.mean(s[y == 0] >= t) for t in cand])
            t0 = float(cand[int(np.argmax(tpr - fpr))])
        else:
            t0 = float(self.t0)
        d = s >= t0
        target = {"rate": d.mean(), "tpr": d[y == 1].mean(), "fpr": d[y == 0].mean()}
        self.t0_, self.target_ = t0, target
        self.thresholds_ = {}
        for gv in np.unique(g):
            m = g == gv
            sg, yg = s[m], y[m]
            cand = np.concatenate([np.unique(sg), [np.inf]])
            if self.constraint == "dp":
                rate = np.array([np.mean(sg >= t) for t in cand])
                err = np.abs(rate - target["rate"])
            else:
                if yg.min() == yg.max():
                    self.thresholds_[gv] = t0
                    log.warning("group-threshold: group %r has one class in validation; it keeps t0", gv)
                    continue
                tpr = np.array([np.mean(sg[yg == 1] >= t) for t in cand])
                fpr = np.array([np.mean(sg[yg == 0] >= t) for t in cand])
                if self.constraint == "eopp":
                    err = np.abs(tpr - target["tpr"])
                else:
                    err = np.maximum(np.abs(tpr - target["tpr"]), np.abs(fpr - target["fpr"]))
            best = np.flatnonzero(err <= err.min() + 1e-12)
            # among equally good thresholds take the one closest to t0
            t = cand[best[np.argmin(np.abs(np.where(np.isinf(cand[best]), 1e9, cand[best]) - t0))]]
            self.thresholds_[gv] = float(min(t, 1.0))
        self.groups_ = list(self.thresholds_)
        return self

    def transform(self, scores, groups) -> np.ndarray:
        """Scores whose 0.5 threshold applies each group's threshold (order within a group kept)."""
        s, _, g = _check(scores, None, groups)
        self._fallback(g)
        t = np.array([self.thresholds_.get(v, self.t0_) for v in g], dtype=float)
        # logit(s) - logit(t) > 0  <=>  s > t ; ties (s == t) map to exactly 0.5 -> positive
        return _sigmoid(_logit(s) - _logit(t))


@register("group-calibration", stage="post")
class GroupCalibration(_PostBase):
    r"""Per-group calibration of scores on validation: Platt scaling or isotonic regression.

    ``method="platt"`` fits :math:`P(y=1 \mid s, g) = \sigma(a_g\,\mathrm{logit}(s) + b_g)`
    per group (Platt, 1999); ``"isotonic"`` fits a monotone step function per group
    (Zadrozny & Elkan, KDD 2002). Targets calibration within each group (the
    "calibration within groups" criterion of Kleinberg et al., 2017 / Pleiss et al., NeurIPS
    2017). Groups with one class or fewer than ``min_count`` validation samples use the global
    calibrator.
    """

    def __init__(self, method: str = "platt", min_count: int = 20):
        if method not in ("platt", "isotonic"):
            raise ValueError("method must be 'platt' or 'isotonic'")
        self.method, self.min_count = method, int(min_count)

    def _fit_one(self, s, y):
        if self.method == "platt":
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1e4, max_iter=1000)
            lr.fit(_logit(s)[:, None], y)
            return lambda x: lr.predict_proba(_logit(x)[:, None])[:, 1]
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(s, y)
        return iso.predict

    def fit(self, scores, y, groups):
        s, y, g = _check(scores, y, groups)
        if y is None or np.unique(y[~np.isnan(y)]).size < 2:
            raise FairfoundryError("group calibration needs both classes in the validation split")
        keep = ~np.isnan(y)
        s, y, g = s[keep], y[keep].astype(int), g[keep]
        self.global_ = self._fit_one(s, y)
        self.calibrators_ = {}
        for gv in np.unique(g):
            m = g == gv
            if m.sum() >= self.min_count and np.unique(y[m]).size == 2:
                self.calibrators_[gv] = self._fit_one(s[m], y[m])
            else:
                log.warning("group-calibration: group %r is too small or one-class; it uses the global calibrator", gv)
        self.groups_ = list(np.unique(g))
        return self

    def transform(self, scores, groups) -> np.ndarray:
        s, _, g = _check(scores, None, groups)
        self._fallback(g)
        out = self.global_(s) if len(s) else np.zeros(0)
        out = np.asarray(out, dtype=float)
        for gv, cal in self.calibrators_.items():
            m = g == gv
            if m.any():
                out[m] = cal(s[m])
        return out
