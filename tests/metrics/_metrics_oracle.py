"""Slow, obvious per-group metrics from scikit-learn / fairlearn: the oracle for the fast engine."""

from __future__ import annotations

import warnings

import numpy as np
from fairlearn import metrics as flm
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression


def ece_oracle(y, s, n_bins=10, strategy="uniform"):
    """ECE from scikit-learn's calibration_curve bins (plus the bin counts it does not return)."""
    pt, pp = calibration_curve(y, s, n_bins=n_bins, strategy=strategy)
    if strategy == "quantile":
        bins = np.percentile(s, np.linspace(0, 1, n_bins + 1) * 100)
    else:
        bins = np.linspace(0.0, 1.0, n_bins + 1)
    tot = np.bincount(np.searchsorted(bins[1:-1], s), minlength=n_bins)
    tot = tot[tot > 0]
    return float(np.sum(tot / len(y) * np.abs(pt - pp)))


def calibration_oracle(y, s):
    eps = np.finfo(float).eps
    p = np.clip(s, eps, 1 - eps)
    x = np.log(p) - np.log1p(-p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-14, max_iter=1000)
        m.fit(x[:, None], y)
    return float(m.coef_[0, 0]), float(m.intercept_[0])


def group_metrics(y, s, threshold, *, ece_bins=10, ece_strategy="uniform", calibration=True):
    """Every per-group metric of fairfoundry computed the slow way (NaN where undefined)."""
    y = np.asarray(y).astype(int)
    p = (s >= threshold).astype(int)
    both = y.min() == 0 and y.max() == 1
    tn, fp, fn, tp = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
    out = {
        "n": float(len(y)),
        "positives": float(y.sum()),
        "prevalence": float(y.mean()),
        "accuracy": skm.accuracy_score(y, p),
        "selection_rate": flm.selection_rate(y, p),
        "f1": skm.f1_score(y, p, zero_division=np.nan) if (tp + fp + fn) else np.nan,
        "ppv": skm.precision_score(y, p, zero_division=np.nan),
        "npv": tn / (tn + fn) if (tn + fn) else np.nan,
        "tpr": flm.true_positive_rate(y, p) if y.sum() else np.nan,
        "fnr": flm.false_negative_rate(y, p) if y.sum() else np.nan,
        "fpr": flm.false_positive_rate(y, p) if (1 - y).sum() else np.nan,
        "tnr": flm.true_negative_rate(y, p) if (1 - y).sum() else np.nan,
        "balanced_accuracy": skm.balanced_accuracy_score(y, p) if both else np.nan,
        "auc": skm.roc_auc_score(y, s) if both else np.nan,
        "average_precision": skm.average_precision_score(y, s) if y.sum() else np.nan,
        "brier": skm.brier_score_loss(y, s, labels=[0, 1]),
        "log_loss": skm.log_loss(y, s, labels=[0, 1]),
        "ece": ece_oracle(y, s, ece_bins, ece_strategy),
    }
    if calibration:
        b, a = calibration_oracle(y, s) if both else (np.nan, np.nan)
        out["calibration_slope"], out["calibration_intercept"] = b, a
    return {k: float(v) for k, v in out.items()}


def make_data(seed, n, n_groups, *, ties=True, effect=0.05):
    """Random labels/scores with group-dependent prevalence and score shift."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    y = (rng.random(n) < 0.2 + 0.1 * (g % 3)).astype(int)
    s = np.clip(0.35 * y + 0.55 * rng.random(n) + effect * (g % 4), 0, 1)
    if ties:
        s = np.round(s, 2)
    return y, s, g
