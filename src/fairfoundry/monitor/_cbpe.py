r"""Label-free performance estimates from calibrated scores (CBPE).

Confidence-Based Performance Estimation, re-implemented from NannyML's description of the method
(docs "How it works: Performance estimation, CBPE"; no code copied): when the model's scores are
calibrated, :math:`p_i = P(y_i = 1 \mid s_i)` is the expected value of the unseen label, so every
cell of the confusion matrix at a threshold :math:`t` has a known expectation

.. math::

    \widehat{TP} = \sum_i p_i [s_i \ge t], \quad \widehat{FP} = \sum_i (1 - p_i) [s_i \ge t],
    \quad \widehat{FN} = \sum_i p_i [s_i < t], \quad \widehat{TN} = \sum_i (1 - p_i) [s_i < t],

and the ROC curve has expected points :math:`\widehat{TPR}(t) = \widehat{TP}(t) / \sum_i p_i`,
:math:`\widehat{FPR}(t) = \widehat{FP}(t) / \sum_i (1 - p_i)` whose trapezoidal area is the
estimated AUC. The calibration map :math:`s \mapsto p` is fitted on a labelled reference window
(isotonic regression by default, as NannyML; Platt scaling as an option). The estimate is
unbiased under pure covariate shift, i.e. when :math:`P(y \mid s)` stays what it was on the
reference window; it cannot see concept shift (a group's scores losing their meaning), which
the realised metrics reveal once labels arrive and the score-drift statistics may flag before.
"""

from __future__ import annotations

import numpy as np

from .._errors import FairfoundryError

__all__ = ["CBPE", "expected_auc", "expected_rates"]


def _blocks(s_sorted: np.ndarray) -> np.ndarray:
    """Last index of each block of tied scores in a descending-sorted array."""
    return np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])


def expected_auc(y_score, p) -> float:
    r"""Expected-ROC AUC from scores ``y_score`` and calibrated probabilities ``p``.

    Rows are sorted by score (descending); tied scores form one ROC step. Expected positives
    are :math:`\sum p`, expected negatives :math:`\sum (1 - p)`; NaN when either is 0.

    Examples
    --------
    >>> expected_auc([0.9, 0.1], [1.0, 0.0])
    1.0
    """
    s = np.asarray(y_score, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s, p = s[order], p[order]
    ends = _blocks(s)
    tp = np.r_[0.0, np.cumsum(p)[ends]]
    fp = np.r_[0.0, np.cumsum(1.0 - p)[ends]]
    if tp[-1] <= 0 or fp[-1] <= 0:
        return float("nan")
    x, y = fp / fp[-1], tp / tp[-1]
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))  # trapezoids


def expected_rates(y_score, p, *, threshold: float) -> dict:
    """Expected confusion cells and TPR / FPR / PPV at ``threshold`` (NaN when undefined)."""
    s = np.asarray(y_score, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    pos = s >= threshold
    tp, fp = float(p[pos].sum()), float((1 - p[pos]).sum())
    fn, tn = float(p[~pos].sum()), float((1 - p[~pos]).sum())
    nan = float("nan")
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "tpr": tp / (tp + fn) if tp + fn > 0 else nan,
            "fpr": fp / (fp + tn) if fp + tn > 0 else nan,
            "ppv": tp / (tp + fp) if tp + fp > 0 else nan}


