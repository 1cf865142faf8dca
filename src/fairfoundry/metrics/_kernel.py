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
  products of contiguous slices;
* Brier score, log loss and the one-step calibration refit are linear in ``w`` (one matrix
  product with per-row features);
* calibration slope/intercept by Newton's method: vectorised over the ``K`` rows, warm-started.

Bootstrap counts are small integers: they are stored as bytes (``uint8``), summed exactly, and
their cumulative sums are exact in float32 while the total weight is below 2**24 (checked; float64
otherwise). Products with float features are accumulated in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

__all__ = ["Layout", "build_layout", "compute_row_terms", "segment_stats", "segmented_logistic_fit",
           "LOGIT_EPS"]

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
    resid: np.ndarray  # y - s
    pos: np.ndarray  # local indices of positives
    block_start: np.ndarray  # for each positive: first row of its tie block
    block_stop: np.ndarray  # for each positive: one past the last row of its tie block
    pos_before_start: np.ndarray  # for each positive: number of positives before its block
    pos_before_stop: np.ndarray  # for each positive: number of positives up to its block end
    ties: bool  # whether any positive shares its score with another row
    split: int  # first row with s >= threshold
    pos_split: int  # first positive with s >= threshold (index into ``pos``)
    ece_bounds: np.ndarray | None  # uniform-bin boundaries (n_bins + 1,) or None (quantile)
    #: linear features: squared error, log loss, then (after :meth:`set_calibration_start`)
    #: the one-step logistic score / Hessian terms
    F: np.ndarray = None
    n_base: int = 0
    cal_start: tuple[float, float] | None = None
    X3: np.ndarray | None = None  # [1, x, x**2], cached by the Newton fit
    overall_cal: bool = False

    def _one_step_features(self, a0: float, b0: float, F: np.ndarray) -> None:
        """Fill the 5 columns of ``F`` with ``r, r x, v, v x, v x^2`` at ``(a0, b0)``."""
        if not (np.isfinite(a0) and np.isfinite(b0)):
            F[:] = 0.0
            return
        mu = expit(a0 + b0 * self.x)
        np.subtract(self.y, mu, out=F[:, 0])
        np.multiply(F[:, 0], self.x, out=F[:, 1])
        np.multiply(mu, 1 - mu, out=F[:, 2])
        np.multiply(F[:, 2], self.x, out=F[:, 3])
        np.multiply(F[:, 3], self.x, out=F[:, 4])

    def set_calibration_start(self, a0: float, b0: float,
                              overall: tuple[float, float] | None = None) -> None:
        """Append the one-step Newton features (score and Hessian terms of the logistic
        recalibration) evaluated at this segment's full-data fit ``(a0, b0)`` and, optionally,
        at the overall fit (so the overall one-step sums can be added up over groups)."""
        self.cal_start = (float(a0), float(b0))
        k = self.n_base
        F = np.empty((len(self.x), k + (10 if overall is not None else 5)), order="F")
        F[:, :k] = self.F[:, :k]
        self._one_step_features(a0, b0, F[:, k:k + 5])
        if overall is not None:
            self._one_step_features(*overall, F[:, k + 5:k + 10])
        self.F = F
        self.overall_cal = overall is not None


@dataclass
class Layout:
    """Rows sorted by (segment, score); ``order[i]`` is the original row at layout position i."""

    order: np.ndarray
    segments: list[Segment]
    n: int
    threshold: float
    ece_bins: int
    ece_strategy: str


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


