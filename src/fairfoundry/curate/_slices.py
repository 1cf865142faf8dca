r"""Slice discovery: coherent regions of embedding space where a model underperforms.

An error-aware mixture model in the manner of Domino (Eyuboglu et al., "Domino: Discovering
systematic errors with cross-modal embeddings", ICLR 2022), re-implemented from the paper: each
slice :math:`s` is a mixture component over (embedding :math:`z`, label :math:`y`, prediction
:math:`\hat p`),

.. math:: \log p(z, y, \hat p) = \log \sum_s \pi_s \, \mathcal N(z; \mu_s, \mathrm{diag}\,\sigma_s^2)
          \, \mathrm{Bern}(y; \alpha_s)^{\gamma} \, \mathrm{Bern}(\hat p; \beta_s)^{\gamma}

fitted by EM, where the label and (soft) prediction terms are up-weighted by ``gamma`` so that
components prefer regions where labels and predictions disagree consistently (Domino's
:math:`\gamma`; ``gamma = 0`` is a plain diagonal Gaussian mixture). Embeddings are reduced by
PCA and standardised first; the mixture starts from k-means.

Each slice (hard assignment: the most responsible component) is reported with its size, error
rate (threshold ``threshold`` on the score), a Wilson score interval (Wilson 1927), the mean
absolute error :math:`|y - \hat p|`, and its most representative rows (highest responsibility).
Slices are ranked by error rate, largest first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .._errors import FairfoundryError

__all__ = ["discover_slices", "SliceResult", "wilson_interval"]

log = logging.getLogger(__name__)


def wilson_interval(k: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``k / n`` (NaN for ``n = 0``).

    Examples
    --------
    >>> tuple(round(v, 3) for v in wilson_interval(5, 10))
    (0.237, 0.763)
    """
    from scipy.stats import norm

    if n == 0:
        return (float("nan"), float("nan"))
    z = float(norm.ppf(0.5 + level / 2))
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


@dataclass
class SliceResult:
    """Slices found by :func:`discover_slices`.

    Attributes
    ----------
    table : DataFrame, one row per slice ranked by error rate: ``rank``, ``slice``, ``n``,
        ``errors``, ``error_rate``, ``ci_low``, ``ci_high``, ``mean_abs_error``, ``positives``,
        ``examples`` (row positions of the most representative members)
    assignment : (n,) slice name of every row (``s0`` is the worst slice)
    responsibility : (n,) probability of the row's slice
    config : the settings used
    """

    table: object
    assignment: np.ndarray
    responsibility: np.ndarray
    config: dict


def _logsumexp(a, axis):
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def discover_slices(X, y_true, y_score, *, n_slices: int = 10, gamma: float = 10.0, pca_components: int = 32,
                    n_iter: int = 100, threshold: float = 0.5, n_examples: int = 8, seed: int = 0) -> SliceResult:
    """Fit the error-aware mixture and rank its slices by error rate.

    Parameters
    ----------
    X : (n, d) embeddings
    y_true : (n,) 0/1 labels
    y_score : (n,) scores in [0, 1]
    n_slices : mixture components (``2 <= n_slices <= n``)
    gamma : weight of the label and prediction terms (Domino's gamma)
    pca_components : PCA dimensions of the embedding term
    n_iter : EM iterations
    threshold : score threshold defining an error (``(score >= threshold) != y``)
    n_examples : representative rows reported per slice
    seed : k-means initialisation seed

    Returns
    -------
    SliceResult
    """
    import pandas as pd
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    from ._inputs import check_count

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_score, dtype=np.float64)
    n = X.shape[0]
    if len(y) != n or len(p) != n:
        raise FairfoundryError(f"labels ({len(y)}), scores ({len(p)}) and embeddings ({n}) differ in length")
    if not np.isin(y, (0, 1)).all():
        i = int(np.flatnonzero(~np.isin(y, (0, 1)))[0])
        raise FairfoundryError(f"labels must be 0/1; row {i} has {y_true[i]!r}")
    if not ((p >= 0) & (p <= 1)).all():
        i = int(np.flatnonzero(~((p >= 0) & (p <= 1)))[0])
        raise FairfoundryError(f"scores must be in [0, 1]; row {i} has {y_score[i]!r}")
    K = check_count(n_slices, name="slices", n=n, what="rows", minimum=2)
    ncomp = max(1, min(pca_components, n - 1, X.shape[1]))
    Z = PCA(n_components=ncomp, random_state=seed).fit_transform(X) if ncomp < X.shape[1] else X - X.mean(0)
    Z = Z / np.maximum(Z.std(0), 1e-12)
    eps = 1e-6
    lab = KMeans(n_clusters=K, n_init=4, random_state=seed).fit_predict(np.c_[Z, gamma ** 0.5 * np.c_[y, p]])
    R = np.eye(K)[lab] * (1 - K * 1e-3) + 1e-3
    for _ in range(n_iter):
        Nk = R.sum(0) + 1e-10
        pi = Nk / n
        mu = (R.T @ Z) / Nk[:, None]
        var = (R.T @ (Z * Z)) / Nk[:, None] - mu * mu + 1e-3
        a = np.clip((R.T @ y) / Nk, eps, 1 - eps)
        b = np.clip((R.T @ p) / Nk, eps, 1 - eps)
        logg = -0.5 * (((Z[:, None, :] - mu[None]) ** 2) / var[None] + np.log(2 * np.pi * var[None])).sum(-1)
        logy = y[:, None] * np.log(a) + (1 - y[:, None]) * np.log(1 - a)
        logp = p[:, None] * np.log(b) + (1 - p[:, None]) * np.log(1 - b)
        L = np.log(pi)[None] + logg + gamma * (logy + logp)
        Rn = np.exp(L - _logsumexp(L, 1)[:, None])
        if np.abs(Rn - R).max() < 1e-5:
            R = Rn
            break
        R = Rn
    hard = R.argmax(1)
    err = ((p >= threshold).astype(float) != y)
    rows = []
    for s in range(K):
        idx = np.flatnonzero(hard == s)
        if not len(idx):
            continue
        k = int(err[idx].sum())
        lo, hi = wilson_interval(k, len(idx))
        ex = idx[np.argsort(-R[idx, s])][:n_examples]
        rows.append({"component": s, "n": len(idx), "errors": k, "error_rate": k / len(idx), "ci_low": lo,
                     "ci_high": hi, "mean_abs_error": float(np.abs(y[idx] - p[idx]).mean()),
                     "positives": int(y[idx].sum()), "examples": ex.tolist()})
    table = pd.DataFrame(rows).sort_values(["error_rate", "n"], ascending=[False, False]).reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table.insert(1, "slice", [f"s{r}" for r in range(len(table))])
    name = dict(zip(table["component"], table["slice"], strict=True))
    assignment = np.array([name[c] for c in hard], dtype=object)
    resp = R[np.arange(n), hard]
    config = {"n_slices": K, "gamma": gamma, "pca_components": ncomp, "n_iter": n_iter, "threshold": threshold,
              "seed": seed, "overall_error_rate": float(err.mean())}
    return SliceResult(table=table.drop(columns=["component"]), assignment=assignment, responsibility=resp,
                       config=config)
