r"""Drift statistics: score distributions, attribute mix, embeddings.

Defaults follow Evidently's documented data-drift algorithm (docs-old.evidentlyai.com,
"Reference: Data drift algorithm"; facts re-stated, no code copied): with at most 1,000
reference observations a numerical column is compared by the two-sample Kolmogorov-Smirnov test
(drift when p < 0.05) and a categorical one by the chi-squared test (p < 0.05); with more, by the
Wasserstein distance normed by the reference standard deviation (drift when > 0.1) and the
Jensen-Shannon distance (drift when > 0.1). PSI uses ten bins at reference quantiles and
Evidently's PSI threshold 0.1. Embedding drift uses a domain classifier's cross-validated ROC
AUC (reference vs current; drift when > 0.55, Evidently's default for its ``model`` embedding
method).
"""

from __future__ import annotations

import numpy as np

from .._errors import FairfoundryError

__all__ = ["psi", "ks_test", "wasserstein_normed", "jensen_shannon", "score_drift",
           "mix_drift", "domain_classifier_auc", "SMALL_REFERENCE"]

#: reference size at or below which the statistical tests (KS, chi-squared) are used
SMALL_REFERENCE = 1000
_EPS = 1e-4


def psi(reference, current, *, bins: int = 10) -> float:
    r"""Population stability index over ``bins`` reference-quantile bins.

    .. math:: \mathrm{PSI} = \sum_b (c_b - r_b) \ln(c_b / r_b)

    with bin shares :math:`r_b, c_b` floored at 1e-4 (empty bins). Source: Yurdakul,
    "Statistical properties of population stability index", 2018; threshold 0.1 as Evidently.
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if len(r) == 0 or len(c) == 0:
        return float("nan")
    edges = np.unique(np.quantile(r, np.linspace(0, 1, bins + 1)[1:-1]))
    rb = np.bincount(np.searchsorted(edges, r, side="right"), minlength=len(edges) + 1) / len(r)
    cb = np.bincount(np.searchsorted(edges, c, side="right"), minlength=len(edges) + 1) / len(c)
    rb, cb = np.maximum(rb, _EPS), np.maximum(cb, _EPS)
    return float(np.sum((cb - rb) * np.log(cb / rb)))


def ks_test(reference, current) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value (scipy)."""
    from scipy.stats import ks_2samp

    res = ks_2samp(np.asarray(reference, float), np.asarray(current, float))
    return float(res.statistic), float(res.pvalue)


def wasserstein_normed(reference, current) -> float:
    r"""First Wasserstein distance divided by the reference standard deviation
    (:math:`W_1(r, c) / \sigma_r`; Evidently's ``wasserstein`` stattest)."""
    from scipy.stats import wasserstein_distance

    r = np.asarray(reference, dtype=np.float64)
    sd = float(np.std(r))
    if len(r) == 0 or len(current) == 0:
        return float("nan")
    return float(wasserstein_distance(r, np.asarray(current, float)) / (sd if sd > 0 else 1.0))