class CBPE:
    """Fit a score calibration on labelled reference data; estimate metrics without labels.

    Parameters
    ----------
    calibration : {"isotonic", "platt"}
        Isotonic regression (NannyML's default) or logistic regression on the logit score.
    n_simulations : int
        Label draws :math:`y_i \\sim \\mathrm{Bernoulli}(p_i)` used for the interval of each
        estimate (0: no interval). The interval covers the realised metric's label-sampling
        spread given the calibration; it ignores the calibration's own error.
    confidence : float
        Level of that interval.
    seed : int
        Seed of the simulations.
    interval : {"simulation", "analytic"}
        How the interval is computed: ``n_simulations`` Monte Carlo label draws, or the
        delta method on the same label model (:func:`fairfoundry.monitor._intervals.cbpe_intervals`;
        one pass over the rows, the same quantity to first order). With ``"analytic"``,
        ``n_simulations`` is ignored.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> s = rng.uniform(size=4000); y = (rng.uniform(size=4000) < s).astype(int)
    >>> est = CBPE().fit(y, s)
    >>> round(est.estimate(s, threshold=0.5)["auc"], 2)
    0.83
    """

    def __init__(self, *, calibration: str = "isotonic", n_simulations: int = 200,
                 confidence: float = 0.95, seed: int = 0, interval: str = "simulation"):
        if calibration not in ("isotonic", "platt"):
            raise FairfoundryError(f"calibration={calibration!r} is not one of isotonic, platt")
        if interval not in ("simulation", "analytic"):
            raise FairfoundryError(f"interval={interval!r} is not one of simulation, analytic")
        self.interval = interval
        self.calibration = calibration
        self.n_simulations = int(n_simulations)
        self.confidence = float(confidence)
        self.seed = int(seed)

    def fit(self, y_true, y_score) -> CBPE:
        """Fit the calibration map on reference labels ``y_true`` and scores ``y_score``."""
        y = np.asarray(y_true, dtype=np.float64)
        s = np.asarray(y_score, dtype=np.float64)
        if y.shape != s.shape or y.ndim != 1 or len(y) == 0:
            raise FairfoundryError("CBPE.fit needs equal-length 1-D labels and scores")
        if len(np.unique(y)) < 2:
            raise FairfoundryError("the reference window has one class only: CBPE cannot be "
                                   "calibrated", hint="use a longer reference window")
        if self.calibration == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            self.model_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
        else:
            from sklearn.linear_model import LogisticRegression

            self.model_ = LogisticRegression(C=1e6).fit(_logit(s)[:, None], y.astype(int))
        self.n_reference_ = len(y)
        return self

    def calibrate(self, y_score) -> np.ndarray:
        """Calibrated probabilities of ``y_score``."""
        s = np.asarray(y_score, dtype=np.float64)
        if self.calibration == "isotonic":
            return np.clip(self.model_.predict(s), 0.0, 1.0)
        return self.model_.predict_proba(_logit(s)[:, None])[:, 1]

    def estimate(self, y_score, *, threshold: float) -> dict:
        """Estimated ``auc``, ``tpr``, ``fpr``, ``ppv``, ``prevalence`` of unlabelled scores,
        each with ``<metric>_ci`` (low, high) when ``interval="analytic"`` or
        ``n_simulations > 0``."""
        s = np.asarray(y_score, dtype=np.float64)
        p = self.calibrate(s)
        out = {"n": len(s), "auc": expected_auc(s, p), "prevalence": float(p.mean()) if len(p)
               else float("nan")}
        out.update({k: v for k, v in expected_rates(s, p, threshold=threshold).items()
                    if k in ("tpr", "fpr", "ppv")})
        if self.interval == "analytic" and len(s) > 1:
            from ._intervals import cbpe_intervals

            out.update(cbpe_intervals(s, p, threshold=threshold, estimates=out,
                                      confidence=self.confidence))
        elif self.n_simulations > 0 and len(s) > 1:
            from scipy.stats import rankdata

            rng = np.random.default_rng(self.seed)
            alpha = (1 - self.confidence) / 2
            # float32 throughout: ranks, counts and 0/1 labels are exact below 2**24 rows
            p32 = p.astype(np.float32)
            M = np.stack([rankdata(s), (s >= threshold), np.ones_like(s)], axis=1).astype(
                np.float32)
            n_pos_pred = float(M[:, 1].sum())
            n = len(s)
            cols = []
            for b0 in range(0, self.n_simulations, 50):
                b = min(50, self.n_simulations - b0)
                Y = (rng.random((b, n), dtype=np.float32) < p32).astype(np.float32)
                cols.append((Y @ M).astype(np.float64))  # rank sum, TP, positives
            R = np.concatenate(cols)
            rs, tp, n1 = R[:, 0], R[:, 1], R[:, 2]
            n0 = n - n1
            fp = n_pos_pred - tp
            with np.errstate(invalid="ignore", divide="ignore"):
                sims = {"auc": (rs - n1 * (n1 + 1) / 2.0) / (n1 * n0), "tpr": tp / n1,
                        "fpr": fp / n0, "ppv": tp / n_pos_pred if n_pos_pred else
                        np.full_like(tp, np.nan), "prevalence": n1 / n}
            for k, v in sims.items():
                v = v[np.isfinite(v)]
                out[f"{k}_ci"] = ((float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha)))
                                  if len(v) else (float("nan"), float("nan")))
        return out


def _logit(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 1e-6, 1 - 1e-6)
    return np.log(s / (1 - s))
