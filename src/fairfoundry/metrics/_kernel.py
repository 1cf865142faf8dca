"""The weighted metric kernel: every metric of every segment from one sort.

Rows are sorted once by (segment, score). A *weight matrix* ``W`` of shape ``(K, m)`` then gives
``K`` weighted versions of the data at once: one row of ones is the point estimate, bootstrap
replicates are rows of multinomial counts, permutation tests and jackknife samples are rows of 0/1
indicators. Everything is computed from cumulative sums of ``W`` in the sorted order:

* confusion cells: the predicted-positive rows of a segment are a contiguous suffix (score >=
  threshold), so TP/FP/FN/TN are differences of cumulative sums at one index;
* AUC and average precision: tie blocks are contiguous, so for every positive row the weighted
  number of negatives strictly below / tied with it is a cumulative sum at its block's start/end
  (the Mann-Whitney statistic with ties counted one half);
* ECE: bins are contiguous ranges of the sorted scores, so per-bin sums of ``w (y - p)`` are
  differences of one cumulative sum;
* Brier score and log loss are linear in ``w`` (one matrix-vector product);
* calibration slope/intercept: Newton's method for the weighted logistic recalibration, vectorised
  over the ``K`` rows and warm-started.

Integer weights keep every cumulative count exact in float64 (below 2**53).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

__all__ = ["Layout", "build_layout", "segment_stats", "LOGIT_EPS"]

#: scores are clipped to [eps, 1 - eps] before the logit / log (as scikit-learn's ``log_loss``)
LOGIT_EPS = float(np.finfo(np.float64).eps)

RANK_STATS = ("auc", "ap")
ALL_STATS = ("n", "pos", "tp", "fp", "fn", "tn", "auc", "ap", "ece", "brier", "log_loss",
             "cal_slope", "cal_intercept")


@dataclass
class Segment:
    """One group's rows in sorted-score order (positions are local to the segment)."""

    start: int
    stop: int
    y: np.ndarray  # float64 0/1
    s: np.ndarray  # float64 sorted scores
    x: np.ndarray  # logit of clipped scores
    losses: np.ndarray  # (m, 2): squared error, log loss per row
    resid: np.ndarray  # y - s
    pos: np.ndarray  # local indices of positives
    block_start: np.ndarray  # for each positive: first row of its tie block
    block_stop: np.ndarray  # for each positive: one past the last row of its tie block
    split: int  # first row with s >= threshold
    ece_bounds: np.ndarray | None  # uniform-bin boundaries (n_bins + 1,) or None (quantile)


@dataclass
class Layout:
    """Rows sorted by (segment, score); ``order[i]`` is the original row at layout position i."""

    order: np.ndarray
    segments: list[Segment]
    n: int
    threshold: float
    ece_bins: int
    ece_strategy: str

    @property
    def starts(self) -> np.ndarray:
        return np.array([s.start for s in self.segments], dtype=np.int64)


def _numpy_percentile_edges(values_at, total: float, n_bins: int) -> np.ndarray:
    """Inner quantile edges exactly as ``np.percentile(a, linspace(0, 1, n_bins + 1) * 100)``.

    ``values_at(j)`` returns the ``j``-th order statistics (0-based int array) of a sample of
    size ``total``; numpy's 'linear' method arithmetic is replicated operation by operation so
    that bins equal scikit-learn's ``calibration_curve(strategy="quantile")`` bit for bit.
    """
    q = np.true_divide(np.linspace(0, 1, n_bins + 1) * 100, 100)[1:-1]
    virtual = total * q + (1 + q * (1 - 1 - 1)) - 1
    prev = np.floor(virtual)
    gamma = virtual - prev
    prev_i = np.clip(prev.astype(np.int64), 0, int(total) - 1)
    next_i = np.clip(prev_i + 1, 0, int(total) - 1)
    a = values_at(prev_i)
    b = values_at(next_i)
    diff = b - a
    out = a + diff * gamma
    hi = gamma >= 0.5
    out[hi] = (b - diff * (1 - gamma))[hi]
    return out


