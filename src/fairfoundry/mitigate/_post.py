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


def _labelled(scores, y, groups, *, what: str):
    """Scores, 0/1 labels and groups of the labelled validation rows; both classes required."""
    s, y, g = _check(scores, y, groups)
    if y is None or np.unique(y[~np.isnan(y)]).size < 2:
        raise FairfoundryError(f"{what} both classes in the validation split")
    keep = ~np.isnan(y)
    return s[keep], y[keep].astype(int), g[keep]


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

    ``threshold_rule="deterministic"`` (default) gives every patient the same decision for the
    same score, so EO is met only approximately. ``threshold_rule="randomized"`` (``"eo"`` only)
    is Hardt, Price & Srebro, "Equality of Opportunity in Supervised Learning", NeurIPS 2016,
    as fairlearn's ``ThresholdOptimizer`` implements it: every group's achievable (FPR, TPR)
    set is the convex hull of its validation ROC curve; the common operating point
    :math:`(x^*, y^*)` maximises ``objective`` (``"balanced_accuracy"``: TPR - FPR, or
    ``"accuracy"``) on the upper boundary :math:`y = \min_g \mathrm{hull}_g(x)` of their
    intersection (a grid of ``grid_size`` FPR values plus the hull vertices); each group reaches
    it by mixing its two neighbouring hull thresholds :math:`t_a \le t_b` and, when the point
    lies under its hull, random guessing with probability :math:`x^*`. The decision rule is
    :math:`P(\hat y = 1 \mid s, g) \in \{p_{lo}, p_{mid}, p_{hi}\}` for :math:`s < t_a`,
    :math:`t_a \le s < t_b`, :math:`s \ge t_b` (``rules_``); :meth:`transform` draws the
    decisions with ``random_state`` (reproducible for the same samples in the same order) and
    returns scores that are :math:`\ge 0.5` exactly for the positive draws, ordered within a
    group by (rule level, score), so per-group AUCs change where decisions are random.

    Groups with no positives (or no negatives) in validation keep ``t0``. A group whose best
    rule is "never positive" gets threshold :math:`+\infty` (no score, 1.0 included, is positive).
    """

    def __init__(self, constraint: str = "eo", t0: float | None = None, threshold_rule: str = "deterministic",
                 objective: str = "balanced_accuracy", grid_size: int = 1000, random_state: int = 0):
        if constraint not in ("dp", "eopp", "eo"):
            raise ValueError("constraint must be 'dp', 'eopp' or 'eo'")
        if threshold_rule not in ("deterministic", "randomized"):
            raise ValueError("threshold_rule must be 'deterministic' or 'randomized'")
        if threshold_rule == "randomized" and constraint != "eo":
            raise ValueError("threshold_rule='randomized' is implemented for constraint='eo'")
        if objective not in ("balanced_accuracy", "accuracy"):
            raise ValueError("objective must be 'balanced_accuracy' or 'accuracy'")
        self.constraint, self.t0 = constraint, t0
        self.threshold_rule, self.objective = threshold_rule, objective
        self.grid_size, self.random_state = int(grid_size), int(random_state)

    def fit(self, scores, y, groups):
        s, y, g = _labelled(scores, y, groups, what="group thresholds need")
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
            self.thresholds_[gv] = float(t)  # +inf: never positive
        self.groups_ = list(self.thresholds_)
        if self.threshold_rule == "randomized":
            self._fit_randomized(s, y, g)
        return self

    def _fit_randomized(self, s, y, g):
        """Hardt et al.'s equalized-odds point on the intersection of the groups' ROC hulls."""
        hulls = {}
        for gv in np.unique(g):
            m = g == gv
            if y[m].min() != y[m].max():
                hulls[gv] = _roc_hull(s[m], y[m])
        if not hulls:
            self.rules_ = {}
            return
        xs = np.unique(np.concatenate([np.linspace(0.0, 1.0, self.grid_size + 1),
                                       *[h[0] for h in hulls.values()]]))
        ys = np.min([np.interp(xs, h[0], h[1]) for h in hulls.values()], axis=0)
        if self.objective == "balanced_accuracy":
            value = ys - xs
        else:
            prev = float(np.mean(y[np.isin(g, list(hulls))]))
            value = prev * ys + (1 - prev) * (1 - xs)
        k = int(np.argmax(value))
        x_star, y_star = float(xs[k]), float(ys[k])
        self.operating_point_ = {"fpr": x_star, "tpr": y_star}
        self.rules_ = {gv: _mix_rule(*h, x_star, y_star) for gv, h in hulls.items()}

    def decision_probability(self, scores, groups) -> np.ndarray:
        """:math:`P(\\hat y = 1 \\mid s, g)` of the fitted rule (0/1 for deterministic thresholds)."""
        s, _, g = _check(scores, None, groups)
        t = np.array([self.thresholds_.get(v, self.t0_) for v in g], dtype=float)
        p = (s >= t).astype(float)
        for gv, r in getattr(self, "rules_", {}).items():
            m = g == gv
            p[m] = np.where(s[m] >= r["t_b"], r["p_hi"], np.where(s[m] >= r["t_a"], r["p_mid"], r["p_lo"]))
        return p

    def transform(self, scores, groups) -> np.ndarray:
        """Scores whose 0.5 threshold applies each group's rule (deterministic: order within a group kept)."""
        s, _, g = _check(scores, None, groups)
        self._fallback(g)
        t = np.array([self.thresholds_.get(v, self.t0_) for v in g], dtype=float)
        # logit(s) - logit(t) >= 0  <=>  s >= t, decided on the raw scores so that clipping at
        # 1 - 1e-7 cannot turn "never positive" (t = +inf) or s < t into a positive
        pos = s >= t
        m = _logit(s) - _logit(np.where(np.isinf(t), 1.0, t))
        m = np.where(pos, np.maximum(m, 0.0), np.minimum(m, -1e-6))
        out = _sigmoid(m)
        rules = getattr(self, "rules_", {})
        if rules:
            rng = np.random.default_rng([self.random_state, 18])  # own stream, not default_rng(0)
            u = rng.random(len(s))
            for gv, r in rules.items():
                k = g == gv
                sk = s[k]
                level = np.where(sk >= r["t_b"], 2, np.where(sk >= r["t_a"], 1, 0))
                p = np.array([r["p_lo"], r["p_mid"], r["p_hi"]])[level]
                d = u[k] < p
                # negatives in (-4, -1), positives in (0, 3); within each by (level, score)
                z = level + _sigmoid(_logit(sk))
                out[k] = _sigmoid(np.where(d, z, z - 4.0))
        return out


