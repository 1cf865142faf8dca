r"""The group evaluation engine: every metric, every summary, one set of bootstrap replicates.

:func:`evaluate_groups` sorts the data once per layout (by group then score, and by score),
evaluates the point estimates with unit weights, then bootstrap replicates (multinomial counts
within groups, or cluster counts), permutations (group indicators) and jackknife blocks (0/1
weights) through the same weighted kernel, in chunks of replicates of bounded memory, on
``n_jobs`` threads. Every per-group metric and every summary of a replicate comes from the same
weights, so CIs of gaps and of their components are coherent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._errors import FairfoundryError, did_you_mean
from ..groups import encode_groups, intersect_groups
from ._bootstrap import (
    ResamplePlan,
    bca_interval,
    pairwise_gap_interval,
    percentile_interval,
    permutation_pvalue,
    proportion_interval,
)
from ._checks import as_binary, as_scores, present_groups, same_length
from ._confusion import nan_reason, rates_from_counts
from ._kernel import (
    build_layout,
    compute_row_terms,
    one_step_solve,
    segment_stats,
    segmented_logistic_fit,
)
from ._options import EngineOptions
from ._records import PER_GROUP
from ._summary import DIRECTION, SUMMARIES, gap, ratio, to_overall, vs_reference, worst_group

__all__ = ["evaluate_groups", "GroupResult", "intersect_groups", "underdiagnosis_by_group",
           "METRICS", "FAMILY", "DIFF_METRICS"]

log = logging.getLogger(__name__)

#: per-group metric names, in table order (declared once, in :data:`._records.PER_GROUP`)
METRICS = tuple(PER_GROUP)
#: metric -> the kernel statistic it is (the others come from the confusion cells)
_KERNEL = {r.name: r.kernel for r in PER_GROUP.values() if r.kernel != "confusion"}
#: per-metric summary suffixes and how a permutation p-value reads them
FAMILY = {"gap": "high", "ratio": "low", "to_overall": "high", "vs_reference": "abs",
          "worst_group": None}
#: named summaries that are gaps (or monotone combinations of gaps): how their pairwise
#: interval combines the component gaps' intervals ``[[lo, hi], ...]``
_GAP_SUMMARIES = {
    "demographic_parity_difference": (lambda b: tuple(b[0]), ("selection_rate",)),
    "equal_opportunity_difference": (lambda b: tuple(b[0]), ("tpr",)),
    "predictive_parity_difference": (lambda b: tuple(b[0]), ("ppv",)),
    "equalized_odds_difference": (lambda b: (b[:, 0].max(), b[:, 1].max()), ("tpr", "fpr")),
    "equalized_odds_difference_mean": (lambda b: (b[:, 0].mean(), b[:, 1].mean()),
                                       ("tpr", "fpr")),
    "equalized_odds_score": (lambda b: (1 - b[:, 1].mean(), 1 - b[:, 0].mean()),
                             ("tpr", "fpr")),
}
OVERALL = "overall"


@dataclass
class GroupResult:
    """Result of :func:`evaluate_groups`.

    Attributes
    ----------
    per_group : DataFrame
        Tidy: ``group, metric, estimate, ci_low, ci_high, n, reason``; one row per
        (group incl. ``"overall"``, metric). ``reason`` is ``""`` or why the value is NaN.
    summary : DataFrame
        ``metric, estimate, ci_low, ci_high, p_value, reason, detail``.
    replicates : dict
        Bootstrap replicate values: ``"<metric>"`` -> array ``(B, G + 1)`` (columns: groups in
        ``group_names`` order, then overall) and ``"<summary>"`` -> array ``(B,)``. Empty
        without bootstrap.
    null : dict
        Permutation-null values of each summary (``(P,)`` arrays); empty without permutations.
    plan : ResamplePlan or None
        The resampling plan (``plan.indices(b)`` maps through ``layout_order`` to the rows of
        replicate ``b``).
    layout_order : ndarray
        Layout position -> input row (for ``plan.indices``).
    config : dict
        Everything needed to reproduce the run (threshold, seed, replicates, methods, ...).
    """

    per_group: pd.DataFrame
    summary: pd.DataFrame
    replicates: dict = field(default_factory=dict)
    null: dict = field(default_factory=dict)
    plan: ResamplePlan | None = None
    layout_order: np.ndarray | None = None
    config: dict = field(default_factory=dict)

    def estimate(self, metric: str, group: str = OVERALL) -> float:
        """The point estimate of ``metric`` for ``group`` (or of a summary when ``group`` is
        ``None``)."""
        if group is None:
            row = self.summary.loc[self.summary["metric"] == metric]
        else:
            pg = self.per_group
            row = pg.loc[(pg["metric"] == metric) & (pg["group"] == group)]
        if row.empty:
            raise FairfoundryError(f"no result for metric {metric!r}, group {group!r}")
        return float(row["estimate"].iloc[0])

    def replicate_rows(self, b: int) -> np.ndarray:
        """Input row indices of bootstrap replicate ``b`` (with repeats): the explicit resample."""
        if self.plan is None or self.layout_order is None:
            raise FairfoundryError("this result has no bootstrap replicates")
        return self.layout_order[self.plan.indices(b)]


class _Engine:
    """Both layouts of one data set and the weighted evaluation over them."""

    def __init__(self, y, s, codes, n_groups, *, threshold, ece_bins, ece_strategy, metrics):
        self.n = len(y)
        self.G = n_groups
        so = np.argsort(s, kind="stable")
        terms = compute_row_terms(y, s)
        self.lg = build_layout(y, s, codes, n_groups, threshold=threshold, ece_bins=ece_bins,
                               ece_strategy=ece_strategy, score_order=so, terms=terms)
        self.lo = build_layout(y, s, np.zeros(self.n, dtype=np.int64), 1, threshold=threshold,
                               ece_bins=ece_bins, ece_strategy=ece_strategy, score_order=so,
                               terms=terms)
        self.calibration = "newton"
        inv = np.empty(self.n, dtype=np.int64)
        inv[self.lg.order] = np.arange(self.n)
        self.to_overall = inv[self.lo.order]
        self.bounds = np.array([sg.start for sg in self.lg.segments] + [self.n])
        self.seg_of_row = np.repeat(np.arange(n_groups), np.diff(self.bounds))
        self.need = {_KERNEL[m] for m in metrics if m in _KERNEL}
        self.cal_g: list[tuple[float, float]] | None = None
        self.cal_o: tuple[float, float] | None = None

    def set_calibration_start(self, cal_g, cal_o) -> None:
        """Warm starts (and one-step features) from the full-data calibration fits."""
        self.cal_g, self.cal_o = cal_g, cal_o
        for sg, (a, b) in zip(self.lg.segments, cal_g, strict=True):
            sg.set_calibration_start(a, b, overall=cal_o)
        self.lo.segments[0].set_calibration_start(*cal_o)

    @staticmethod
    def _to_metrics(st: dict) -> dict:
        out = rates_from_counts(st["tp"], st["fp"], st["fn"], st["tn"])
        for m, k in _KERNEL.items():
            if k in st:
                out[m] = st[k]
        return out

    def _start(self, cal, K):
        if cal is None:
            return None
        return np.full(K, cal[0]), np.full(K, cal[1])

    def _stats(self, seg, W, layout, need, cal):
        return segment_stats(seg, W, layout, need=need, cal_start=cal,
                             calibration=self.calibration, integer_weights=True)

    def groups(self, W: np.ndarray) -> tuple[dict, list[dict]]:
        """Per-group metrics ``(K, G)`` (and raw per-segment stats) for weights ``W`` in
        group-layout order."""
        K = W.shape[0]
        raw = []
        cal_keys = {"cal_slope", "cal_intercept"}
        # one weight row without warm starts (the point estimate) over several groups of at
        # most 50,000 rows (larger ones warm-start from a subsample in segment_stats): the
        # calibration fits of all groups at once (one bincount pass per Newton step)
        batched = (K == 1 and self.G > 1 and self.cal_g is None and bool(self.need & cal_keys)
                   and int(np.diff(self.bounds).max()) <= 50_000)
        need = self.need - cal_keys if batched else self.need
        for g, sg in enumerate(self.lg.segments):
            cal = None if self.cal_g is None else self._start(self.cal_g[g], K)
            raw.append(self._stats(sg, W[:, sg.start:sg.stop], self.lg, need, cal))
        if batched:
            segs = self.lg.segments
            w = W[0].astype(np.float64)
            ok_all = np.array([bool(st["pos"][0] > 0 and st["n"][0] - st["pos"][0] > 0)
                               for st in raw])
            a, b = segmented_logistic_fit(
                np.concatenate([sg.x for sg in segs]), np.concatenate([sg.y for sg in segs]),
                None if bool((w == 1).all()) else w, self.seg_of_row, self.G, fit=ok_all)
            for g, st in enumerate(raw):
                ok = (st["pos"] > 0) & (st["n"] - st["pos"] > 0)
                st["cal_intercept"] = np.where(ok, a[g], np.nan)
                st["cal_slope"] = np.where(ok, b[g], np.nan)
        # stack the raw statistics (K, G) first: one vectorised pass for the rates of all groups
        keys = [k for k in raw[0] if np.ndim(raw[0][k]) == 1]
        stacked = {k: np.stack([st[k] for st in raw], axis=1) for k in keys}
        return self._to_metrics(stacked), raw

    def overall(self, Wo: np.ndarray, raw: list[dict] | None = None) -> dict:
        """Overall metrics ``(K,)`` for weights ``Wo`` in overall-layout order.

        With the groups' ``raw`` stats, everything linear in the weights (confusion cells,
        Brier, log loss, uniform-bin ECE) is summed over groups and only the rank and
        calibration statistics are computed on the overall layout.
        """
        cal = self._start(self.cal_o, Wo.shape[0])
        need = set(self.need)
        lin = None
        if raw is not None:
            need -= {"brier", "log_loss"}
            if self.lo.ece_strategy == "uniform":
                need.discard("ece")
            if all("cal_lin_overall" in r for r in raw):
                lin = np.sum([r["cal_lin_overall"] for r in raw], axis=0)
                need -= {"cal_slope", "cal_intercept"}
        st = self._stats(self.lo.segments[0], Wo, self.lo, need, cal)
        if raw is not None:
            for k in ("n", "pos", "tp", "fp", "fn", "tn"):
                st[k] = np.sum([r[k] for r in raw], axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                for k in ("brier", "log_loss"):
                    if k in self.need:
                        st[k] = np.sum([r[k] * r["n"] for r in raw], axis=0) / st["n"]
                if lin is not None:
                    ok = (st["pos"] > 0) & (st["pos"] < st["n"])
                    a, b = one_step_solve(lin, self.cal_o)
                    st["cal_intercept"] = np.where(ok, a, np.nan)
                    st["cal_slope"] = np.where(ok, b, np.nan)
                if "ece" in self.need and "ece" not in need:
                    bins = np.sum([r["ece_bins"] for r in raw], axis=0)
                    st["ece"] = np.abs(bins).sum(axis=1) / st["n"]
        return self._to_metrics(st)

    def both(self, W: np.ndarray) -> tuple[dict, dict]:
        per, raw = self.groups(W)
        return per, self.overall(np.take(W, self.to_overall, axis=1), raw)



def _first_extreme(x: np.ndarray) -> int:
    """Index of the first group whose value equals the maximum up to rounding (1e-12 relative),
    so that groups tied in exact arithmetic are named the same whatever the row order."""
    top = np.nanmax(x)
    return int(np.flatnonzero(x >= top - 1e-12 * max(1.0, abs(top)))[0])

def _validate(y_true, y_score, threshold, groups, group_names, reference, cluster):
    """Check the data of one engine call (the options were validated in :class:`EngineOptions`)."""
    y = as_binary(y_true, name="y_true")
    s = as_scores(y_score, name="y_score")
    n = same_length(y, s)
    if not np.isfinite(threshold):
        raise FairfoundryError(f"threshold={threshold!r}: must be a finite number",
                               param="threshold")
    if isinstance(getattr(groups, "dtype", None), pd.CategoricalDtype):
        codes = pd.Categorical(groups)  # keeps the categories' order
    else:
        codes = np.asarray(groups)
    if np.shape(codes) != (n,):
        raise FairfoundryError(f"groups has shape {np.shape(codes)}, expected ({n},): one group "
                               "per row", hint="use intersect_groups(frame, columns) to build them",
                               param="groups")
    if group_names is None or not np.issubdtype(np.asarray(codes).dtype, np.integer):
        # labels (any dtype): encoded by the one group model
        codes, enc_names = encode_groups(codes, name="groups")
        if group_names is None:
            group_names = enc_names
        else:
            codes, _ = encode_groups(np.asarray(enc_names, dtype=object)[codes],
                                     categories=[str(g) for g in group_names], name="groups")
            if (codes < 0).any():
                raise FairfoundryError("groups has labels that are not in group_names",
                                       hint=f"group_names: {', '.join(map(str, group_names))}",
                                       param="groups")
    codes = np.asarray(codes)
    names = [str(g) for g in group_names]
    if len(set(names)) != len(names):
        raise FairfoundryError("group_names contains duplicates", param="group_names")
    if n and (codes.min() < 0 or codes.max() >= len(names)):
        raise FairfoundryError(f"group codes must be in 0..{len(names) - 1}", param="groups")
    if reference is not None and str(reference) not in names:
        raise FairfoundryError(f"reference={reference!r}: unknown reference group",
                               hint=did_you_mean(str(reference), names, what="groups"),
                               param="reference")
    if cluster is not None:
        if np.asarray(cluster).shape != (n,):
            raise FairfoundryError("cluster must have one value per row", param="cluster")
        missing = pd.isna(pd.Series(np.asarray(cluster))).to_numpy()
        if missing.any():
            raise FairfoundryError(f"cluster (e.g. patient id) is missing at row "
                                   f"{int(np.flatnonzero(missing)[0]) + 1}",
                                   hint="give every row its patient id", param="cluster")
    return y, s, codes.astype(np.int64), names


def _summaries(per: dict, ov: dict, metrics: list[str], ref: int, names: list[str],
               fixed: dict | None) -> tuple[dict, dict]:
    """All summaries ``(K,)`` from per-group ``(K, G)`` and overall ``(K,)`` arrays.

    ``fixed`` holds the vs-reference target group per metric chosen on the point estimate
    (``None`` on the point estimate itself, which chooses them). Returns (values, details).
    """
    vals, details = {}, {}
    choose = fixed is None
    fixed = {} if fixed is None else fixed
    for m in metrics:
        v, o = per[m], ov[m]
        vals[f"{m}_gap"] = gap(v)
        vals[f"{m}_ratio"] = ratio(v)
        vals[f"{m}_to_overall"] = to_overall(v, o)
        vals[f"{m}_worst_group"], widx = worst_group(v, direction=DIRECTION[m])
        if choose:
            r, t = vs_reference(v, reference=ref)
            fixed[m] = t
        else:
            t = fixed[m]
            r = vs_reference(v, reference=ref, target=t)[0] if t is not None else np.full(
                v.shape[0], np.nan)
        vals[f"{m}_vs_reference"] = r
        if choose:
            row = v[0]
            defined = ~np.isnan(row)
            if defined.any():
                hi = names[_first_extreme(row)]
                lo = names[_first_extreme(-row)]
                details[f"{m}_gap"] = f"{hi} - {lo}"
                details[f"{m}_ratio"] = f"{lo} / {hi}"
                dev = np.abs(row - o[0])
                if np.isfinite(dev).any():  # overall may be undefined while a group is not
                    details[f"{m}_to_overall"] = names[_first_extreme(dev)]
            details[f"{m}_worst_group"] = names[int(widx[0])] if widx[0] >= 0 else ""
            details[f"{m}_vs_reference"] = f"{names[t]} vs {names[ref]}" if t is not None else ""
    have = set(metrics)
    for name, spec in SUMMARIES.items():
        if set(spec.needs) <= have:
            vals[name] = np.asarray(spec.func(per, ov), dtype=np.float64).reshape(-1)
            details.setdefault(name, spec.doc)
    if choose:
        details["__fixed__"] = fixed
    return vals, details


def _summary_reason(name: str, metrics: list[str], per: dict, ref: int, names: list[str]) -> str:
    for m in sorted(metrics, key=len, reverse=True):
        for suffix in FAMILY:
            if name == f"{m}_{suffix}":
                row = per[m][0]
                k = int(np.sum(~np.isnan(row)))
                if suffix == "vs_reference":
                    if np.isnan(row[ref]):
                        return f"{m} is undefined for the reference group {names[ref]}"
                    return f"{m} is undefined for every other group"
                if k == 0:
                    return f"{m} is undefined for every group"
                if suffix == "ratio":
                    return f"largest group {m} is 0"
                return f"{m} is undefined"
    spec = SUMMARIES.get(name)
    needs = ", ".join(spec.needs) if spec else name
    return f"{needs} undefined for the groups involved"


def _chunks(total: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, total)) for a in range(0, total, size)]


def _run_chunks(func, chunks, n_jobs, progress):
    results = [None] * len(chunks)
    if n_jobs <= 1 or len(chunks) <= 1:
        for i, (a, b) in enumerate(chunks):
            results[i] = func(a, b)
            if progress is not None:
                progress(b - a)
        return results
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        futs = [pool.submit(func, a, b) for a, b in chunks]
        for i, fut in enumerate(futs):
            results[i] = fut.result()
            if progress is not None:
                progress(chunks[i][1] - chunks[i][0])
    return results


def evaluate_groups(
    y_true,
    y_score,
    *,
    threshold: float,
    groups,
    group_names: Sequence[str] | None = None,
    reference: str | None = None,
    metrics: list[str] | None = None,
    ece_bins: int = 10,
    ece_strategy: str = "uniform",
    n_bootstrap: int = 0,
    ci_method: str = "percentile",
    confidence: float = 0.95,
    cluster: np.ndarray | None = None,
    n_permutations: int = 0,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    n_jobs: int = 1,
    bca_blocks: int = 100,
    calibration_bootstrap: str = "auto",
    gap_ci: str = "pairwise",
    chunk_elements: int = 2**23,
    options: EngineOptions | None = None,
    degenerate_ci: str = "wilson",
) -> GroupResult:
    r"""Every per-group metric and fairness summary, with bootstrap CIs and permutation p-values.

    Predictions are :math:`\hat y = [s \ge t]` for the threshold ``t``. Per group and overall:
    ``n, positives, prevalence, auc, average_precision, accuracy, balanced_accuracy, tpr, fpr,
    tnr, fnr, ppv, npv, selection_rate, f1, ece, brier, log_loss, calibration_slope,
    calibration_intercept`` (see each public function for formula and source). Summaries: for
    each metric ``m``: ``m_gap`` (max - min), ``m_ratio`` (min / max), ``m_to_overall``
    (:math:`\max_g |m_g - m|`), ``m_vs_reference`` (signed :math:`m_g - m_{ref}` for the
    group furthest from the reference, chosen on the point estimate; the default reference
    is the largest group), ``m_worst_group``; plus fairlearn's ``demographic_parity_*``,
    ``equalized_odds_*``, ``equal_opportunity_difference``, ``predictive_parity_difference``,
    FairCLIP's ``es_auc``/``es_accuracy`` and MEDFAIR's ``equalized_odds_score``.

    Parameters
    ----------
    y_true : array (n,) of 0/1
    y_score : array (n,) of probabilities in [0, 1]
    threshold : float
        Decision threshold (chosen on another split; see ``fairfoundry.metrics`` thresholds).
    groups : array (n,)
        Group of each row: integer codes ``0..G-1`` with ``group_names`` (see
        :func:`intersect_groups`), or labels (strings, numbers, a Categorical), encoded by
        :func:`fairfoundry.groups.encode_groups` (missing values are the group ``unknown``).
    group_names : list of str, optional
        Name of each code; a name without rows gets NaN rows with reason "group is empty".
        With labels, fixes the groups and their order (labels must be among them).
    reference : str, optional
        Reference group for ``*_vs_reference`` (default: the largest group).
    metrics : list of str, optional
        Subset of per-group metrics (default: all); summaries follow.
    ece_bins, ece_strategy : int, {"uniform", "quantile"}
        ECE binning (as scikit-learn's ``calibration_curve``).
    n_bootstrap : int
        Bootstrap replicates (0: no CIs). Stratified by group; clustered when ``cluster``.
    ci_method : {"percentile", "bca"}
        BCa uses a delete-block jackknife over at most ``bca_blocks`` blocks of units.
    confidence : float
        CI level.
    cluster : array (n,), optional
        Cluster of each row (e.g. patient id): whole clusters are resampled.
    n_permutations : int
        Permutations of the group labels (of whole clusters when clustered) for p-values of
        gaps, ratios, differences and scores.
    seed : int
        Seed of all resampling; the same seed gives the same CIs and p-values.
    progress : callable, optional
        Called with the number of replicates just finished (bootstrap, then permutations);
        the increments sum to ``n_bootstrap + n_permutations``.
    n_jobs : int
        Threads over chunks of replicates (numpy releases the GIL).
    gap_ci : {"pairwise", "percentile"}
        CI of ``*_gap`` and of the gap-type differences (demographic parity, equal
        opportunity, predictive parity, equalized odds): ``"pairwise"`` (default) bounds the
        gap by Bonferroni-simultaneous percentile intervals of the signed pairwise group
        differences (see :func:`pairwise_gap_interval`; it reaches 0 when no two groups differ
        significantly); ``"percentile"`` uses the replicates of max - min directly (``ci_method``
        applies), which are biased upward and never cover 0.
    calibration_bootstrap : {"auto", "newton", "one_step"}
        How replicates refit the calibration slope/intercept: ``"newton"`` iterates to
        convergence (exact, the costliest part of a bootstrap); ``"one_step"`` takes one
        Newton step from the full-data fit (linear in the weights, nearly free; first-order
        equivalent, Andrews, Econometrica 2002); ``"auto"`` uses Newton when
        ``n * replicates <= 1e7``. Recorded in ``config``.
    chunk_elements : int
        Replicates per chunk are ``max(1, chunk_elements // n)``, bounding memory.
    options : EngineOptions, optional
        Already validated options (``metrics`` to ``chunk_elements``); when given, the
        individual keyword options are ignored. Callers that evaluate many times (one call per
        label and attribute) validate once and pass this.
    degenerate_ci : {"wilson", "clopper_pearson", "none"}
        Interval of a proportion (TPR, FPR, PPV, ...) whose bootstrap interval collapses to a
        point (a 0 % or 100 % rate, which no resample can change): the Wilson score interval
        (default) or the exact Clopper-Pearson interval on the metric's own denominator.
        The cells are listed in ``config["degenerate_ci_cells"]``.

    Per group (not overall) the result also has ``<m>_diff_to_overall`` (signed
    :math:`m_g - m`) and ``<m>_diff_to_median`` (:math:`m_g - \operatorname{median}_h m_h`,
    CheXclusion's convention for age) for ``auc, tpr, fpr, fnr, tnr, ppv, npv,
    selection_rate, accuracy, balanced_accuracy``, with CIs from the same replicates.

    Returns
    -------
    GroupResult

    Examples
    --------
    >>> import numpy as np
    >>> res = evaluate_groups([0, 1, 0, 1, 0, 1], [0.2, 0.8, 0.6, 0.7, 0.1, 0.4],
    ...                       threshold=0.5, groups=np.array([0, 0, 0, 1, 1, 1]),
    ...                       group_names=["a", "b"])
    >>> res.estimate("tpr", "b"), res.estimate("tpr_gap", None)
    (0.5, 0.5)
    """
    if options is None:
        options = EngineOptions(
            metrics=metrics, ece_bins=ece_bins, ece_strategy=ece_strategy,
            n_bootstrap=n_bootstrap, ci_method=ci_method, confidence=confidence,
            n_permutations=n_permutations, seed=seed, n_jobs=n_jobs, bca_blocks=bca_blocks,
            calibration_bootstrap=calibration_bootstrap, gap_ci=gap_ci,
            chunk_elements=chunk_elements, degenerate_ci=degenerate_ci)
    with _single_threaded_blas():
        return _evaluate_groups(y_true, y_score, threshold=threshold, groups=groups,
                                group_names=group_names, reference=reference, cluster=cluster,
                                progress=progress, opts=options)


def _single_threaded_blas():
    """BLAS on one thread while the engine runs: its products are small per call, we
    parallelise over replicate chunks ourselves, and multi-threaded OpenBLAS spin-waits badly
    on a busy machine (10x slower products were measured)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _evaluate_groups(y_true, y_score, *, threshold, groups, group_names, reference, cluster,
                     progress, opts: EngineOptions) -> GroupResult:
    """The engine, in named steps: validate; point estimates; bootstrap, jackknife (BCa) and
    permutation replicates; the per-group table; simultaneous gap intervals; the summary table."""
    y, s, codes, names = _validate(y_true, y_score, threshold, groups, group_names, reference,
                                   cluster)
    metrics, confidence = opts.metric_list, opts.confidence
    n_bootstrap, n_permutations, ci_method = opts.n_bootstrap, opts.n_permutations, opts.ci_method
    n = len(y)
    counts, present, pnames, dcodes = present_groups(codes, names)
    if reference is not None and counts[names.index(str(reference))] == 0:
        raise FairfoundryError(f"reference group {reference!r} has no rows")
    ref = (pnames.index(str(reference)) if reference is not None
           else int(np.argmax(counts[present])))

    eng = _Engine(y, s, dcodes, len(present), threshold=float(threshold), ece_bins=opts.ece_bins,
                  ece_strategy=opts.ece_strategy, metrics=metrics)
    per0, ov0 = eng.both(np.ones((1, n), dtype=np.uint8))
    calibration_bootstrap = _calibration_start(eng, per0, ov0, opts, n, len(present))
    sum0, details = _summaries(per0, ov0, metrics, ref, pnames, None)
    fixed = details.pop("__fixed__")

    plan = None
    chunk = max(1, int(opts.chunk_elements) // max(n, 1))
    if n_bootstrap > 0 or n_permutations > 0:
        cl = None
        if cluster is not None:
            cl = pd.factorize(pd.Series(np.asarray(cluster)))[0][eng.lg.order]
        plan = ResamplePlan(eng.bounds, cluster=cl, seed=opts.seed, row_order=eng.lg.order)

    reps_per: dict = {}
    reps_ov: dict = {}
    reps_sum: dict = {}
    if n_bootstrap > 0:
        reps_per, reps_ov = _bootstrap_replicates(eng, plan, n, n_bootstrap, chunk, opts.n_jobs, progress)
        reps_sum, _ = _summaries(reps_per, reps_ov, metrics, ref, pnames, fixed)
    jack_per: dict = {}
    jack_ov: dict = {}
    jack_sum: dict = {}
    if n_bootstrap > 0 and ci_method == "bca":
        jack_per, jack_ov = _jackknife_replicates(eng, plan, n, opts.bca_blocks, chunk, opts.n_jobs)
        jack_sum, _ = _summaries(jack_per, jack_ov, metrics, ref, pnames, fixed)
    null: dict = {}
    if n_permutations > 0:
        null_per = _permutation_null(eng, plan, n, len(present), n_permutations, chunk, opts.n_jobs,
                                     progress)
        null_ov = {m: np.repeat(ov0[m], n_permutations) for m in ov0}
        null, _ = _summaries(null_per, null_ov, metrics, ref, pnames, fixed)

    per_group, full_reps, fallbacks = _per_group_table(
        metrics, per0, ov0, reps_per, reps_ov, jack_per, jack_ov, names, pnames, present, counts,
        opts)
    gap_cis = (_gap_intervals(metrics, reps_per, per0, sum0, confidence)
               if n_bootstrap > 0 and opts.gap_ci == "pairwise" else {})
    summary = _summary_table(sum0, details, gap_cis, reps_sum, jack_sum, null, full_reps, metrics,
                             per0, ref, pnames, opts)
    config = {
        "threshold": float(threshold), "reference": pnames[ref], "metrics": metrics,
        "ece_bins": int(opts.ece_bins), "ece_strategy": opts.ece_strategy,
        "n_bootstrap": int(n_bootstrap), "ci_method": ci_method, "gap_ci": opts.gap_ci,
        "confidence": float(confidence), "clustered": cluster is not None,
        "cluster_stratified": bool(plan.stratified) if plan is not None else None,
        "n_permutations": int(n_permutations), "seed": int(opts.seed),
        "permutation_scheme": (plan.permutation_scheme if plan is not None and n_permutations
                               else None),
        "unexchangeable_clusters": (getattr(plan, "unexchangeable_clusters", None)
                                    if plan is not None and n_permutations else None),
        "bca_blocks": int(opts.bca_blocks) if ci_method == "bca" else None,
        "calibration_bootstrap": calibration_bootstrap if "cal_slope" in eng.need else None,
        "groups": list(names), "n": int(n),
        "degenerate_ci": opts.degenerate_ci,
        "degenerate_ci_cells": [f"{g}: {m}" for g, m in fallbacks],
    }
    return GroupResult(per_group=per_group, summary=summary, replicates=full_reps, null=null,
                       plan=plan, layout_order=eng.lg.order, config=config)


def _calibration_start(eng: _Engine, per0: dict, ov0: dict, opts: EngineOptions, n: int,
                       n_groups: int) -> str:
    """Warm-start the replicates' calibration fits at the point estimates; the refit method
    (``auto``: full Newton below 1e7 row-replicates, else one step)."""
    n_reps = opts.n_bootstrap + opts.n_permutations * n_groups + (
        opts.bca_blocks if (opts.ci_method == "bca" and opts.n_bootstrap > 0) else 0)
    method = opts.calibration_bootstrap
    if method == "auto":
        method = "newton" if n * n_reps <= 10_000_000 else "one_step"
    if "cal_slope" in eng.need and n_reps > 0:
        eng.set_calibration_start(
            [(per0["calibration_intercept"][0, g], per0["calibration_slope"][0, g])
             for g in range(n_groups)],
            (ov0["calibration_intercept"][0], ov0["calibration_slope"][0]))
        eng.calibration = method
    return method


def _stack(parts: list) -> tuple[dict, dict]:
    """Concatenate chunks of ``(per_group, overall)`` replicate dicts."""
    return ({m: np.concatenate([p[0][m] for p in parts]) for m in parts[0][0]},
            {m: np.concatenate([p[1][m] for p in parts]) for m in parts[0][1]})


def _bootstrap_replicates(eng: _Engine, plan, n: int, n_bootstrap: int, chunk: int, n_jobs: int,
                          progress) -> tuple[dict, dict]:
    """Per-group and overall metrics of ``n_bootstrap`` resamples of ``plan``."""

    def boot_chunk(a, b):
        # counts as bytes (a count above 255 is practically impossible; checked)
        W = np.empty((b - a, n), dtype=np.uint8)
        for k in range(b - a):
            if not plan.weights(a + k, out=W[k]):
                W = W.astype(np.float64)
                for j in range(b - a):
                    plan.weights(a + j, out=W[j])
                break
        return eng.both(W)

    return _stack(_run_chunks(boot_chunk, _chunks(n_bootstrap, chunk), n_jobs, progress))


def _jackknife_replicates(eng: _Engine, plan, n: int, bca_blocks: int, chunk: int,
                          n_jobs: int) -> tuple[dict, dict]:
    """Delete-a-block jackknife replicates (the BCa acceleration)."""
    blocks = plan.jackknife_blocks(bca_blocks)

    def jack_chunk(a, b):
        W = np.ones((b - a, n), dtype=np.uint8)
        for k in range(b - a):
            W[k, blocks[a + k]] = 0.0
        return eng.both(W)

    return _stack(_run_chunks(jack_chunk, _chunks(len(blocks), chunk), n_jobs, None))


def _permutation_null(eng: _Engine, plan, n: int, n_groups: int, n_permutations: int, chunk: int,
                      n_jobs: int, progress) -> dict:
    """Per-group metrics under ``n_permutations`` permutations of the group labels."""
    pchunk = max(1, chunk // max(n_groups, 1))

    def perm_chunk(a, b):
        W = np.zeros(((b - a) * n_groups, n), dtype=np.uint8)
        for k in range(b - a):
            pg = plan.permuted_groups(a + k, eng.seg_of_row)[eng.to_overall]
            W[k * n_groups + pg, np.arange(n)] = 1
        st = eng._to_metrics(eng._stats(eng.lo.segments[0], W, eng.lo, eng.need,
                                        eng._start(eng.cal_o, W.shape[0])))
        return {m: v.reshape(b - a, n_groups) for m, v in st.items()}

    parts = _run_chunks(perm_chunk, _chunks(n_permutations, pchunk), n_jobs, progress)
    return {m: np.concatenate([p[m] for p in parts]) for m in parts[0]}


def _per_group_table(metrics, per0, ov0, reps_per, reps_ov, jack_per, jack_ov, names, pnames,
                     present, counts, opts: EngineOptions):
    """The long per-group table (estimate, CI, n, reason per group x metric, the empty groups
    and the ``_diff_to_*`` rows), the full replicate matrices, and the cells whose collapsed
    bootstrap interval was replaced by a binomial one."""
    n_bootstrap, confidence, degenerate_ci = opts.n_bootstrap, opts.confidence, opts.degenerate_ci
    rows = []
    full_reps = {}
    fallbacks: list[tuple[str, str]] = []
    # each group's counts once (denominators of the reasons and of the degenerate intervals)
    cell_counts = [_counts(per0, j) for j in range(len(present))]
    cell_counts.append(_counts({k: v[None, :] for k, v in ov0.items()}, 0))
    cell_n = [int(round(float(c["n"]))) for c in cell_counts]
    for m in metrics:
        est = np.concatenate([per0[m][0], ov0[m]])
        lo = np.full(len(est), np.nan)
        hi = np.full(len(est), np.nan)
        if n_bootstrap > 0:
            R = np.column_stack([reps_per[m], reps_ov[m]])
            if opts.ci_method == "bca":
                J = np.column_stack([jack_per[m], jack_ov[m]])
                for j in range(len(est)):
                    lo[j], hi[j] = bca_interval(R[:, j], est[j], J[:, j], confidence=confidence)
            else:
                lo, hi = percentile_interval(R, confidence=confidence)
            Rf = np.full((n_bootstrap, len(names) + 1), np.nan)
            Rf[:, present] = reps_per[m]
            Rf[:, -1] = reps_ov[m]
            full_reps[m] = Rf
        finite_lo = np.isfinite(lo)
        for j, gname in enumerate([*pnames, OVERALL]):
            cnt = cell_counts[j]
            reason = ""
            if est[j] != est[j]:  # NaN
                reason = nan_reason(m, **cnt) or (
                    "calibration fit did not converge (separation)"
                    if m.startswith("calibration") else "undefined")
            elif (n_bootstrap > 0 and degenerate_ci != "none" and m in PROPORTIONS
                  and finite_lo[j] and hi[j] - lo[j] <= 1e-12 and cnt[PROPORTIONS[m]] > 0):
                # a bootstrap of a 0 % / 100 % rate cannot vary: use a binomial interval
                lo[j], hi[j] = proportion_interval(est[j] * cnt[PROPORTIONS[m]],
                                                   cnt[PROPORTIONS[m]], confidence=confidence,
                                                   method=degenerate_ci)
                fallbacks.append((gname, m))
            rows.append((gname, m, est[j], lo[j], hi[j], cell_n[j], reason))
        for g in np.flatnonzero(counts == 0):
            if m in ("n", "positives"):
                rows.append((names[g], m, 0.0, np.nan, np.nan, 0, ""))
            else:
                rows.append((names[g], m, np.nan, np.nan, np.nan, 0, "group is empty"))
    diff_names = _diff_rows(rows, full_reps, metrics, per0, ov0, reps_per, reps_ov, pnames,
                            names, present, counts, n_bootstrap, confidence)
    per_group = pd.DataFrame(rows, columns=["group", "metric", "estimate", "ci_low", "ci_high",
                                            "n", "reason"])
    order = {g: i for i, g in enumerate([*names, OVERALL])}
    morder = {m: i for i, m in enumerate([*metrics, *diff_names])}
    per_group = per_group.sort_values(
        ["metric", "group"], key=lambda c: c.map(morder) if c.name == "metric" else c.map(order),
        kind="stable").reset_index(drop=True)
    return per_group, full_reps, fallbacks


def _gap_intervals(metrics, reps_per, per0, sum0, confidence: float) -> dict:
    """Gap intervals from simultaneous pairwise differences (they cover 0 for a fair model)."""
    gap_cis: dict = {}
    for m in metrics:
        gap_cis[f"{m}_gap"] = pairwise_gap_interval(reps_per[m], per0[m][0], confidence=confidence)
    for name, (combine, comps) in _GAP_SUMMARIES.items():
        if name in sum0 and all(f"{p}_gap" in gap_cis for p in comps):
            # a combination of k gaps needs all k intervals to hold together:
            # Bonferroni over the components (alpha / k each)
            level = 1.0 - (1.0 - confidence) / len(comps)
            bounds = np.array([gap_cis[f"{p}_gap"] if len(comps) == 1 else
                               pairwise_gap_interval(reps_per[p], per0[p][0], confidence=level)
                               for p in comps])
            gap_cis[name] = combine(bounds)
    return gap_cis


def _summary_table(sum0, details, gap_cis, reps_sum, jack_sum, null, full_reps, metrics, per0,
                   ref, pnames, opts: EngineOptions) -> pd.DataFrame:
    """One row per summary (gap, ratio, worst group, ...): estimate, CI, permutation p-value,
    reason and detail; adds the summaries' replicates to ``full_reps``."""
    confidence = opts.confidence
    srows = []
    for name, v in sum0.items():
        est = float(v[0])
        lo = hi = np.nan
        if opts.n_bootstrap > 0:
            if opts.gap_ci == "pairwise" and name in gap_cis:
                lo, hi = gap_cis[name]
            elif opts.ci_method == "bca":
                lo, hi = bca_interval(reps_sum[name], est, jack_sum[name], confidence=confidence)
            else:
                lo, hi = (float(x[0]) for x in percentile_interval(reps_sum[name][:, None],
                                                                  confidence=confidence))
            full_reps[name] = reps_sum[name]
        p = np.nan
        if opts.n_permutations > 0:
            ext = _extreme(name, metrics)
            if ext is not None:
                p = permutation_pvalue(est, null[name], extreme=ext)
        reason = "" if np.isfinite(est) else _summary_reason(name, metrics, per0, ref, pnames)
        srows.append((name, est, lo, hi, p, reason, details.get(name, "")))
    return pd.DataFrame(srows, columns=["metric", "estimate", "ci_low", "ci_high", "p_value",
                                        "reason", "detail"])


#: proportion metrics -> the count (of :func:`_counts`) that is their denominator
PROPORTIONS = {"tpr": "pos", "fnr": "pos", "fpr": "neg", "tnr": "neg", "ppv": "pred_pos",
               "npv": "pred_neg", "prevalence": "n", "selection_rate": "n", "accuracy": "n"}
#: metrics that get per-group ``<m>_diff_to_overall`` and ``<m>_diff_to_median`` rows
DIFF_METRICS = ("auc", "tpr", "fpr", "fnr", "tnr", "ppv", "npv", "selection_rate", "accuracy",
                "balanced_accuracy")


def _diff_rows(rows, full_reps, metrics, per0, ov0, reps_per, reps_ov, pnames, names, present,
               counts, n_bootstrap, confidence) -> list[str]:
    r"""Append per-group signed differences to overall, :math:`m_g - m`, and to the median
    group, :math:`m_g - \operatorname{median}_h m_h` (CheXclusion's age convention), with
    percentile CIs from the same replicates. Returns the new metric names."""
    made = []
    n_int = ([int(round(float(v))) for v in per0["n"][0]] if "n" in per0
             else [0] * len(pnames))
    for m in metrics:
        if m not in DIFF_METRICS:
            continue
        v0 = per0[m][0]
        ctx = np.errstate(all="ignore")
        with ctx:
            defined = np.isfinite(v0).any()
            med0 = float(np.nanmedian(v0)) if defined else np.nan
        for kind, centre, crep in (
                ("overall", float(ov0[m][0]), (reps_ov[m] if n_bootstrap > 0 else None)),
                ("median", med0, None)):
            name = f"{m}_diff_to_{kind}"
            made.append(name)
            lo = hi = np.full(len(pnames), np.nan)
            if n_bootstrap > 0:
                R = reps_per[m]
                if crep is None:
                    with np.errstate(all="ignore"), _quiet_nan():
                        crep = np.nanmedian(R, axis=1)
                D = R - crep[:, None]
                lo, hi = percentile_interval(D, confidence=confidence)
                Rf = np.full((n_bootstrap, len(names) + 1), np.nan)
                Rf[:, present] = D
                full_reps[name] = Rf
            ests = v0 - centre
            undefined = (f"{m} is undefined for this group",
                         f"{m} is undefined {'overall' if kind == 'overall' else 'for every group'}")
            for j, gname in enumerate(pnames):
                est = ests[j]
                reason = "" if est == est else undefined[0 if v0[j] != v0[j] else 1]
                rows.append((gname, name, est, lo[j], hi[j], n_int[j], reason))
            for g in np.flatnonzero(counts == 0):
                rows.append((names[g], name, np.nan, np.nan, np.nan, 0, "group is empty"))
    return made


def _quiet_nan():
    import warnings

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore", RuntimeWarning)

    class _C:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            ctx.__exit__(*a)

    return _C()


def _counts(per: dict, g: int) -> dict:
    n = per["n"][0, g]
    pos = per["positives"][0, g]
    sel = per["selection_rate"][0, g]
    pred_pos = sel * n if np.isfinite(sel) else 0.0
    return {"n": n, "pos": pos, "neg": n - pos, "pred_pos": pred_pos, "pred_neg": n - pred_pos}


def _extreme(name: str, metrics: list[str]) -> str | None:
    if name in SUMMARIES:
        return SUMMARIES[name].extreme
    for m in metrics:
        for suffix, ext in FAMILY.items():
            if name == f"{m}_{suffix}":
                return ext
    return None


def underdiagnosis_by_group(no_finding_true, no_finding_score, *, threshold: float,
                            groups: np.ndarray, group_names: Sequence[str],
                            **kwargs) -> GroupResult:
    r"""Underdiagnosis rate by group with bootstrap CIs (same machinery as
    :func:`evaluate_groups`).

    Among truly diseased patients (true "No Finding" = 0) the share predicted "No Finding"
    (score >= ``threshold``): :math:`UR_g = P(\hat y_{NF} = 1 \mid y_{NF} = 0, A = g)`.
    Source: Seyyed-Kalantari et al., Nature Medicine 2021. The result has per-group metrics
    ``n``, ``positives`` (rows with no finding) and ``underdiagnosis_rate`` and summaries
    ``underdiagnosis_rate_gap``, ``_ratio``,
    ``_to_overall``, ``_vs_reference``, ``_worst_group``. Keyword arguments go to
    :func:`evaluate_groups` (``n_bootstrap``, ``cluster``, ``seed``, ``reference``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> r = underdiagnosis_by_group([0, 0, 1, 0, 0], [0.9, 0.1, 0.8, 0.2, 0.3], threshold=0.5,
    ...                             groups=np.array([0, 0, 0, 1, 1]), group_names=["a", "b"])
    >>> r.estimate("underdiagnosis_rate", "a"), r.estimate("underdiagnosis_rate", "b")
    (0.5, 0.0)
    """
    kwargs.pop("metrics", None)
    if kwargs.get("options") is not None:
        import dataclasses

        kwargs["options"] = dataclasses.replace(kwargs["options"], metrics=("n", "positives", "fpr"))
    res = evaluate_groups(no_finding_true, no_finding_score, threshold=threshold, groups=groups,
                          group_names=group_names, metrics=["n", "positives", "fpr"],
                          **kwargs)

    def rename(s: str) -> str:
        return "underdiagnosis_rate" + s[3:] if s.startswith("fpr") else s

    res.per_group["metric"] = res.per_group["metric"].map(rename)
    res.per_group["reason"] = res.per_group["reason"].replace(
        "group has no negatives", "group has no diseased patients (no finding = 0)")
    res.summary["metric"] = res.summary["metric"].map(rename)
    res.replicates = {rename(k): v for k, v in res.replicates.items()}
    res.null = {rename(k): v for k, v in res.null.items()}
    res.config["metrics"] = ["n", "positives", "underdiagnosis_rate"]
    return res