def build_layout(y: np.ndarray, s: np.ndarray, seg: np.ndarray, n_seg: int, *,
                 threshold: float, ece_bins: int = 10, ece_strategy: str = "uniform") -> Layout:
    """Sort rows by (segment, score) and precompute everything that does not depend on weights.

    Every segment ``0..n_seg-1`` must be non-empty.
    """
    order = np.lexsort((s, seg))
    ys = y[order].astype(np.float64)
    ss = s[order].astype(np.float64)
    segs = seg[order]
    bounds = np.searchsorted(segs, np.arange(n_seg + 1))
    segments = []
    for g in range(n_seg):
        a, b = int(bounds[g]), int(bounds[g + 1])
        if b <= a:
            raise ValueError(f"segment {g} is empty")
        yg, sg = ys[a:b], ss[a:b]
        m = b - a
        new_block = np.empty(m, dtype=bool)
        new_block[0] = True
        np.not_equal(sg[1:], sg[:-1], out=new_block[1:])
        idx = np.arange(m)
        bstart = np.maximum.accumulate(np.where(new_block, idx, 0))
        end_block = np.empty(m, dtype=bool)
        end_block[-1] = True
        end_block[:-1] = new_block[1:]
        bstop = np.minimum.accumulate(np.where(end_block, idx + 1, m)[::-1])[::-1]
        pos = np.flatnonzero(yg == 1)
        pc = np.clip(sg, LOGIT_EPS, 1 - LOGIT_EPS)
        x = np.log(pc) - np.log1p(-pc)
        ll = -(yg * np.log(pc) + (1 - yg) * np.log1p(-pc))
        losses = np.column_stack([(sg - yg) ** 2, ll])
        ece_b = None
        if ece_strategy == "uniform":
            inner = np.linspace(0.0, 1.0, ece_bins + 1)[1:-1]
            ece_b = np.concatenate([[0], np.searchsorted(sg, inner, side="right"), [m]])
        segments.append(Segment(
            start=a, stop=b, y=yg, s=sg, x=x, losses=losses, resid=yg - sg, pos=pos,
            block_start=bstart[pos], block_stop=bstop[pos],
            split=int(np.searchsorted(sg, threshold, side="left")), ece_bounds=ece_b,
        ))
    return Layout(order=order, segments=segments, n=len(y), threshold=float(threshold),
                  ece_bins=int(ece_bins), ece_strategy=ece_strategy)


def _padded_cumsum(a: np.ndarray) -> np.ndarray:
    out = np.empty((a.shape[0], a.shape[1] + 1), dtype=np.float64)
    out[:, 0] = 0.0
    np.cumsum(a, axis=1, out=out[:, 1:])
    return out


def _logistic_fit(x: np.ndarray, y: np.ndarray, W: np.ndarray, a0: np.ndarray, b0: np.ndarray,
                  *, max_iter: int = 100, tol: float = 1e-11) -> tuple[np.ndarray, np.ndarray]:
    """Weighted logistic regression ``y ~ a + b x`` for each row of ``W`` by Newton's method.

    Returns ``(a, b)``; entries that did not converge (separation, degenerate data) are NaN.
    """
    K = W.shape[0]
    a = np.array(a0, dtype=np.float64).reshape(K).copy()
    b = np.array(b0, dtype=np.float64).reshape(K).copy()
    X1 = np.column_stack([np.ones_like(x), x])
    X2 = np.column_stack([np.ones_like(x), x, x * x])
    active = np.ones(K, dtype=bool)
    done = np.zeros(K, dtype=bool)
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        Wr = W[rows]
        mu = expit(b[rows, None] * x + a[rows, None])
        g = ((y - mu) * Wr) @ X1
        h = ((mu * (1 - mu)) * Wr) @ X2
        det = h[:, 0] * h[:, 2] - h[:, 1] ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            da = (h[:, 2] * g[:, 0] - h[:, 1] * g[:, 1]) / det
            db = (h[:, 0] * g[:, 1] - h[:, 1] * g[:, 0]) / det
        bad = ~(np.isfinite(da) & np.isfinite(db))
        # damp very long steps (Newton on a concave log-likelihood; keeps far starts stable)
        step = np.maximum(np.abs(da), np.abs(db))
        scale = np.where(step > 5.0, 5.0 / np.where(step > 0, step, 1.0), 1.0)
        a[rows] += np.where(bad, 0.0, da * scale)
        b[rows] += np.where(bad, 0.0, db * scale)
        conv = (~bad) & (step <= tol * (1.0 + np.abs(a[rows]) + np.abs(b[rows])))
        diverged = bad | (np.abs(b[rows]) > 1e6) | (np.abs(a[rows]) > 1e6)
        done[rows[conv]] = True
        active[rows[conv | diverged]] = False
    a[~done] = np.nan
    b[~done] = np.nan
    return a, b