def _roc_hull(s, y):
    """Upper convex hull of the ROC points of thresholds "s >= t": (fpr, tpr, threshold), fpr ascending."""
    thr = np.concatenate([[np.inf], np.unique(s)[::-1]])
    pos, neg = s[y == 1], s[y == 0]
    tpr = np.array([np.mean(pos >= t) for t in thr])
    fpr = np.array([np.mean(neg >= t) for t in thr])
    hull: list[int] = []
    for i in range(len(thr)):  # points already sorted by fpr (ties: tpr) ascending
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (fpr[b] - fpr[a]) * (tpr[i] - tpr[a]) - (tpr[b] - tpr[a]) * (fpr[i] - fpr[a])
            if cross >= 0:  # b is on or below the segment a-i
                hull.pop()
            else:
                break
        hull.append(i)
    idx = np.array(hull)
    return fpr[idx], tpr[idx], thr[idx]


def _mix_rule(fpr, tpr, thr, x, y) -> dict:
    """The randomised rule of one group reaching (x, y) inside its ROC hull."""
    k = int(np.clip(np.searchsorted(fpr, x, side="right") - 1, 0, len(fpr) - 2))
    span = fpr[k + 1] - fpr[k]
    w = 0.0 if span <= 0 else float(np.clip((x - fpr[k]) / span, 0.0, 1.0))
    y_h = tpr[k] + w * (tpr[k + 1] - tpr[k])
    lam = 1.0 if y_h - x <= 1e-12 else float(np.clip((y - x) / (y_h - x), 0.0, 1.0))
    # with prob. lam: threshold thr[k+1] w.p. w, else thr[k]; with prob. 1 - lam: positive w.p. x
    return {"t_a": float(thr[k + 1]), "t_b": float(thr[k]), "p_lo": (1 - lam) * x,
            "p_mid": lam * w + (1 - lam) * x, "p_hi": lam + (1 - lam) * x}


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
        s, y, g = _labelled(scores, y, groups, what="group calibration needs")
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