def compute_row_terms(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row logit of the clipped score and log loss (shared by every layout)."""
    pc = np.clip(s.astype(np.float64), LOGIT_EPS, 1 - LOGIT_EPS)
    l1p = np.log1p(-pc)
    x = np.log(pc) - l1p
    ll = y * x
    ll += l1p
    ll *= -1.0
    return x, ll


def build_layout(y: np.ndarray, s: np.ndarray, seg: np.ndarray, n_seg: int, *,
                 threshold: float, ece_bins: int = 10, ece_strategy: str = "uniform",
                 score_order: np.ndarray | None = None,
                 terms: tuple[np.ndarray, np.ndarray] | None = None) -> Layout:
    """Sort rows by (segment, score) and precompute everything that does not depend on weights.

    Every segment ``0..n_seg-1`` must be non-empty. ``score_order`` (a stable argsort of ``s``)
    can be passed to share one sort between layouts.
    """
    if score_order is None:
        score_order = np.argsort(s, kind="stable")
    if n_seg == 1:
        order = score_order
    else:
        small = seg.astype(np.int16) if n_seg < 2**15 else seg
        order = score_order[np.argsort(small[score_order], kind="stable")]
    ys = y[order].astype(np.float64)
    ss = s[order].astype(np.float64)
    segs = seg[order]
    if terms is None:
        terms = compute_row_terms(y, s)
    xs, lls = (np.take(a, order) for a in terms)
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
        pos = np.flatnonzero(yg == 1)
        block_id = np.cumsum(new_block) - 1
        starts = np.flatnonzero(new_block)
        stops = np.append(starts[1:], m)
        bstart = starts[block_id[pos]]
        bstop = stops[block_id[pos]]
        x, ll = xs[a:b], lls[a:b]
        split = int(np.searchsorted(sg, threshold, side="left"))
        ece_b = None
        resid = yg - sg
        if ece_strategy == "uniform":
            inner = np.linspace(0.0, 1.0, ece_bins + 1)[1:-1]
            ece_b = np.concatenate([[0], np.searchsorted(sg, inner, side="right"), [m]])
        F = np.empty((m, 2), order="F")
        np.subtract(sg, yg, out=F[:, 0])
        F[:, 0] **= 2
        F[:, 1] = ll
        segments.append(Segment(
            start=a, stop=b, y=yg, s=sg, x=x, resid=resid, pos=pos,
            block_start=bstart, block_stop=bstop,
            pos_before_start=np.searchsorted(pos, bstart), pos_before_stop=np.searchsorted(pos, bstop),
            ties=bool(np.any(bstop - bstart > 1)), split=split,
            pos_split=int(np.searchsorted(pos, split)), ece_bounds=ece_b,
            F=F, n_base=F.shape[1],
        ))
    return Layout(order=order, segments=segments, n=len(y), threshold=float(threshold),
                  ece_bins=int(ece_bins), ece_strategy=ece_strategy)


def _padded_cumsum(a: np.ndarray, dtype=np.float64) -> np.ndarray:
    out = np.empty((a.shape[0], a.shape[1] + 1), dtype=dtype)
    out[:, 0] = 0
    np.cumsum(a, axis=1, dtype=dtype, out=out[:, 1:])
    return out


def _newton_update(a: np.ndarray, b: np.ndarray, rows: np.ndarray, g0, g1, h0, h1, h2,
                   tol: float) -> tuple[np.ndarray, np.ndarray]:
    """One damped Newton step of ``y ~ a + b x`` for the fits ``rows`` (in place on ``a``, ``b``),
    from the gradient ``(g0, g1)`` and Hessian ``[[h0, h1], [h1, h2]]`` of the log-likelihood.
    Steps longer than 5 are shortened (a concave log-likelihood; keeps far starts stable).
    Returns ``(converged, diverged)`` masks over ``rows``."""
    det = h0 * h2 - h1 * h1
    with np.errstate(divide="ignore", invalid="ignore"):
        da = (h2 * g0 - h1 * g1) / det
        db = (h0 * g1 - h1 * g0) / det
        bad = ~(np.isfinite(da) & np.isfinite(db))
        step = np.maximum(np.abs(da), np.abs(db))
        scale = np.where(step > 5.0, 5.0 / np.where(step > 0, step, 1.0), 1.0)
        a[rows] += np.where(bad, 0.0, da * scale)
        b[rows] += np.where(bad, 0.0, db * scale)
    conv = (~bad) & (step <= tol * (1.0 + np.abs(a[rows]) + np.abs(b[rows])))
    diverged = bad | (np.abs(b[rows]) > 1e6) | (np.abs(a[rows]) > 1e6)
    return conv, diverged


def _logistic_fit(x: np.ndarray, y: np.ndarray, W: np.ndarray | None, a0: np.ndarray,
                  b0: np.ndarray, *, X3: np.ndarray | None = None, max_iter: int = 100,
                  tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """Weighted logistic regression ``y ~ a + b x`` for each row of ``W`` by Newton's method.

    ``W=None`` means one row of unit weights; ``X3`` is ``[1, x, x**2]`` (computed if not
    given). Stops after a step smaller than ``tol * (1 + |a| + |b|)``: Newton converges
    quadratically, so the remaining error is of the order of the squared step (~1e-14).
    Returns ``(a, b)``; entries that did not converge (separation, degenerate data) are NaN.
    """
    K = 1 if W is None else W.shape[0]
    a = np.array(a0, dtype=np.float64).reshape(K).copy()
    b = np.array(b0, dtype=np.float64).reshape(K).copy()
    if X3 is None:
        X3 = np.column_stack([np.ones_like(x), x, x * x])
    active = np.ones(K, dtype=bool)
    done = np.zeros(K, dtype=bool)
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        Wr = None if W is None else W[rows]
        mu = b[rows, None] * x
        mu += a[rows, None]
        expit(mu, out=mu)
        R = y - mu
        if Wr is not None:
            R *= Wr
        mu *= 1 - mu
        if Wr is not None:
            mu *= Wr
        g = R @ X3
        h = mu @ X3
        conv, diverged = _newton_update(a, b, rows, g[:, 0], g[:, 1], h[:, 0], h[:, 1], h[:, 2], tol)
        done[rows[conv]] = True
        active[rows[conv | diverged]] = False
    a[~done] = np.nan
    b[~done] = np.nan
    return a, b



def segmented_logistic_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray | None,
                           seg: np.ndarray, n_seg: int, *, fit: np.ndarray | None = None,
                           max_iter: int = 100,
                           tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_logistic_fit` of every segment at once (one weight vector, many groups).

    Segment ``g`` (rows where ``seg == g``) gets its own ``y ~ a_g + b_g x`` fit from the
    start ``(0, 1)`` with the same damped Newton steps and stopping rule as
    :func:`_logistic_fit`; the per-segment gradient and Hessian sums are ``np.bincount`` sums,
    so thousands of small groups cost a few passes over the rows instead of a Python call each.
    ``fit`` (bool per segment) limits the fits to some segments (the others are NaN).
    Returns ``(a, b)`` of shape ``(n_seg,)``, NaN where a fit did not converge.
    """
    a = np.zeros(n_seg)
    b = np.ones(n_seg)
    active = np.ones(n_seg, dtype=bool) if fit is None else np.asarray(fit, dtype=bool).copy()
    done = np.zeros(n_seg, dtype=bool)
    seg = np.asarray(seg, dtype=np.int64)
    for _ in range(max_iter):
        if not active.any():
            break
        rows = active[seg]
        sg, xs, ys = seg[rows], x[rows], y[rows]
        mu = expit(a[sg] + b[sg] * xs)
        r = ys - mu
        v = mu * (1 - mu)
        if w is not None:
            r *= w[rows]
            v *= w[rows]
        g0 = np.bincount(sg, r, minlength=n_seg)
        g1 = np.bincount(sg, r * xs, minlength=n_seg)
        h0 = np.bincount(sg, v, minlength=n_seg)
        vx = v * xs
        h1 = np.bincount(sg, vx, minlength=n_seg)
        h2 = np.bincount(sg, vx * xs, minlength=n_seg)
        idx = np.flatnonzero(active)
        conv, diverged = _newton_update(a, b, idx, g0[idx], g1[idx], h0[idx], h1[idx], h2[idx], tol)
        done[idx[conv]] = True
        active[idx[conv | diverged]] = False
    a[~done] = np.nan
    b[~done] = np.nan
    return a, b


#: rows per block when widening small-integer weights for the float products (cache-sized)
LINEAR_BLOCK = 1 << 16


def _linear_sums(W: np.ndarray, F: np.ndarray | None, resid: np.ndarray,
                 ece_bounds: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``W @ F`` and the per-bin sums of ``W * resid`` (bins = contiguous row ranges).

    Integer-typed ``W`` is widened to float64 block by block (``LINEAR_BLOCK`` rows), so the
    float copy stays in cache instead of being written out whole.
    """
    K, m = W.shape
    WF = None if F is None else np.zeros((K, F.shape[1]))
    sums = None if ece_bounds is None else np.zeros((K, len(ece_bounds) - 1))
    if WF is None and sums is None:
        return None, None
    # (a single row goes unblocked: numpy's matmul of one row with a strided block of F
    # leaves BLAS and is slow)
    step = m if (W.dtype == np.float64 or LINEAR_BLOCK <= 0 or K <= 2) else LINEAR_BLOCK
    for a in range(0, m, step):
        z = min(m, a + step)
        Wb = W[:, a:z] if W.dtype == np.float64 else W[:, a:z].astype(np.float64)
        if WF is not None:
            WF += Wb @ F[a:z]
        if sums is not None:
            k0 = max(int(np.searchsorted(ece_bounds, a, side="right")) - 1, 0)
            for k in range(k0, len(ece_bounds) - 1):
                lo, hi = max(ece_bounds[k], a), min(ece_bounds[k + 1], z)
                if lo >= z:
                    break
                if hi > lo:
                    sums[:, k] += Wb[:, lo - a:hi - a] @ resid[lo:hi]
    return WF, sums


def one_step_solve(lin: np.ndarray, start: tuple[float, float]) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """One Newton step for the logistic recalibration from ``start = (a0, b0)`` given the
    weighted sums ``lin = [sum w r, sum w r x, sum w v, sum w v x, sum w v x^2]`` (``r = y - mu``,
    ``v = mu (1 - mu)`` at the start). Returns ``(a, b)``."""
    g0, g1, h0, h1, h2 = (lin[:, j] for j in range(5))
    with np.errstate(divide="ignore", invalid="ignore"):
        det = h0 * h2 - h1 * h1
        a = start[0] + (h2 * g0 - h1 * g1) / det
        b = start[1] + (h0 * g1 - h1 * g0) / det
    return a, b


def segment_stats(seg: Segment, W: np.ndarray, layout: Layout, *, need: set[str],
                  calibration: str = "newton", integer_weights: bool = False,
                  cal_start: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Weighted statistics of one segment for each row of ``W`` (shape ``(K, m)``).

    Returns arrays of shape ``(K,)``: ``n`` (total weight), ``pos``, ``tp``, ``fp``, ``fn``,
    ``tn`` always; ``auc``, ``ap``, ``ece``, ``brier``, ``log_loss``, ``cal_slope``,
    ``cal_intercept`` when in ``need``. Undefined values are NaN.

    ``calibration="newton"`` iterates Newton's method to convergence from ``cal_start``;
    ``"one_step"`` takes a single Newton step from the segment's full-data fit (set with
    :meth:`Segment.set_calibration_start`), which is linear in ``W`` (one matrix product).
    ``integer_weights`` (all weights integers, e.g. bootstrap counts) allows exact float32
    cumulative sums.
    """
    K, m = W.shape
    one_step = (calibration == "one_step" and bool(need & {"cal_slope", "cal_intercept"})
                and seg.F.shape[1] > seg.n_base)
    Wp = np.take(W, seg.pos, axis=1)
    # small-integer weights (uint8 bootstrap counts) are gathered and summed as bytes and
    # widened to float64 once, only for the products with float features
    Fsel = None
    if one_step or need & {"brier", "log_loss"}:
        Fsel = seg.F if one_step else seg.F[:, :seg.n_base]
    ece_b = seg.ece_bounds if "ece" in need else None
    WF, ece_sums = _linear_sums(W, Fsel, seg.resid, ece_b)
    C = None
    if need & {"auc", "ap"} or (seg.ece_bounds is None and "ece" in need):
        if np.issubdtype(W.dtype, np.integer):
            # integer counts (uint8 bootstrap counts, 0/1 indicators): integer cumulative sums
            # are exact and several times faster than a float accumulate (measured: int32 6x
            # float32 on 1M-row uint8 rows); int32 holds any sum of m counts below 2**31
            cdt = np.int32 if m * int(np.iinfo(W.dtype).max) < 2**31 else np.int64
            C = _padded_cumsum(W, cdt)
            P = _padded_cumsum(Wp, cdt)
        else:
            # integer-valued float weights have exact float32 cumulative sums while the total
            # is < 2**24 (all partial sums are then exact integers)
            C = _padded_cumsum(W, np.float32 if integer_weights else np.float64)
            P = _padded_cumsum(Wp, C.dtype)
            if C.dtype == np.float32 and C[:, -1].max(initial=0) >= 2**24:
                C = _padded_cumsum(W)
                P = _padded_cumsum(Wp)
        n = C[:, -1].astype(np.float64)
        pos = P[:, -1].astype(np.float64)
        pred_pos = n - C[:, seg.split]
        tp = pos - P[:, seg.pos_split]
    else:
        n = W.sum(axis=1, dtype=np.float64)
        pos = Wp.sum(axis=1, dtype=np.float64)
        pred_pos = W[:, seg.split:].sum(axis=1, dtype=np.float64)
        tp = Wp[:, seg.pos_split:].sum(axis=1, dtype=np.float64)
    if Wp.dtype != np.float64:
        Wp = Wp.astype(np.float64)
    neg = n - pos
    fp = pred_pos - tp
    fn = pos - tp
    out = {"n": n, "pos": pos, "tp": tp, "fp": fp, "fn": fn, "tn": neg - fp}
    with np.errstate(divide="ignore", invalid="ignore"):
        if WF is not None:
            out["brier"] = WF[:, 0] / n
            out["log_loss"] = WF[:, 1] / n
        if need & {"auc", "ap"}:
            Cb = np.take(C, seg.block_start, axis=1).astype(np.float64)
            Pb = np.take(P, seg.pos_before_start, axis=1).astype(np.float64)
            if "auc" in need:
                Nb = Cb - Pb
                if seg.ties:
                    Nb += np.take(C, seg.block_stop, axis=1)
                    Nb -= np.take(P, seg.pos_before_stop, axis=1)
                    num = np.einsum("ij,ij->i", Wp, Nb) / 2.0
                else:
                    num = np.einsum("ij,ij->i", Wp, Nb)
                out["auc"] = num / (pos * neg)
            if "ap" in need:
                # precision at each positive's threshold; its own weight keeps the
                # denominator > 0 whenever its weight is > 0 (zero-weight rows add nothing)
                Pb -= pos[:, None]
                Cb -= n[:, None]
                np.minimum(Cb, -1e-300, out=Cb)
                Pb /= Cb
                out["ap"] = np.einsum("ij,ij->i", Wp, Pb) / pos
        if "ece" in need:
            if seg.ece_bounds is not None:
                out["ece_bins"] = ece_sums
                out["ece"] = np.abs(ece_sums).sum(axis=1) / n
            else:
                D = _padded_cumsum(W * seg.resid)
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
        if need & {"cal_slope", "cal_intercept"}:
            a = np.full(K, np.nan)
            b = np.full(K, np.nan)
            ok = (pos > 0) & (neg > 0)
            if one_step:
                a, b = one_step_solve(WF[:, seg.n_base:seg.n_base + 5], seg.cal_start)
                a = np.where(ok, a, np.nan)
                b = np.where(ok, b, np.nan)
                if seg.overall_cal:
                    out["cal_lin_overall"] = WF[:, seg.n_base + 5:seg.n_base + 10]
            elif ok.any():
                if cal_start is None:
                    a0, b0 = np.zeros(K), np.ones(K)
                    if m > 50_000:
                        # warm start from a systematic subsample of the (score-sorted) rows;
                        # the full-data Newton iterations below make the result exact
                        step = m // 20_000
                        a0, b0 = _logistic_fit(seg.x[::step], seg.y[::step],
                                               np.ascontiguousarray(W[:, ::step]), a0, b0,
                                               tol=1e-4)
                        bad = ~(np.isfinite(a0) & np.isfinite(b0))
                        a0[bad], b0[bad] = 0.0, 1.0
                else:
                    a0, b0 = cal_start
                rows = np.flatnonzero(ok)
                a0r = np.where(np.isfinite(a0[rows]), a0[rows], 0.0)
                b0r = np.where(np.isfinite(b0[rows]), b0[rows], 1.0)
                if seg.X3 is None:
                    seg.X3 = np.column_stack([np.ones_like(seg.x), seg.x, seg.x * seg.x])
                unit = K == 1 and bool(W.min() == 1 and W.max() == 1)
                a[rows], b[rows] = _logistic_fit(seg.x, seg.y, None if unit else W[rows],
                                                 a0r, b0r, X3=seg.X3)
            out["cal_intercept"] = a
            out["cal_slope"] = b
    return out
