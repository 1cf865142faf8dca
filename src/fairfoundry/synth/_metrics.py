r"""Fidelity, diversity and memorisation of generated images, measured in a feature space.

All functions take feature arrays ``[n, d]`` (embeddings of a zoo encoder, never ImageNet
Inception) and return floats; they know nothing about images or encoders.
"""

from __future__ import annotations

import numpy as np

from .._errors import FairfoundryError

__all__ = [
    "frechet_distance",
    "kernel_inception_distance",
    "prdc",
    "expected_coverage",
    "nn_distance_ratio",
    "copy_rate",
]


def _as2d(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0:
        raise FairfoundryError(f"{name} must be a non-empty [n, d] array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise FairfoundryError(f"{name} has NaN or infinite values")
    return a


def frechet_distance(real, fake) -> float:
    r"""Fréchet distance between Gaussians fitted to two feature sets.

    .. math:: \mathrm{FD} = \lVert \mu_r - \mu_f \rVert^2 + \mathrm{Tr}\big(\Sigma_r + \Sigma_f - 2(\Sigma_r\Sigma_f)^{1/2}\big)

    Source: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium", NeurIPS 2017 (FID is this distance in Inception-v3 features; here the features
    are a zoo encoder's and the value is reported as ``FD_<encoder>``). Covariances are unbiased
    (``n - 1``); the matrix square root is taken through the eigen-decomposition of
    :math:`\Sigma_r^{1/2}\Sigma_f\Sigma_r^{1/2}` (symmetric, so no complex round-off). The
    estimate is biased upwards for small ``n``: compare values at equal sample sizes. NaN when
    either set has fewer than 2 rows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> round(frechet_distance(rng.normal(size=(4000, 2)), rng.normal(size=(4000, 2)) + [3, 0]), 1)
    9.0
    """
    r, f = _as2d(real, "real features"), _as2d(fake, "synthetic features")
    if r.shape[1] != f.shape[1]:
        raise FairfoundryError(f"feature widths differ: {r.shape[1]} vs {f.shape[1]}")
    if len(r) < 2 or len(f) < 2:
        return float("nan")
    mu = r.mean(0) - f.mean(0)
    sr, sf = np.cov(r, rowvar=False), np.cov(f, rowvar=False)
    sr, sf = np.atleast_2d(sr), np.atleast_2d(sf)
    w, v = np.linalg.eigh(sr)
    root_r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root_r @ sf @ root_r
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(mu @ mu + np.trace(sr) + np.trace(sf) - 2.0 * tr_sqrt)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def kernel_inception_distance(real, fake, *, subset_size: int = 100, n_subsets: int = 50,
                              seed: int = 0) -> tuple[float, float]:
    r"""Kernel distance (KID): unbiased squared MMD with a cubic polynomial kernel.

    .. math:: k(x, y) = \left(\tfrac{1}{d} x^\top y + 1\right)^3, \qquad
              \widehat{\mathrm{MMD}}^2_u = \tfrac{1}{m(m-1)}\sum_{i \ne j} k(x_i, x_j)
              + \tfrac{1}{n(n-1)}\sum_{i \ne j} k(y_i, y_j) - \tfrac{2}{mn}\sum_{i,j} k(x_i, y_j)

    Source: Bińkowski et al., "Demystifying MMD GANs", ICLR 2018 (their KID, in Inception
    features; here in a zoo encoder's). The estimate is averaged over ``n_subsets`` random
    subsets of ``min(subset_size, n_real, n_fake)`` rows of each set (drawn with a seeded
    generator); it is unbiased, so it is about 0 (and may be negative) when both sets come from
    one distribution. NaN when either set has fewer than 2 rows.

    Returns
    -------
    (mean, standard deviation over subsets)
    """
    r, f = _as2d(real, "real features"), _as2d(fake, "synthetic features")
    if r.shape[1] != f.shape[1]:
        raise FairfoundryError(f"feature widths differ: {r.shape[1]} vs {f.shape[1]}")
    m = min(int(subset_size), len(r), len(f))
    if m < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = [_mmd2_unbiased(r[rng.choice(len(r), m, replace=False)], f[rng.choice(len(f), m, replace=False)])
            for _ in range(int(n_subsets))]
    return float(np.mean(vals)), float(np.std(vals))


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None))


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    d = _pairwise(x, x)
    np.fill_diagonal(d, 0.0)
    return np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself


def prdc(real, fake, *, k: int = 5) -> dict:
    r"""Precision, recall, density and coverage with k-nearest-neighbour balls.

    With :math:`B(x, r)` the ball of radius :math:`r` around :math:`x` and
    :math:`\mathrm{NND}_k(x)` the distance from :math:`x` to its k-th nearest neighbour in its
    own set (real :math:`X`, ``N`` rows; fake :math:`Y`, ``M`` rows):

    .. math::
        \mathrm{precision} = \tfrac{1}{M}\sum_j 1\big[\exists i: Y_j \in B(X_i, \mathrm{NND}_k(X_i))\big] \\
        \mathrm{recall} = \tfrac{1}{N}\sum_i 1\big[\exists j: X_i \in B(Y_j, \mathrm{NND}_k(Y_j))\big] \\
        \mathrm{density} = \tfrac{1}{kM}\sum_j \sum_i 1\big[Y_j \in B(X_i, \mathrm{NND}_k(X_i))\big] \\
        \mathrm{coverage} = \tfrac{1}{N}\sum_i 1\big[\exists j: Y_j \in B(X_i, \mathrm{NND}_k(X_i))\big]

    Source: Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative Models", ICML
    2020 (precision/recall after Kynkäänniemi et al., NeurIPS 2019). Balls are open (distance
    strictly below the radius), the convention of the authors' reference package ``prdc``,
    which the tests use as an oracle. Euclidean distances in float64. Needs more than ``k``
    rows in each set (else every value is NaN).
    """
    r, f = _as2d(real, "real features"), _as2d(fake, "synthetic features")
    if r.shape[1] != f.shape[1]:
        raise FairfoundryError(f"feature widths differ: {r.shape[1]} vs {f.shape[1]}")
    if k < 1:
        raise FairfoundryError(f"k must be >= 1, got {k}")
    if len(r) <= k or len(f) <= k:
        nan = float("nan")
        return {"precision": nan, "recall": nan, "density": nan, "coverage": nan}
    rr, rf = _kth_radius(r, k), _kth_radius(f, k)
    d = _pairwise(r, f)  # [N, M]
    inside_real = d < rr[:, None]
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((d < rf[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum(axis=0).mean() / k),
        "coverage": float((d.min(axis=1) < rr).mean()),
    }


def expected_coverage(n_real: int, n_fake: int, k: int) -> float:
    r"""Coverage expected when real and fake samples come from one continuous distribution.

    A real point is not covered when its ``k`` nearest neighbours among the other ``N - 1``
    real and the ``M`` fake points are all real; by exchangeability

    .. math:: E[\mathrm{coverage}] = 1 - \prod_{i=1}^{k}\frac{N - i}{N + M - i}

    (Naeem et al. 2020, section 4; :math:`1 - 2^{-k}` for :math:`N = M \to \infty`).
    """
    p = 1.0
    for i in range(1, k + 1):
        p *= (n_real - i) / (n_real + n_fake - i)
    return 1.0 - p


def nn_distance_ratio(query, reference) -> np.ndarray:
    r"""Distance from each query row to its nearest reference row over the distance to the second.

    .. math:: \rho(q) = \frac{d(q, r_{(1)})}{d(q, r_{(2)})}

    A generated image with :math:`\rho < 1/3` sits far closer to one training image than to any
    other: a copy (the distance-ratio test of Lowe 2004, used for memorisation of diffusion
    models e.g. by Somepalli et al. 2023 and Carlini et al. 2023). :math:`\rho = 0` for an exact
    copy (also when the reference holds duplicates).
    """
    q, ref = _as2d(query, "query features"), _as2d(reference, "reference features")
    if len(ref) < 2:
        raise FairfoundryError("the memorisation check needs at least 2 training images")
    d = _pairwise(q, ref)
    two = np.partition(d, 1, axis=1)[:, :2]
    d1, d2 = two.min(1), two.max(1)
    return np.where(d1 <= 1e-9, 0.0, d1 / np.where(d2 > 0, d2, np.inf))


def copy_rate(query, reference, *, threshold: float = 1 / 3) -> float:
    """Share of ``query`` rows whose :func:`nn_distance_ratio` to ``reference`` is below ``threshold``."""
    return float((nn_distance_ratio(query, reference) < threshold).mean())