def jensen_shannon(p, q) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count or share vectors."""
    from scipy.spatial.distance import jensenshannon

    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2))


def score_drift(reference, current, *, method: str = "auto") -> dict:
    """Drift of a score distribution: ``psi``, ``ks_p``, ``wasserstein`` and the verdict.

    ``method="auto"`` decides by the reference size as Evidently does (KS p < 0.05 up to
    :data:`SMALL_REFERENCE` observations, normed Wasserstein > 0.1 above); ``"ks"``,
    ``"wasserstein"`` or ``"psi"`` (> 0.1) force one. Returns ``{"psi", "ks_p",
    "wasserstein", "method", "drift"}`` (``drift`` 1.0 / 0.0; NaN when a sample is empty).
    ``reference`` may be a :class:`SortedReference` (prepared once for many windows).
    """
    r = reference if isinstance(reference, SortedReference) else np.asarray(reference, float)
    c = np.asarray(current, float)
    if method not in ("auto", "ks", "wasserstein", "psi"):
        raise FairfoundryError(f"drift method {method!r} is not one of auto, ks, wasserstein, psi")
    if len(r) == 0 or len(c) == 0:
        nan = float("nan")
        return {"psi": nan, "ks_p": nan, "wasserstein": nan, "method": method, "drift": nan}
    if isinstance(r, SortedReference):
        out = r.stats(c)
    else:
        out = {"psi": psi(r, c), "ks_p": ks_test(r, c)[1], "wasserstein": wasserstein_normed(r, c)}
    m = method if method != "auto" else ("ks" if len(r) <= SMALL_REFERENCE else "wasserstein")
    flag = {"ks": out["ks_p"] < 0.05, "wasserstein": out["wasserstein"] > 0.1,
            "psi": out["psi"] > 0.1}[m]
    out.update(method=m, drift=float(flag))
    return out


class SortedReference:
    """A reference sample prepared once (sorted, its SD, PSI bins) for :func:`score_drift`
    against many windows: the same numbers as passing the raw sample, computed from the sorted
    arrays (KS statistic and normed Wasserstein distance from the merged empirical CDFs, as
    scipy's ``ks_2samp`` and ``wasserstein_distance`` do; the KS p-value from scipy: exact up
    to 10,000 rows per side, Smirnov's asymptotic ``kstwo`` law above, scipy's ``auto``)."""

    def __init__(self, reference, *, bins: int = 10):
        r = np.sort(np.asarray(reference, dtype=np.float64))
        self.values = r
        self.sd = float(np.std(r)) if len(r) else float("nan")
        if len(r):
            self.edges = np.unique(np.quantile(r, np.linspace(0, 1, bins + 1)[1:-1]))
            rb = np.bincount(np.searchsorted(self.edges, r, side="right"),
                             minlength=len(self.edges) + 1) / len(r)
            self.shares = np.maximum(rb, _EPS)

    def __len__(self) -> int:
        return len(self.values)

    def stats(self, current) -> dict:
        """``psi``, ``ks_p`` and ``wasserstein`` of ``current`` against this reference."""
        from scipy.stats import distributions, ks_2samp

        r = self.values
        c = np.sort(np.asarray(current, dtype=np.float64))
        n1, n2 = len(r), len(c)
        cb = np.bincount(np.searchsorted(self.edges, c, side="right"),
                         minlength=len(self.edges) + 1) / n2
        cb = np.maximum(cb, _EPS)
        psi_v = float(np.sum((cb - self.shares) * np.log(cb / self.shares)))
        allv = np.sort(np.concatenate([r, c]), kind="stable")  # two sorted runs: a merge
        cdf1 = np.searchsorted(r, allv, side="right") / n1
        cdf2 = np.searchsorted(c, allv, side="right") / n2
        diff = cdf1 - cdf2
        w = float(np.sum(np.abs(diff[:-1]) * np.diff(allv)))
        if max(n1, n2) <= 10000:
            ks_p = float(ks_2samp(r, c).pvalue)
        else:
            d = max(float(np.clip(-diff.min(), 0, 1)), float(diff.max()))
            m, n = sorted([float(n1), float(n2)], reverse=True)
            ks_p = float(np.clip(distributions.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))
        return {"psi": psi_v, "ks_p": ks_p,
                "wasserstein": w / (self.sd if self.sd > 0 else 1.0)}


def mix_drift(reference_counts, current_counts) -> dict:
    """Drift of an attribute's mix (who is being seen): chi-squared p-value against the
    reference shares and Jensen-Shannon distance; the verdict by reference size as
    :func:`score_drift` (chi-squared p < 0.05 up to 1,000 reference rows, JS > 0.1 above)."""
    from scipy.stats import chisquare

    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    js = jensen_shannon(r, c)
    keep = r > 0
    if c.sum() <= 0 or r.sum() <= 0:
        p = float("nan")
    elif (c[~keep] > 0).any():  # a group never seen in the reference
        p = 0.0
    elif keep.sum() < 2:
        p = 1.0
    else:
        exp = r[keep] / r[keep].sum() * c[keep].sum()
        p = float(chisquare(c[keep], exp).pvalue)
    small = r.sum() <= SMALL_REFERENCE
    drift = (p < 0.05) if small else (js > 0.1)
    return {"mix_js": js, "mix_chi2_p": p, "method": "chi2" if small else "jensen_shannon",
            "drift": float(drift) if np.isfinite(js) else float("nan")}


def domain_classifier_auc(reference, current, *, folds: int = 5, seed: int = 0,
                          return_ci: bool = False):
    """Cross-validated ROC AUC of a logistic regression telling ``current`` embeddings
    (rows) from ``reference`` ones: 0.5 when they are exchangeable, up to 1 when separable.
    Evidently's default drift threshold for this ``model`` method is 0.55.

    With ``return_ci``, returns ``(auc, low, high)``: a 95 % DeLong interval of the AUC of the
    out-of-fold scores (DeLong et al. 1988, logit scale; it treats the out-of-fold scores as
    independent, an approximation), so that a small window's AUC is read with its spread."""
    nan = float("nan")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..metrics import roc_auc

    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(current, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise FairfoundryError("embeddings must be 2-D arrays with the same number of columns")
    if min(len(a), len(b)) < folds:
        return (nan, nan, nan) if return_ci else nan
    X = np.vstack([a, b])
    y = np.r_[np.zeros(len(a)), np.ones(len(b))].astype(int)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    p = cross_val_predict(clf, X, y, cv=cv, method="predict_proba")[:, 1]
    auc = float(roc_auc(y, p))
    if not return_ci:
        return auc
    from ._intervals import auc_interval

    lo, hi, _ = auc_interval(y, p)
    return auc, lo, hi
