r"""Analytic (closed-form) intervals for the per-window metrics: fast enough for a million events.

The bootstrap of the evaluation engine costs ``replicates x rows`` per window and group; these
intervals cost one sort. They are valid where their large-sample approximations are (a window's
groups of a few hundred rows and more); the null simulation ``benchmarks/sim_monitor_intervals.py``
and ``tests/monitor/test_monitor_intervals.py`` measure their coverage.

Realised metrics (labels in), rows clustered by patient when patient ids are known:

- **Proportions** (TPR, FPR, PPV, prevalence): the Wilson score interval (Wilson, JASA 1927)

  .. math:: \frac{\hat p + z^2/2n}{1 + z^2/n} \pm \frac{z}{1 + z^2/n}
            \sqrt{\hat p(1-\hat p)/n + z^2/4n^2}

  on the *effective* sample size :math:`n_{\mathrm{eff}} = n / d` with the design effect
  :math:`d = \max(1, \hat v / (\hat p(1-\hat p)/n))`, where :math:`\hat v` is the
  cluster-robust (ratio-estimator) variance
  :math:`\frac{K}{K-1} \sum_k (x_k - \hat p\, n_k)^2 / n^2` over the :math:`K` patients with
  :math:`x_k` successes among :math:`n_k` rows (Korn & Graubard, "Confidence intervals for
  proportions with small expected number of positive counts estimated from survey data",
  Survey Methodology 1998: Wilson / Clopper-Pearson on the effective sample size). Without
  patients, :math:`d = 1` (the plain Wilson interval).
- **AUC**: DeLong's variance (DeLong, DeLong & Clarke-Pearson, Biometrics 1988) in
  Obuchowski's clustered form (Obuchowski, "Nonparametric analysis of clustered ROC curve
  data", Biometrics 1997). With structural components
  :math:`V_{10}(x_i) = \frac1N \sum_j \psi(x_i, y_j)` per positive and
  :math:`V_{01}(y_j) = \frac1M \sum_i \psi(x_i, y_j)` per negative
  (:math:`\psi = 1` if the positive scores higher, 1/2 on a tie), summed per patient
  (:math:`V_{10,k}`, :math:`V_{01,k}`, with :math:`m_k` positives and :math:`n_k` negatives),

  .. math:: S_{10} = \frac{I_{10}}{(I_{10}-1)M} \sum_k (V_{10,k} - m_k \hat A)^2, \quad
            S_{01} = \frac{I_{01}}{(I_{01}-1)N} \sum_k (V_{01,k} - n_k \hat A)^2,

  .. math:: S_{11} = \frac{I}{I-1} \sum_k (V_{10,k} - m_k \hat A)(V_{01,k} - n_k \hat A),
            \quad \widehat{\mathrm{Var}}(\hat A) = \frac{S_{10}}{M} + \frac{S_{01}}{N}
            + \frac{2 S_{11}}{MN}

  (:math:`I_{10}, I_{01}, I`: patients with positives, with negatives, in all). One row per
  patient gives DeLong's variance. The interval is Wald on the logit scale,
  :math:`\mathrm{logit}\,\hat A \pm z\,\widehat{\mathrm{se}} / (\hat A(1-\hat A))`, which stays
  inside (0, 1) (Pepe, "The statistical evaluation of medical tests", 2003, sec. 5.2).
  An AUC of exactly 0 or 1 has no such interval (NaN with a reason).
- **ECE** has no closed-form interval: NaN with a reason (``intervals: bootstrap`` gives one).

Label-free CBPE estimates: the realised metric is a function of the unseen labels
:math:`Y_i \sim \mathrm{Bernoulli}(p_i)` (independent given the calibrated probabilities
:math:`p_i`), through sums that are linear in :math:`Y`: :math:`N_1 = \sum Y_i`,
:math:`TP = \sum_{s_i \ge t} Y_i`, the rank sum :math:`R = \sum r_i Y_i` (midranks of the
scores; AUC :math:`= (R - N_1(N_1+1)/2) / (N_1 (n - N_1))`, Mann-Whitney). The delta method
gives :math:`\mathrm{Var}\, g(Y) \approx \sum_i p_i (1 - p_i) (\partial g / \partial Y_i)^2` at
:math:`Y = p`, exactly what the label simulations of :class:`CBPE` estimate by Monte Carlo; the
interval is Wald on the logit scale around the CBPE estimate. Like the simulation, it is the
label-sampling spread given the calibration, not the calibration's own error.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, ndtri

__all__ = ["wilson_effective", "proportion_intervals", "auc_interval", "cbpe_intervals"]


def _z(confidence: float) -> float:
    return float(ndtri(0.5 + confidence / 2))


def wilson_effective(p, n_eff, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of proportions ``p`` on (possibly fractional) sample sizes
    ``n_eff`` (vectorised; NaN where ``n_eff <= 0``)."""
    p = np.asarray(p, dtype=np.float64)
    n = np.asarray(n_eff, dtype=np.float64)
    z = _z(confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        den = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / den
        half = z * np.sqrt(np.maximum(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / den
        lo = np.where(p <= 0, 0.0, np.maximum(0.0, centre - half))
        hi = np.where(p >= 1, 1.0, np.minimum(1.0, centre + half))
    bad = ~(n > 0)
    lo[bad], hi[bad] = np.nan, np.nan
    return lo, hi


def proportion_intervals(success, codes, n_groups: int, *, cluster=None,
                         confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Per-group Wilson intervals of the share of ``success`` rows, on the cluster-adjusted
    effective sample size (module docstring; Korn & Graubard 1998).

    Parameters
    ----------
    success : bool array (n,)
        The event counted, for the rows that form the denominator (e.g. predicted positive
        among the positives, for TPR).
    codes : int array (n,)
        Group of each row, ``0 .. n_groups - 1``.
    cluster : int array (n,), optional
        Patient of each row (any integers); None: independent rows.

    Returns
    -------
    (low, high) : arrays (n_groups,), NaN for empty groups.
    """
    x = np.asarray(success, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    n = np.bincount(codes, minlength=n_groups).astype(np.float64)
    k = np.bincount(codes, weights=x, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
    n_eff = n.copy()
    if cluster is not None and len(x):
        # one cell per (group, patient): cluster totals of successes and rows
        cl = np.asarray(cluster, np.int64)
        cl = cl - cl.min()
        key, inv = np.unique(codes * (int(cl.max()) + 1) + cl, return_inverse=True)
        inv = inv.ravel()
        g_of = key // (int(cl.max()) + 1)
        xk = np.bincount(inv, weights=x)
        nk = np.bincount(inv).astype(np.float64)
        K = np.bincount(g_of, minlength=n_groups).astype(np.float64)
        resid = (xk - p[g_of] * nk) ** 2
        ss = np.bincount(g_of, weights=resid, minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            v = K / (K - 1) * ss / n**2
            v0 = p * (1 - p) / n
            deff = np.where((v0 > 0) & (K > 1) & np.isfinite(v), v / v0, 1.0)
        n_eff = n / np.maximum(deff, 1.0)
    return wilson_effective(p, n_eff, confidence=confidence)


def auc_interval(y, s, *, cluster=None, confidence: float = 0.95) -> tuple[float, float, str]:
    """AUC interval from the (clustered) DeLong variance, Wald on the logit scale.

    Returns ``(low, high, reason)``; ``reason`` says why the interval is NaN (one class, an AUC
    of 0 or 1, a single patient).
    """
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    pos, neg = s[y], s[~y]
    M, N = len(pos), len(neg)
    nan = float("nan")
    if M == 0 or N == 0:
        return nan, nan, "undefined: one class only"
    ns, ps = np.sort(neg), np.sort(pos)
    v10 = (np.searchsorted(ns, pos, "left") + np.searchsorted(ns, pos, "right")) / (2.0 * N)
    v01 = 1.0 - (np.searchsorted(ps, neg, "left") + np.searchsorted(ps, neg, "right")) / (2.0 * M)
    auc = float(v10.mean())
    if cluster is None:
        c = np.arange(M + N)
    else:
        c = np.unique(np.asarray(cluster), return_inverse=True)[1].ravel()
    cp, cn = c[y], c[~y]
    K = int(c.max()) + 1
    V10 = np.bincount(cp, weights=v10, minlength=K)
    V01 = np.bincount(cn, weights=v01, minlength=K)
    mk = np.bincount(cp, minlength=K).astype(np.float64)
    nk = np.bincount(cn, minlength=K).astype(np.float64)
    i10, i01 = int((mk > 0).sum()), int((nk > 0).sum())
    if i10 < 2 or i01 < 2:
        return nan, nan, "no interval: fewer than two patients with each class"
    r10, r01 = V10 - mk * auc, V01 - nk * auc
    s10 = i10 / ((i10 - 1) * M) * np.sum(r10**2)
    s01 = i01 / ((i01 - 1) * N) * np.sum(r01**2)
    s11 = K / (K - 1) * np.sum(r10 * r01)
    var = s10 / M + s01 / N + 2 * s11 / (M * N)
    if not 0 < auc < 1 or not var > 0:
        return nan, nan, "no interval: AUC of 0 or 1 (perfect separation)"
    half = _z(confidence) * np.sqrt(var) / (auc * (1 - auc))
    lg = np.log(auc / (1 - auc))
    return float(expit(lg - half)), float(expit(lg + half)), ""


def _logit_wald(est: float, se: float, z: float) -> tuple[float, float]:
    if not (np.isfinite(est) and np.isfinite(se)) or not 0 < est < 1:
        return float("nan"), float("nan")
    if se <= 0:
        return float(est), float(est)
    half = z * se / (est * (1 - est))
    lg = np.log(est / (1 - est))
    return float(expit(lg - half)), float(expit(lg + half))


def cbpe_intervals(y_score, p, *, threshold: float, estimates: dict,
                   confidence: float = 0.95) -> dict:
    """Delta-method intervals of the realised ``auc, tpr, fpr, ppv, prevalence`` under
    :math:`Y_i \\sim \\mathrm{Bernoulli}(p_i)` (module docstring), around ``estimates``
    (the CBPE point estimates). Returns ``{"<metric>_ci": (low, high)}``."""
    from scipy.stats import rankdata

    s = np.asarray(y_score, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    n = len(s)
    z = _z(confidence)
    v = p * (1 - p)
    pos = (s >= threshold).astype(np.float64)
    mu1 = np.float64(p.sum())
    mu0 = n - mu1
    n_pos = np.float64(pos.sum())
    out = {}
    se = {"prevalence": np.sqrt(v.sum()) / n if n else np.nan}
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = float(np.sum(pos * p) / mu1)
        fpr = float(np.sum(pos * (1 - p)) / mu0)
        se["tpr"] = np.sqrt(np.sum(v * (pos - tpr) ** 2)) / mu1
        se["fpr"] = np.sqrt(np.sum(v * (pos - fpr) ** 2)) / mu0
        se["ppv"] = np.sqrt(np.sum(v * pos)) / n_pos if n_pos else np.nan
        # AUC = g(R, N1) = (R - N1 (N1 + 1) / 2) / (N1 (n - N1)), gradient at Y = p
        r = rankdata(s)
        R = np.float64(np.sum(r * p))
        U, D = R - mu1 * (mu1 + 1) / 2, mu1 * mu0
        g_r = 1.0 / D
        g_n = (-(mu1 + 0.5) * D - U * (n - 2 * mu1)) / D**2
        se["auc"] = np.sqrt(np.sum(v * (g_r * r + g_n) ** 2))
    for m, e in se.items():
        out[f"{m}_ci"] = _logit_wald(float(estimates.get(m, np.nan)), float(e), z)
    return out
