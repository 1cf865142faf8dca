r"""Intervals for paired differences: over seeds (t) and over bootstrap resamples (max-T band).

Two configurations compared on the same seeds, or on the same bootstrap resamples of the same
test samples, share most of their variation; the interval of their *paired* difference removes
it. :func:`t_interval` is the one t-interval of the package (the studies' and the fit
comparison's "paired over seeds"); :func:`paired_bootstrap_intervals` gives per-comparison
percentile intervals and a simultaneous (family-wise) band from the same replicates.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["t_interval", "paired_bootstrap_intervals"]


@lru_cache(maxsize=256)
def _t_quantile(q: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(q, df))


def t_interval(values, *, confidence: float = 0.95) -> tuple[float, float, float]:
    r"""Mean of ``values`` and its Student-t interval.

    .. math:: \bar d \pm t_{1-\alpha/2,\,n-1}\, s / \sqrt{n}

    NaN values are dropped; the interval is NaN with fewer than two values (the mean is still
    returned with one). For paired differences :math:`d_s = x_{m,s} - x_{\mathrm{ref},s}` over
    seeds :math:`s` this is the paired t-interval. Source: Student, "The probable error of a
    mean", Biometrika 1908.

    Returns
    -------
    (mean, low, high)

    Examples
    --------
    >>> [round(v, 3) for v in t_interval([0.01, 0.03, 0.02])]
    [0.02, -0.005, 0.045]
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return np.nan, np.nan, np.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, np.nan, np.nan
    half = float(_t_quantile(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def paired_bootstrap_intervals(estimates, replicates, *, confidence: float = 0.95) -> dict:
    r"""Per-comparison and simultaneous intervals of K paired differences from shared resamples.

    ``estimates`` (K,) are the point differences :math:`\hat d_k` (e.g. AUC of a method minus
    AUC of ERM on the test samples); ``replicates`` (B, K) the same differences on B bootstrap
    resamples drawn *once* and used for both configurations (so the pairing is over samples).
    Per comparison: the percentile interval :math:`[d^*_{k,(\alpha/2)}, d^*_{k,(1-\alpha/2)}]`.
    Family-wise: the bootstrap max-T band :math:`\hat d_k \pm c\,\hat\sigma_k` with
    :math:`\hat\sigma_k` the replicates' standard deviation and :math:`c` the
    :math:`1-\alpha` quantile of :math:`\max_k |d^*_{b,k} - \hat d_k| / \hat\sigma_k`, so all
    K intervals cover together with probability about :math:`1-\alpha`. Source: Romano & Wolf,
    "Stepwise multiple testing as formalized data snooping", Econometrica 2005; Westfall &
    Young, "Resampling-Based Multiple Testing", 1993. Comparisons with a zero or undefined spread
    get an empty-width band (they never differ unless their estimate is not 0) and do not
    enter :math:`c`.

    Examples
    --------
    >>> r = paired_bootstrap_intervals([0.0], [[-0.02], [0.01], [0.0], [0.02], [-0.01]])
    >>> bool(r["sim_low"][0] < 0 < r["sim_high"][0])
    True

    Returns
    -------
    dict with ``low, high`` (per comparison), ``sim_low, sim_high`` (simultaneous), ``se``
    and ``critical`` (:math:`c`), and ``replicates`` (B, the number of defined replicates).
    """
    est = np.asarray(estimates, dtype=np.float64).reshape(-1)
    reps = np.asarray(replicates, dtype=np.float64).reshape(-1, est.size)
    alpha = 1.0 - confidence
    with np.errstate(all="ignore"):
        ok = np.isfinite(reps)
        count = ok.sum(axis=0)
        lo = np.full(est.size, np.nan)
        hi = np.full(est.size, np.nan)
        se = np.full(est.size, np.nan)
        for k in range(est.size):
            r = reps[ok[:, k], k]
            if r.size >= 2 and np.isfinite(est[k]):
                lo[k], hi[k] = np.quantile(r, [alpha / 2, 1 - alpha / 2])
                se[k] = r.std(ddof=1)
        use = np.isfinite(se) & (se > 0)
        crit = np.nan
        if use.any():
            z = np.abs(reps[:, use] - est[use]) / se[use]
            zmax = np.nanmax(np.where(np.isfinite(z), z, -np.inf), axis=1)
            zmax = zmax[np.isfinite(zmax)]
            crit = float(np.quantile(zmax, 1 - alpha)) if zmax.size else np.nan
        spread = np.where(use, se * crit, np.where(np.isfinite(se), 0.0, np.nan))
    return {"low": lo, "high": hi, "sim_low": est - spread, "sim_high": est + spread, "se": se,
            "critical": crit, "replicates": int(count.max()) if count.size else 0}
