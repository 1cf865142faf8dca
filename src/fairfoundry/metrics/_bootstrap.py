r"""Resampling plans (stratified / clustered bootstrap, permutations, jackknife) and CIs.

A bootstrap replicate is represented by integer *counts*: how many times each row (or each
cluster, e.g. patient) was drawn. Drawing ``n_g`` rows with replacement from stratum ``g``
gives multinomial counts; the metric kernel consumes them as weights, so no copy of the data is
ever made. Replicate ``b`` uses its own random stream ``SeedSequence(seed, spawn_key=(0, b))``,
so results do not depend on chunking or on the number of threads, and
:meth:`ResamplePlan.indices` reproduces the explicit resample of any replicate.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["ResamplePlan", "percentile_interval", "bca_interval", "permutation_pvalue",
           "pairwise_gap_interval", "proportion_interval"]

log = logging.getLogger(__name__)

_BOOT, _PERM, _JACK = 0, 1, 2


def _rng(seed: int, kind: int, b: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(kind, b))))


class ResamplePlan:
    """Stratified, optionally clustered, bootstrap over rows laid out stratum by stratum.

    Parameters
    ----------
    bounds : array of shape (S + 1,)
        Stratum ``s`` occupies positions ``bounds[s]:bounds[s+1]`` of the layout.
    cluster : array of shape (n,), optional
        Cluster code of each layout position (e.g. patient). Clusters are drawn with
        replacement and keep all their rows. When every cluster lies in one stratum the
        draw is stratified (each stratum draws as many clusters as it has); otherwise
        clusters are drawn from the whole data (group sizes then vary between replicates).
    seed : int
        Seed of every random stream.
    row_order : array of shape (n,), optional
        Input row of each layout position: the order of a cluster's rows (e.g. follow-up
        visits) when the group varies within clusters and whole clusters' group sequences are
        permuted (see :meth:`permuted_groups`). Default: layout order.
    """

    def __init__(self, bounds: np.ndarray, *, cluster: np.ndarray | None = None, seed: int = 0,
                 row_order: np.ndarray | None = None):
        self.bounds = np.asarray(bounds, dtype=np.int64)
        self.n = int(self.bounds[-1])
        self.seed = int(seed)
        self.cluster = None
        self.stratified = True
        if cluster is not None:
            codes, uniq = _factorize(np.asarray(cluster))
            self.cluster = codes
            self.n_clusters = len(uniq)
            seg_of_row = np.repeat(np.arange(len(self.bounds) - 1), np.diff(self.bounds))
            first = np.full(self.n_clusters, -1)
            first[codes[::-1]] = seg_of_row[::-1]
            nested = bool(np.all(first[codes] == seg_of_row))
            self.stratified = nested
            if nested:
                self.strata_clusters = [np.unique(codes[a:b]) for a, b in
                                        zip(self.bounds[:-1], self.bounds[1:], strict=True)]
            else:
                log.info("clusters span several groups: clustered bootstrap is not stratified")
                self.strata_clusters = [np.arange(self.n_clusters)]
            order = np.argsort(codes, kind="stable")
            cuts = np.searchsorted(codes[order], np.arange(self.n_clusters + 1))
            self._rows_of = [order[cuts[c]:cuts[c + 1]] for c in range(self.n_clusters)]
            if not nested:
                # rows of each cluster in input order, and the clusters grouped by size
                ro = np.arange(self.n) if row_order is None else np.asarray(row_order)
                self._seq = np.lexsort((ro, codes))           # positions, cluster by cluster
                self._sizes = np.bincount(codes, minlength=self.n_clusters)
                self._starts = np.concatenate([[0], np.cumsum(self._sizes)[:-1]])
                self._rank = np.arange(self.n) - self._starts[codes[self._seq]]
                self._by_size = np.argsort(self._sizes, kind="stable")
                uniq_sizes, size_counts = np.unique(self._sizes, return_counts=True)
                self.unexchangeable_clusters = int(size_counts[size_counts == 1].sum())

    @property
    def permutation_scheme(self) -> str:
        """How :meth:`permuted_groups` permutes: ``"rows"``, ``"clusters"`` (every cluster in
        one group) or ``"cluster_sequences"`` (the group varies within clusters)."""
        if self.cluster is None:
            return "rows"
        return "clusters" if self.stratified else "cluster_sequences"

    @property
    def n_units(self) -> int:
        """Number of resampling units (rows, or clusters when clustered)."""
        return self.n if self.cluster is None else self.n_clusters

    def _draws(self, b: int) -> list[np.ndarray]:
        rng = _rng(self.seed, _BOOT, b)
        if self.cluster is None:
            return [rng.integers(0, m, size=m) for m in np.diff(self.bounds)]
        return [sc[rng.integers(0, len(sc), size=len(sc))] for sc in self.strata_clusters]

    def weights(self, b: int, out: np.ndarray) -> bool:
        """Write the counts of replicate ``b`` (layout order) into ``out``; returns False
        (leaving ``out`` unspecified) when a count does not fit ``out``'s integer dtype."""
        draws = self._draws(b)
        limit = np.iinfo(out.dtype).max if np.issubdtype(out.dtype, np.integer) else np.inf
        if self.cluster is None:
            for (a, z), d in zip(zip(self.bounds[:-1], self.bounds[1:], strict=True), draws,
                                 strict=True):
                c = np.bincount(d, minlength=z - a)
                if c.max(initial=0) > limit:
                    return False
                out[a:z] = c
        else:
            counts = np.bincount(np.concatenate(draws), minlength=self.n_clusters)
            if counts.max(initial=0) > limit:
                return False
            np.take(counts.astype(out.dtype), self.cluster, out=out)
        return True

    def indices(self, b: int) -> np.ndarray:
        """Layout positions of the explicit resample of replicate ``b`` (the slow oracle)."""
        draws = self._draws(b)
        if self.cluster is None:
            return np.concatenate([a + d for a, d in zip(self.bounds[:-1], draws, strict=True)])
        drawn = np.concatenate(draws)
        return np.concatenate([self._rows_of[c] for c in drawn])

    def jackknife_blocks(self, max_blocks: int) -> list[np.ndarray]:
        """Partition of layout positions into at most ``max_blocks`` delete-blocks of units
        (rows or clusters), for the BCa acceleration."""
        units = self.n_units
        nb = min(units, max_blocks)
        assign = _rng(self.seed, _JACK, 0).permutation(units) % nb
        row_block = assign if self.cluster is None else assign[self.cluster]
        order = np.argsort(row_block, kind="stable")
        cuts = np.searchsorted(row_block[order], np.arange(nb + 1))
        return [order[cuts[j]:cuts[j + 1]] for j in range(nb)]

    def permuted_groups(self, p: int, seg_of_row: np.ndarray) -> np.ndarray:
        r"""Group code of each layout position after permutation ``p`` of the group labels.

        Without clusters: rows are permuted. When every cluster lies in one group: the
        clusters' groups are permuted (whole patients move). When the group varies within
        clusters (e.g. age across follow-up images), permuting rows would break the
        within-patient dependence and is anti-conservative; instead the clusters' whole group
        *sequences* (their rows' groups in ``row_order``) are permuted among clusters with the
        same number of rows. Under the null hypothesis that the attribute sequence of a
        patient is independent of the patient's labels and scores, and patients are
        exchangeable, this permutation distribution is exact (a cluster whose size no other
        cluster shares keeps its own sequence; see :attr:`unexchangeable_clusters`).
        Source: the restricted-randomisation principle of permutation tests (Good,
        "Permutation, Parametric and Bootstrap Tests of Hypotheses", 2005, ch. 3).
        """
        rng = _rng(self.seed, _PERM, p)
        if self.cluster is not None and self.stratified:
            cl_group = np.empty(self.n_clusters, dtype=np.int64)
            cl_group[self.cluster] = seg_of_row
            return rng.permutation(cl_group)[self.cluster]
        if self.cluster is not None:
            # clusters of equal size in random order, paired with the same sizes in fixed order
            shuffled = np.lexsort((rng.random(self.n_clusters), self._sizes))
            src = np.empty(self.n_clusters, dtype=np.int64)
            src[self._by_size] = shuffled
            seq = self._seq
            dest_cluster = self.cluster[seq]
            out = np.empty(self.n, dtype=seg_of_row.dtype)
            out[seq] = seg_of_row[seq[self._starts[src[dest_cluster]] + self._rank]]
            return out
        return rng.permutation(seg_of_row)