def segment_stats(seg: Segment, W: np.ndarray, layout: Layout, *, need: set[str],
                  cal_start: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Weighted statistics of one segment for each row of ``W`` (shape ``(K, m)``).

    Returns arrays of shape ``(K,)``: ``n`` (total weight), ``pos``, ``tp``, ``fp``, ``fn``,
    ``tn`` always; ``auc``, ``ap``, ``ece``, ``brier``, ``log_loss``, ``cal_slope``,
    ``cal_intercept`` when in ``need``. Undefined values are NaN.
    """
    K = W.shape[0]
    C = _padded_cumsum(W)
    P = _padded_cumsum(W * seg.y)
    n = C[:, -1]
    pos = P[:, -1]
    neg = n - pos
    fn = P[:, seg.split]
    tn = C[:, seg.split] - fn
    out = {"n": n, "pos": pos, "tp": pos - fn, "fp": neg - tn, "fn": fn, "tn": tn}
    with np.errstate(divide="ignore", invalid="ignore"):
        if need & {"auc", "ap"}:
            Wp = W[:, seg.pos]
            Cb = C[:, seg.block_start]
            Pb = P[:, seg.block_start]
            if "auc" in need:
                Nb = Cb - Pb
                Ne = C[:, seg.block_stop] - P[:, seg.block_stop]
                num = np.einsum("ij,ij->i", Wp, Nb + Ne)
                out["auc"] = num / (2.0 * pos * neg)
            if "ap" in need:
                tp_t = pos[:, None] - Pb
                pp_t = n[:, None] - Cb
                prec = np.divide(tp_t, pp_t, out=np.zeros_like(tp_t), where=pp_t > 0)
                out["ap"] = np.einsum("ij,ij->i", Wp, prec) / pos
        if "ece" in need:
            D = _padded_cumsum(W * seg.resid)
            if seg.ece_bounds is not None:
                diffs = np.diff(D[:, seg.ece_bounds], axis=1)
                out["ece"] = np.abs(diffs).sum(axis=1) / n
            else:
                ece = np.full(K, np.nan)
                cinc = C[:, 1:]
                for k in range(K):
                    tot = C[k, -1]
                    if tot <= 0:
                        continue
                    ck = cinc[k]
                    edges = _numpy_percentile_edges(
                        lambda j, ck=ck: seg.s[np.searchsorted(ck, j, side="right")],
                        float(tot), layout.ece_bins)
                    bnd = np.concatenate([[0], np.searchsorted(seg.s, edges, side="right"),
                                          [len(seg.s)]])
                    ece[k] = np.abs(np.diff(D[k, bnd])).sum() / tot
                out["ece"] = ece
        if need & {"brier", "log_loss"}:
            L = W @ seg.losses
            out["brier"] = L[:, 0] / n
            out["log_loss"] = L[:, 1] / n
        if need & {"cal_slope", "cal_intercept"}:
            if cal_start is None:
                a0, b0 = np.zeros(K), np.ones(K)
            else:
                a0, b0 = cal_start
            a = np.full(K, np.nan)
            b = np.full(K, np.nan)
            ok = (pos > 0) & (neg > 0)
            if ok.any():
                rows = np.flatnonzero(ok)
                a0r = np.where(np.isfinite(a0[rows]), a0[rows], 0.0)
                b0r = np.where(np.isfinite(b0[rows]), b0[rows], 1.0)
                a[rows], b[rows] = _logistic_fit(seg.x, seg.y, W[rows], a0r, b0r)
            out["cal_intercept"] = a
            out["cal_slope"] = b
    return out
