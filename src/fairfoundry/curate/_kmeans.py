r"""k-means, hierarchical k-means with resampling, and top-down balanced sampling.

Re-implemented from the paper (no code copied): Vo, H. V. et al., "Automatic data curation for
self-supervised learning: a clustering-based approach", TMLR 2024 (arXiv 2405.15613).

- **k-means** (Lloyd) with k-means++ seeding (Arthur & Vassilvitskii 2007). Seeding runs on a
  random subsample of at most ``max(32 k, 10000)`` points, so that seeding 1,000 centroids on a
  million points is not a thousand passes over the data; Lloyd iterations then use every point.
- **Resampling** (Vo et al., section 4): after k-means, take the ``r`` points of every cluster
  closest to its centroid, run a fresh k-means (new k-means++ seeding) on that union, and repeat. Every cluster contributes the same number of points, so dense regions
  stop attracting most centroids and the centroids drift toward a uniform cover of the support (in 1-D, k-means centroids follow the
  density to the power 1/3, so each step flattens it further). Re-starting from the current
  centroids instead would be a fixed point: the mean of a cluster's closest points is its centroid.
- **Hierarchy**: level 1 clusters the data; level ``t + 1`` clusters the centroids of level
  ``t``. A point belongs to the level-``t + 1`` cluster of its level-``t`` centroid.
- **Balanced sampling** (top-down): the target is split evenly over the top-level clusters
  ("water-filling": a cluster with fewer points than its share gives all it has and the rest is
  shared among the others), then each cluster's quota over its children, down to the level-1
  clusters, where points are drawn uniformly at random. Optionally the last split also balances
  a recorded attribute within every level-1 cluster.

Torch does the arithmetic (``device="cuda"`` works); ``backend="faiss"`` uses ``faiss.Kmeans``
for the Lloyd steps when faiss is installed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .._errors import FairfoundryError

__all__ = ["kmeans", "HierarchicalKMeans", "balanced_allocation"]

log = logging.getLogger(__name__)

_CHUNK = 65536


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in the torch extra
        raise FairfoundryError("k-means in fairfoundry.curate needs torch",
                               hint="pip install 'fairfoundry[torch]'") from exc
    return torch


def _assign(X, C, *, chunk: int = _CHUNK):
    """Nearest centroid (squared Euclidean) of every row: (labels, squared distances)."""
    torch = _torch()
    c2 = (C * C).sum(1)
    labels = torch.empty(X.shape[0], dtype=torch.long, device=X.device)
    dist = torch.empty(X.shape[0], dtype=X.dtype, device=X.device)
    for s in range(0, X.shape[0], chunk):
        x = X[s:s + chunk]
        d = (x * x).sum(1, keepdim=True) - 2.0 * (x @ C.T) + c2
        v, i = d.min(1)
        labels[s:s + chunk] = i
        dist[s:s + chunk] = v.clamp_min_(0)
    return labels, dist


def _kmeanspp(X, k: int, gen) -> object:
    r"""k-means++ seeding on the rows of ``X`` (already a subsample).

    Squared distances to each new centroid come from one matrix-vector product,
    :math:`\lVert x \rVert^2 - 2 x \cdot c + \lVert c \rVert^2`.
    """
    torch = _torch()
    n = X.shape[0]
    xx = (X * X).sum(1)
    first = int(torch.randint(n, (1,), generator=gen).item())
    C = torch.empty((k, X.shape[1]), dtype=X.dtype, device=X.device)

    def dist_to(c):
        return (xx - 2.0 * (X @ c) + (c * c).sum()).clamp_min_(0)

    C[0] = X[first]
    d2 = dist_to(C[0])
    for j in range(1, k):
        total = float(d2.sum())
        if total <= 0:  # fewer distinct points than k: any point will do
            idx = int(torch.randint(n, (1,), generator=gen).item())
        else:
            idx = int(torch.multinomial((d2 / total).cpu(), 1, generator=gen).item())
        C[j] = X[idx]
        d2 = torch.minimum(d2, dist_to(C[j]))
    return C


def _lloyd(X, C, *, n_iter: int, gen, weights=None, tol: float = 1e-6):
    torch = _torch()
    k = C.shape[0]
    prev = math.inf
    for _ in range(n_iter):
        labels, dist = _assign(X, C)
        if weights is None:
            sums = torch.zeros_like(C).index_add_(0, labels, X)
            counts = torch.bincount(labels, minlength=k).to(X.dtype)
        else:
            sums = torch.zeros_like(C).index_add_(0, labels, X * weights[:, None])
            counts = torch.zeros(k, dtype=X.dtype, device=X.device).index_add_(0, labels, weights)
        empty = counts <= 0
        C = torch.where(empty[:, None], C, sums / counts.clamp_min(1e-12)[:, None])
        if bool(empty.any()):  # re-seed empty clusters at the worst-served points
            far = torch.topk(dist, int(empty.sum())).indices
            C[empty] = X[far]
        inertia = float(dist.sum() if weights is None else (dist * weights).sum())
        if math.isfinite(prev) and prev - inertia <= tol * prev and not bool(empty.any()):
            break
        prev = inertia
    return C


def _faiss_lloyd(X, C, *, n_iter: int, seed: int):
    import faiss

    x = np.ascontiguousarray(X.cpu().numpy(), dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], C.shape[0], niter=n_iter, seed=seed, verbose=False,
                      max_points_per_centroid=1 << 30, min_points_per_centroid=1)
    km.train(x, init_centroids=np.ascontiguousarray(C.cpu().numpy(), dtype=np.float32))
    torch = _torch()
    return torch.from_numpy(km.centroids.copy()).to(X.device)


def kmeans(X, k: int, *, n_iter: int = 20, seed: int = 0, device: str = "cpu", init=None,
           backend: str = "torch"):
    """k-means (Lloyd) with k-means++ seeding.

    Minimises :math:`\\sum_i \\min_j \\lVert x_i - c_j \\rVert^2`.

    Parameters
    ----------
    X : array (n, d) (numpy or torch)
    k : number of clusters, ``1 <= k <= n``
    n_iter : maximum Lloyd iterations (stops earlier when the inertia stops falling)
    seed : seeds the k-means++ subsample and draws
    device : torch device for the arithmetic
    init : optional (k, d) initial centroids (skips seeding)
    backend : ``"torch"`` or ``"faiss"`` (Lloyd steps by ``faiss.Kmeans``)

    Returns
    -------
    (centroids (k, d) numpy float32, labels (n,) numpy int64)

    Examples
    --------
    >>> import numpy as np
    >>> X = np.r_[np.zeros((5, 2)), np.ones((5, 2)) * 10]
    >>> C, lab = kmeans(X, 2, seed=0)
    >>> sorted(np.round(C[:, 0]).tolist()), len(set(lab[:5])), len(set(lab))
    ([0.0, 10.0], 1, 2)
    """
    torch = _torch()
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32) if not torch.is_tensor(X) else X,
                         dtype=torch.float32, device=device)
    C = _fit_centroids(Xt, k, n_iter=n_iter, seed=seed, init=init, backend=backend)
    labels, _ = _assign(Xt, C)
    return C.cpu().numpy(), labels.cpu().numpy()


def _fit_centroids(Xt, k: int, *, n_iter: int, seed: int, init=None, backend: str = "torch",
                   n_init: int = 1):
    torch = _torch()
    if n_init > 1 and init is None:  # keep the run with the lowest inertia
        best, best_inertia = None, math.inf
        for r in range(n_init):
            C = _fit_centroids(Xt, k, n_iter=n_iter, seed=seed + 7919 * r, backend=backend)
            inertia = float(_assign(Xt, C)[1].sum())
            if inertia < best_inertia:
                best, best_inertia = C, inertia
        return best
    n = Xt.shape[0]
    if not 1 <= k <= n:
        raise FairfoundryError(f"k={k} must be between 1 and the {n} points to cluster")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    if init is None:
        m = min(n, max(32 * k, 10000))
        sub = Xt if m == n else Xt[torch.randperm(n, generator=gen)[:m].to(Xt.device)]
        C = _kmeanspp(sub, k, gen)
    else:
        C = torch.as_tensor(np.asarray(init, dtype=np.float32), device=Xt.device).clone()
    if backend == "faiss":
        return _faiss_lloyd(Xt, C, n_iter=n_iter, seed=seed)
    if backend != "torch":
        raise FairfoundryError(f"backend={backend!r} is not one of torch, faiss")
    return _lloyd(Xt, C, n_iter=n_iter, gen=gen)


def balanced_allocation(counts: Sequence[int], target: int, *, rng: np.random.Generator) -> np.ndarray:
    """Split ``target`` over bins holding ``counts`` as evenly as their sizes allow (water-filling).

    Every bin gets ``min(count, share)``; what small bins cannot take is shared by the others.
    Remainders of the integer division go to randomly chosen bins (``rng``).

    Examples
    --------
    >>> balanced_allocation([100, 2, 50], 30, rng=np.random.default_rng(0)).tolist()
    [14, 2, 14]
    """
    counts = np.asarray(counts, dtype=np.int64)
    target = int(min(target, counts.sum()))
    alloc = np.zeros_like(counts)
    open_ = counts > 0
    left = target
    while left > 0 and open_.any():
        idx = np.flatnonzero(open_)
        share = left // len(idx)
        if share == 0:  # fewer units than open bins: one each to random bins
            pick = rng.choice(idx, size=left, replace=False)
            alloc[pick] += 1
            break
        room = counts[idx] - alloc[idx]
        give = np.minimum(room, share)
        alloc[idx] += give
        left -= int(give.sum())
        open_ = alloc < counts
    return alloc


@dataclass
class _Level:
    centroids: np.ndarray  # (k_t, d)
    parent: np.ndarray     # (k_t,) cluster of level t+1 each centroid belongs to (filled later)


class HierarchicalKMeans:
    """Hierarchical k-means with resampling (Vo et al. 2024) and top-down balanced sampling.

    Parameters
    ----------
    n_clusters : clusters per level, bottom first, e.g. ``(1000, 100, 10)``; each level must
        have no more clusters than the one below.
    resampling_steps : resampling-clustering steps, one number for every level or one per level
        (bottom first); 0 is plain hierarchical k-means.
    resample_size : points kept per cluster in a resampling step (default: half the mean cluster
        size of that level, at least 1).
    n_iter : Lloyd iterations per k-means run.
    n_init : k-means restarts at level 1 (the lowest inertia is kept). Levels above the first
        cluster at most ``k_1`` centroids and always use at least 10 restarts.
    seed : seeds every step; recorded by the CLI.
    device : torch device (``"cpu"``, ``"cuda"``).
    backend : ``"torch"`` or ``"faiss"``.

    Attributes
    ----------
    centroids_ : list of (k_t, d) arrays, level 1 first
    labels_ : (n, T) int array, the cluster of every point at every level
    counts_ : list of (k_t,) point counts per cluster

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, .1, (900, 2)), rng.normal(5, .1, (100, 2))]
    >>> hk = HierarchicalKMeans(n_clusters=(20, 2), seed=0).fit(X)
    >>> idx = hk.balanced_sample(100, seed=0)
    >>> int((idx >= 900).sum())   # the small blob gets half the sample, not a tenth
    50
    """

    def __init__(self, *, n_clusters: Sequence[int] = (100, 10), resampling_steps: int | Sequence[int] = 3,
                 resample_size: int | None = None, n_iter: int = 20, n_init: int = 1, seed: int = 0, device: str = "cpu",
                 backend: str = "torch", progress: Callable[[int], None] | None = None):
        self.n_clusters = tuple(int(k) for k in n_clusters)
        self.resampling_steps = resampling_steps
        self.resample_size = resample_size
        self.n_iter = int(n_iter)
        self.n_init = int(n_init)
        self.seed = int(seed)
        self.device = device
        self.backend = backend
        self.progress = progress

    def _check(self, n: int) -> None:
        if not self.n_clusters:
            raise FairfoundryError("n_clusters needs at least one level")
        below = n
        for t, k in enumerate(self.n_clusters, start=1):
            what = "points" if t == 1 else f"clusters of level {t - 1}"
            if k < 1 or k > below:
                raise FairfoundryError(f"k={k} at level {t} is larger than the {below} {what}"
                                       if k > below else f"k={k} at level {t} must be at least 1",
                                       hint="each level needs k <= the number of items it clusters")
            below = k

    def _steps(self, t: int) -> int:
        rs = self.resampling_steps
        return int(rs[t] if isinstance(rs, (tuple, list)) else rs)

    def _level(self, Xt, k: int, seed: int, steps: int, n_init: int):
        torch = _torch()
        C = _fit_centroids(Xt, k, n_iter=self.n_iter, seed=seed, backend=self.backend, n_init=n_init)
        n = Xt.shape[0]
        r = self.resample_size or max(1, n // (2 * k))
        for step in range(steps):
            labels, dist = _assign(Xt, C)
            # the r points closest to their centroid, in every cluster
            by_dist = torch.argsort(dist)  # then a stable sort by cluster: exact, no float key
            order = by_dist[torch.sort(labels[by_dist], stable=True).indices]
            lab_sorted = labels[order]
            counts = torch.bincount(labels, minlength=k)
            starts = torch.cumsum(counts, 0) - counts
            rank = torch.arange(n, device=Xt.device) - starts[lab_sorted]
            pick = order[rank < r]
            if pick.numel() < k:
                break
            # a fresh k-means (new k-means++ seeding) on the resampled set: every cluster now
            # weighs the same, so the new centroids follow a flatter density than the old ones
            C = _fit_centroids(Xt[pick], k, n_iter=self.n_iter, seed=seed + 1 + step, backend=self.backend,
                               n_init=n_init)
        labels, _ = _assign(Xt, C)
        return C, labels

    def fit(self, X) -> HierarchicalKMeans:
        torch = _torch()
        X = np.asarray(X, dtype=np.float32) if not torch.is_tensor(X) else X
        n = X.shape[0]
        self._check(n)
        cur = torch.as_tensor(X, dtype=torch.float32, device=self.device)
        point_labels = []
        self.centroids_ = []
        for t, k in enumerate(self.n_clusters):
            log.info("hierarchical k-means: level %d, k=%d on %d items", t + 1, k, cur.shape[0])
            C, lab = self._level(cur, k, self.seed + 1000 * t, self._steps(t),
                                 self.n_init if t == 0 else max(self.n_init, 10))
            self.centroids_.append(C.cpu().numpy())
            lab = lab.cpu().numpy()
            point_labels.append(lab if t == 0 else lab[point_labels[-1]])
            cur = C
            if self.progress is not None:
                self.progress(1)
        self.labels_ = np.stack(point_labels, axis=1).astype(np.int64)
        self.counts_ = [np.bincount(self.labels_[:, t], minlength=k) for t, k in enumerate(self.n_clusters)]
        self.n_ = n
        return self

    def balanced_sample(self, target: int, *, seed: int = 0, groups=None) -> np.ndarray:
        """Indices of a balanced sample of ``target`` points (sorted), drawn top-down.

        Parameters
        ----------
        target : sample size, ``1 <= target <= n``
        seed : seeds the random draws and tie-breaks
        groups : optional (n,) integer codes of a recorded attribute, balanced within every
            level-1 cluster

        Raises
        ------
        FairfoundryError
            If ``target`` is larger than the data.
        """
        from ._inputs import check_count

        check_count(target, name="target", n=self.n_, what="rows")
        rng = np.random.default_rng(seed)
        L = self.labels_
        T = L.shape[1]
        chosen: list[np.ndarray] = []

        def descend(rows: np.ndarray, level: int, quota: int) -> None:
            if quota <= 0:
                return
            if level < 0:  # inside a level-1 cluster: by attribute group, then at random
                if groups is None:
                    chosen.append(rng.choice(rows, size=quota, replace=False))
                    return
                g = np.asarray(groups)[rows]
                codes, inv = np.unique(g, return_inverse=True)
                alloc = balanced_allocation(np.bincount(inv, minlength=len(codes)), quota, rng=rng)
                for j in range(len(codes)):
                    if alloc[j]:
                        chosen.append(rng.choice(rows[inv == j], size=alloc[j], replace=False))
                return
            lab = L[rows, level]
            ids, inv = np.unique(lab, return_inverse=True)
            alloc = balanced_allocation(np.bincount(inv, minlength=len(ids)), quota, rng=rng)
            for j in range(len(ids)):
                descend(rows[inv == j], level - 1, int(alloc[j]))

        descend(np.arange(self.n_), T - 1, int(target))
        return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