def _factorize(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, codes = np.unique(a, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), uniq


def percentile_interval(reps: np.ndarray, *, confidence: float = 0.95) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    r"""Percentile bootstrap interval per column of ``reps`` (shape ``(B, ...)``).

    :math:`[\hat\theta^*_{(\alpha/2)}, \hat\theta^*_{(1-\alpha/2)}]`, NaN replicates skipped;
    NaN when fewer than two replicates are defined. Source: Efron & Tibshirani 1993, ch. 13.
    """
    reps = np.asarray(reps, dtype=np.float64)
    alpha = 1.0 - confidence
    if reps.shape[0] >= 2 and np.isfinite(reps).all():  # fast path: nothing to skip
        lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2], axis=0)
        return lo, hi
    ok = np.sum(np.isfinite(reps), axis=0) >= 2
    safe = np.where(ok, reps, 0.0)
    safe = np.where(np.isfinite(reps) | ~ok, safe, np.nan)
    lo, hi = np.nanquantile(safe, [alpha / 2, 1 - alpha / 2], axis=0)
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)


def bca_interval(reps: np.ndarray, theta: float, jack: np.ndarray, *,
                 confidence: float = 0.95) -> tuple[float, float]:
    r"""Bias-corrected and accelerated (BCa) bootstrap interval for one statistic.

    .. math:: z_0 = \Phi^{-1}\bigl(\#\{\hat\theta^*_b < \hat\theta\} / B\bigr),\quad
              a = \frac{\sum_j (\bar\theta_{(\cdot)} - \theta_{(j)})^3}
                       {6\,[\sum_j (\bar\theta_{(\cdot)} - \theta_{(j)})^2]^{3/2}}

    and the interval is the :math:`\Phi(z_0 + \frac{z_0 + z_q}{1 - a(z_0 + z_q)})` quantiles
    of the replicates (ties count one half in :math:`z_0`). ``jack`` holds delete-block
    jackknife values. Falls back to the percentile interval when :math:`z_0` or :math:`a` is
    not finite. Source: Efron, JASA 1987; Efron & Tibshirani 1993, ch. 14.
    """
    r = np.asarray(reps, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < 2 or not np.isfinite(theta):
        return float("nan"), float("nan")
    prop = (np.sum(r < theta) + 0.5 * np.sum(r == theta)) / r.size
    z0 = ndtri(prop)
    j = np.asarray(jack, dtype=np.float64)
    j = j[np.isfinite(j)]
    a = np.nan
    if j.size >= 2:
        d = j.mean() - j
        den = 6.0 * np.sum(d**2) ** 1.5
        a = np.sum(d**3) / den if den > 0 else 0.0
    alpha = 1.0 - confidence
    if not (np.isfinite(z0) and np.isfinite(a)):
        lo, hi = np.quantile(r, [alpha / 2, 1 - alpha / 2])
        return float(lo), float(hi)
    zq = ndtri(np.array([alpha / 2, 1 - alpha / 2]))
    adj = ndtr(z0 + (z0 + zq) / (1 - a * (z0 + zq)))
    lo, hi = np.quantile(r, np.clip(adj, 0.0, 1.0))
    return float(lo), float(hi)


def pairwise_gap_interval(reps: np.ndarray, point: np.ndarray, *,
                          confidence: float = 0.95) -> tuple[float, float]:
    r"""Confidence interval for a gap :math:`\max_g m_g - \min_g m_g = \max_{g<h} |d_{gh}|`
    from simultaneous intervals of the signed pairwise differences :math:`d_{gh} = m_g - m_h`.

    Each :math:`d_{gh}` gets a percentile interval :math:`[l, u]` at level
    :math:`1 - \alpha / P` (Bonferroni over the :math:`P` pairs of groups defined on the point
    estimate), so all of them hold together with probability :math:`\ge 1 - \alpha`; then
    :math:`|d_{gh}| \in [\operatorname{dist}(0, [l, u]), \max(|l|, |u|)]` and the gap lies in

    .. math:: \Bigl[\max_{g<h} \operatorname{dist}(0, [l_{gh}, u_{gh}]),\;
              \max_{g<h} \max(|l_{gh}|, |u_{gh}|)\Bigr].

    Unlike the percentile interval of the max - min replicates (which are never below the
    noise level), this interval reaches 0 when no pair of groups differs significantly, so it
    covers 0 for a fair model. ``reps`` is ``(B, G)``, ``point`` ``(G,)``.

    Source: percentile intervals (Efron & Tibshirani 1993, ch. 13) made simultaneous by the
    Bonferroni inequality; the reduction from pairwise differences to the gap is fairfoundry's own
    (documented in docs/metrics.md, "Intervals of gaps").
    """
    reps = np.asarray(reps, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(np.asarray(point, dtype=np.float64)))
    if ok.size < 2:
        return float("nan"), float("nan")
    i, j = np.triu_indices(ok.size, k=1)
    d = reps[:, ok[i]] - reps[:, ok[j]]
    alpha = (1.0 - confidence) / d.shape[1]
    lo, hi = percentile_interval(d, confidence=1.0 - alpha)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return float("nan"), float("nan")
    dist0 = np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    far = np.maximum(np.abs(lo), np.abs(hi))
    return float(dist0.max()), float(far.max())


def permutation_pvalue(observed: float, null: np.ndarray, *, extreme: str = "high") -> float:
    r"""Monte-Carlo permutation p-value, :math:`(1 + \#\{T^*_p \succeq T\}) / (1 + P)`.

    ``extreme="high"``: larger statistics are more extreme (gaps); ``"low"``: smaller are
    (ratios, equity-scaled scores); ``"abs"``: larger absolute values are. Permutations where
    the statistic is undefined are dropped. Source: Phipson & Smyth, SAGMB 2010.
    """
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if not np.isfinite(observed) or null.size == 0:
        return float("nan")
    tol = 1e-12 * max(1.0, abs(observed))
    if extreme == "high":
        hits = np.sum(null >= observed - tol)
    elif extreme == "low":
        hits = np.sum(null <= observed + tol)
    else:
        hits = np.sum(np.abs(null) >= abs(observed) - tol)
    return float((1 + hits) / (1 + null.size))


def proportion_interval(successes: float, trials: float, *, confidence: float = 0.95,
                        method: str = "wilson") -> tuple[float, float]:
    r"""Binomial interval of a proportion :math:`x / n`.

    ``"wilson"``: the score interval
    :math:`\frac{x + z^2/2}{n + z^2} \pm \frac{z}{n + z^2}\sqrt{x(n - x)/n + z^2/4}`
    (Wilson, JASA 1927); ``"clopper_pearson"``: the exact interval from Beta quantiles,
    :math:`[B(\alpha/2; x, n - x + 1), B(1 - \alpha/2; x + 1, n - x)]` (Clopper & Pearson,
    Biometrika 1934). Used where a bootstrap interval collapses (a rate of 0 or 1).

    Examples
    --------
    >>> [round(v, 3) for v in proportion_interval(0, 20)]
    [0.0, 0.161]
    """
    x, n = float(round(successes)), float(trials)
    if n <= 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    if method == "clopper_pearson":
        from scipy.stats import beta

        lo = 0.0 if x <= 0 else float(beta.ppf(alpha / 2, x, n - x + 1))
        hi = 1.0 if x >= n else float(beta.ppf(1 - alpha / 2, x + 1, n - x))
        return lo, hi
    z = float(ndtri(1 - alpha / 2))
    centre = (x + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * np.sqrt(max(x * (n - x) / n, 0.0) + z * z / 4)
    lo = 0.0 if x <= 0 else max(0.0, centre - half)
    hi = 1.0 if x >= n else min(1.0, centre + half)
    return float(lo), float(hi)
