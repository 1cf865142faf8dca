r"""k-means, hierarchical k-means with resampling, and top-down balanced sampling.

Re-implemented from the paper (no code copied): Vo, H. V. et al., "Automatic data curation for
self-supervised learning: a clustering-based approach", TMLR 2024 (arXiv 2405.15613).

- **k-means** (Lloyd) with k-means++ seeding (Arthur & Vassilvitskii 2007). Seeding runs on a
  random subsample of at most ``max(32 k, 10000)`` points (``_SEED_PER_CENTROID``,
  ``_SEED_MIN``), so that seeding 1,000 centroids on a million points is 1,000 passes over 32,000
  points, not over the million (scikit-learn's ``MiniBatchKMeans`` seeds on ``3 k`` points by
  default); Lloyd iterations then use every point. Seeding is the only sequential part: each new
  centroid needs the distances to the one before.
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

**Cost.** The assignment step is one matrix product per block of rows: the nearest centroid
minimises :math:`\lVert c \rVert^2 - 2\, x \cdot c` (the row norm :math:`\lVert x \rVert^2` is the
same for every centroid, computed once per k-means and added back to the minimum only), written
by ``torch.addmm`` into one reused block of ``_BLOCK`` floats (16 MB on CPU, so that the
product and the row minimum stay in cache), float32 throughout. A Lloyd iteration therefore
costs about one ``n x d x k`` matrix product, the same as faiss's.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .._errors import FairfoundryError

__all__ = ["kmeans", "HierarchicalKMeans", "balanced_allocation"]

log = logging.getLogger(__name__)

# floats in one block of the (rows x k) distance matrix: 16 MB on CPU (fits the L2/L3 caches
# with the rows it came from), larger on accelerators where launches, not caches, are the cost
_BLOCK = 1 << 22
_BLOCK_ACCEL = 1 << 26
# k-means++ seeding subsample: at most max(_SEED_PER_CENTROID * k, _SEED_MIN) points
_SEED_PER_CENTROID = 32
_SEED_MIN = 10000


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in the torch extra
        raise FairfoundryError("k-means in fairfoundry.curate needs torch",
                               hint="pip install 'fairfoundry[torch]'") from exc
    return torch


@dataclass
class _Stats:
    """Wall seconds per phase and the Lloyd iterations of every k-means run (for benchmarks)."""

    seconds: dict = field(default_factory=dict)
    runs: list = field(default_factory=list)
    context: dict = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t


def _row_norms(X):
    return _torch().linalg.vector_norm(X, dim=1).square_()


# below this many multiply-adds per assignment (n k d), one thread: the work of a thread pool's
# start and barrier is then larger than the arithmetic, badly so on a loaded machine
_SMALL_WORK = 1 << 26


@contextmanager
def _threads_for(n: int, k: int, d: int, device):
    """One torch thread inside the block when the work is small (or always, with ``n=0``)."""
    torch = _torch()
    small = n * k * d < _SMALL_WORK
    if getattr(device, "type", str(device)) != "cpu" or not small or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _assign(X, C, *, xx=None, block: int | None = None):
    r"""Nearest centroid (squared Euclidean) of every row: (labels, squared distances).

    :math:`\arg\min_j \lVert x - c_j \rVert^2 = \arg\min_j (\lVert c_j \rVert^2 - 2\, x \cdot c_j)`;
    ``xx`` (the row norms :math:`\lVert x \rVert^2`, computed if not given) is added to the
    minimum only.
    """
    torch = _torch()
    n, k = X.shape[0], C.shape[0]
    if block is None:
        block = _BLOCK if X.device.type == "cpu" else _BLOCK_ACCEL
    rows = max(64, min(n, block // k))
    c2 = _row_norms(C)
    Ct = C.T
    labels = torch.empty(n, dtype=torch.long, device=X.device)
    dist = torch.empty(n, dtype=X.dtype, device=X.device)
    buf = torch.empty((min(rows, n), k), dtype=X.dtype, device=X.device)
    for s in range(0, n, rows):
        e = min(s + rows, n)
        b = buf[:e - s]
        torch.addmm(c2, X[s:e], Ct, beta=1, alpha=-2, out=b)
        torch.min(b, 1, out=(dist[s:e], labels[s:e]))
    dist.add_(_row_norms(X) if xx is None else xx).clamp_min_(0)
    return labels, dist


def _stale_limit(j: int, max_stale: int) -> int:
    """Centroids that may be added before the distance bounds are refreshed, at centroid ``j``."""
    return max(1, min(max_stale, j // 4))


def _kmeanspp(X, k: int, gen, *, xx=None, max_stale: int = 64) -> object:
    r"""k-means++ seeding on the rows of ``X`` (already a subsample).

    Each next centroid is the row drawn with probability proportional to :math:`D(x)^2`, its
    squared distance to the nearest centroid so far (Arthur & Vassilvitskii 2007), exactly, but
    without a pass over all rows per centroid: every row keeps an upper bound
    :math:`U(x) \ge D(x)^2`, its squared distance to the centroids up to the last refresh. A row
    is proposed with probability :math:`\propto U(x)` (cumulative sum and binary search), its
    :math:`D(x)^2` is completed against the few centroids added since, and it is accepted with
    probability :math:`D(x)^2 / U(x)`: rejection sampling, so accepted rows follow :math:`D^2`
    exactly. The bounds are refreshed by one matrix product against the centroids added since
    (``_stale_limit``: at most ``max_stale`` of them, a quarter of those so far) or after 8
    rejections in a row, instead of one matrix-vector product per centroid.
    """
    torch = _torch()
    n = X.shape[0]
    if xx is None:
        xx = _row_norms(X)
    C = torch.empty((k, X.shape[1]), dtype=X.dtype, device=X.device)

    def uniform() -> int:
        return min(int(float(torch.rand(1, generator=gen, dtype=torch.float64)) * n), n - 1)

    first = uniform()
    C[0] = X[first]
    U = torch.mv(X, C[0]).mul_(-2.0).add_(xx).add_(xx[first]).clamp_min_(0)
    cum = torch.cumsum(U, 0)
    total = float(cum[-1])
    done, j, rejections = 1, 1, 0  # C[:done] are folded into U
    while j < k:
        if j - done >= _stale_limit(j, max_stale) or rejections >= 8:
            B = C[done:j]
            D = torch.addmm(_row_norms(B), X, B.T, beta=1, alpha=-2).min(1).values
            torch.minimum(U, D.add_(xx).clamp_min_(0), out=U)
            torch.cumsum(U, 0, out=cum)
            total = float(cum[-1])
            done, rejections = j, 0
        if total <= 0:  # fewer distinct points than k: any point will do
            idx = uniform()
        else:
            u, v = torch.rand(2, generator=gen, dtype=torch.float64).tolist()
            idx = min(int(torch.searchsorted(cum, cum.new_tensor([u * total]), right=True)), n - 1)
            bound = float(U[idx])
            true = bound
            if done < j:
                diff = C[done:j] - X[idx]
                true = min(bound, float((diff * diff).sum(1).min()))
            if not v * bound < true:
                rejections += 1
                continue
        C[j] = X[idx]
        j += 1
        rejections = 0
    return C


def _lloyd(X, C, *, n_iter: int, xx=None, tol: float = 1e-6):
    """Lloyd iterations from ``C``: (centroids, iterations run)."""
    torch = _torch()
    k = C.shape[0]
    if xx is None:
        xx = _row_norms(X)
    prev = math.inf
    it = 0
    while it < n_iter:
        it += 1
        labels, dist = _assign(X, C, xx=xx)
        sums = torch.zeros_like(C).index_add_(0, labels, X)
        counts = torch.bincount(labels, minlength=k).to(X.dtype)
        empty = counts <= 0
        C = torch.where(empty[:, None], C, sums / counts.clamp_min(1)[:, None])
        n_empty = int(empty.sum())
        if n_empty:  # re-seed empty clusters at the worst-served points
            far = torch.topk(dist, n_empty).indices
            C[empty] = X[far]
        inertia = float(dist.sum())
        if math.isfinite(prev) and prev - inertia <= tol * prev and not n_empty:
            break
        prev = inertia
    return C, it


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
    with _threads_for(Xt.shape[0], k, Xt.shape[1], Xt.device):
        xx = _row_norms(Xt)
        C = _fit_centroids(Xt, k, n_iter=n_iter, seed=seed, init=init, backend=backend, xx=xx)
        labels, _ = _assign(Xt, C, xx=xx)
    return C.cpu().numpy(), labels.cpu().numpy()


def _seed_subsample_size(n: int, k: int) -> int:
    """Points k-means++ seeding looks at: ``min(n, max(32 k, 10000))``."""
    return min(n, max(_SEED_PER_CENTROID * k, _SEED_MIN))


def _fit_centroids(Xt, k: int, *, n_iter: int, seed: int, init=None, backend: str = "torch",
                   n_init: int = 1, xx=None, stats: _Stats | None = None):
    torch = _torch()
    stats = stats if stats is not None else _Stats()
    if xx is None:
        xx = _row_norms(Xt)
    if n_init > 1 and init is None:  # keep the run with the lowest inertia
        best, best_inertia = None, math.inf
        for r in range(n_init):
            C = _fit_centroids(Xt, k, n_iter=n_iter, seed=seed + 7919 * r, backend=backend, xx=xx, stats=stats)
            inertia = float(_assign(Xt, C, xx=xx)[1].sum())
            if inertia < best_inertia:
                best, best_inertia = C, inertia
        return best
    n = Xt.shape[0]
    if not 1 <= k <= n:
        raise FairfoundryError(f"k={k} must be between 1 and the {n} points to cluster")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    # seeding: sequential draws, each a few small operations on the subsample (one thread is
    # faster than two), and a matrix product per batch of centroids
    with stats.phase("seeding"), _threads_for(0, k, 0, Xt.device):
        if init is None:
            m = _seed_subsample_size(n, k)
            if m == n:
                C = _kmeanspp(Xt, k, gen, xx=xx)
            else:
                sub = torch.randperm(n, generator=gen)[:m].sort().values.to(Xt.device)
                C = _kmeanspp(Xt[sub], k, gen, xx=xx[sub])
        else:
            C = torch.as_tensor(np.asarray(init, dtype=np.float32), device=Xt.device).clone()
    if backend not in ("torch", "faiss"):
        raise FairfoundryError(f"backend={backend!r} is not one of torch, faiss")
    with stats.phase("lloyd"):
        if backend == "faiss":
            C, it = _faiss_lloyd(Xt, C, n_iter=n_iter, seed=seed), n_iter
        else:
            C, it = _lloyd(Xt, C, n_iter=n_iter, xx=xx)
    stats.runs.append({**stats.context, "k": k, "n": n, "lloyd_iterations": it})
    return C


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
    timings_ : wall seconds of ``fit`` per phase (``seeding``, ``lloyd``, ``resampling
        selection``, ``final assignment``) and per level (``level 1``, ...; these overlap the
        phases)
    kmeans_runs_ : one dict per k-means run (``level``, ``resampling_step``, ``k``, ``n``
        points, ``lloyd_iterations`` actually run)

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

    def _level(self, Xt, k: int, seed: int, steps: int, n_init: int, stats: _Stats):
        torch = _torch()
        xx = _row_norms(Xt)  # once per level: every assignment of these points reuses it
        stats.context["resampling_step"] = 0
        C = _fit_centroids(Xt, k, n_iter=self.n_iter, seed=seed, backend=self.backend, n_init=n_init, xx=xx,
                           stats=stats)
        n = Xt.shape[0]
        r = self.resample_size or max(1, n // (2 * k))
        for step in range(steps):
            with stats.phase("resampling selection"):
                labels, dist = _assign(Xt, C, xx=xx)
                # the r points closest to their centroid, in every cluster
                by_dist = torch.argsort(dist)  # then a stable sort by cluster: exact, no float key
                order = by_dist[torch.sort(labels[by_dist], stable=True).indices]
                lab_sorted = labels[order]
                counts = torch.bincount(labels, minlength=k)
                starts = torch.cumsum(counts, 0) - counts
                rank = torch.arange(n, device=Xt.device) - starts[lab_sorted]
                pick = order[rank < r].sort().values  # in row order: the copy below reads memory in sequence
                if pick.numel() < k:
                    break
                sub = Xt[pick]
            # a fresh k-means (new k-means++ seeding) on the resampled set: every cluster now
            # weighs the same, so the new centroids follow a flatter density than the old ones
            stats.context["resampling_step"] = step + 1
            C = _fit_centroids(sub, k, n_iter=self.n_iter, seed=seed + 1 + step, backend=self.backend,
                               n_init=n_init, xx=xx[pick], stats=stats)
            del sub
        with stats.phase("final assignment"):
            labels, _ = _assign(Xt, C, xx=xx)
        return C, labels

    def fit(self, X) -> HierarchicalKMeans:
        torch = _torch()
        X = np.asarray(X, dtype=np.float32) if not torch.is_tensor(X) else X
        n = X.shape[0]
        self._check(n)
        cur = torch.as_tensor(X, dtype=torch.float32, device=self.device)
        point_labels = []
        self.centroids_ = []
        stats = _Stats()
        for t, k in enumerate(self.n_clusters):
            log.info("hierarchical k-means: level %d, k=%d on %d items", t + 1, k, cur.shape[0])
            stats.context = {"level": t + 1}
            with stats.phase(f"level {t + 1}"), _threads_for(cur.shape[0], k, cur.shape[1], cur.device):
                C, lab = self._level(cur, k, self.seed + 1000 * t, self._steps(t),
                                     self.n_init if t == 0 else max(self.n_init, 10), stats)
            self.centroids_.append(C.cpu().numpy())
            lab = lab.cpu().numpy()
            point_labels.append(lab if t == 0 else lab[point_labels[-1]])
            cur = C
            if self.progress is not None:
                self.progress(1)
        self.labels_ = np.stack(point_labels, axis=1).astype(np.int64)
        self.counts_ = [np.bincount(self.labels_[:, t], minlength=k) for t, k in enumerate(self.n_clusters)]
        self.n_ = n
        self.timings_ = dict(stats.seconds)
        self.kmeans_runs_ = list(stats.runs)
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
