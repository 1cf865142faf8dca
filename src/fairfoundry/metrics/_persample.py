r"""Per-sample values averaged per group, with the engine's bootstrap replicates, gaps and tests.

:func:`evaluate_groups` handles binary classifiers. Many fairness questions are about a value
that each sample has on its own: a Dice score per image, a 0/1 "this report hallucinates" flag,
a count of hallucinated findings. Their per-group estimate is the group mean

.. math:: \bar v_g = \frac{\sum_{i \in g} w_i v_i}{\sum_{i \in g} w_i}

and :func:`evaluate_group_means` computes it for every group and overall, with the same
resampling machinery as the engine (:class:`~fairfoundry.metrics.ResamplePlan`: stratified by
group, clustered by patient; percentile intervals; Bonferroni-simultaneous pairwise intervals
for gaps; permutation p-values), so the tables have the engine's columns and meaning. A NaN
value means "undefined for this sample" (e.g. HD95 when a mask is empty; a per-finding
hallucination flag when the finding is present in the reference): it is left out of that
metric's means only.

Layer 0: numpy / pandas only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._errors import FairfoundryError
from ._bootstrap import (
    ResamplePlan,
    pairwise_gap_interval,
    percentile_interval,
    permutation_pvalue,
)
from ._checks import present_groups
from ._engine import OVERALL, GroupResult
from ._summary import gap, ratio, to_overall, vs_reference, worst_group

__all__ = ["evaluate_group_means"]


def _means(W: np.ndarray, V0: np.ndarray, ok: np.ndarray, bounds: np.ndarray):
    """Per-group ``(K, G, M)`` and overall ``(K, M)`` weighted means; weights ``W (K, n)``."""
    G = len(bounds) - 1
    K, M = W.shape[0], V0.shape[1]
    num = np.empty((K, G, M))
    den = np.empty((K, G, M))
    for g in range(G):
        a, b = bounds[g], bounds[g + 1]
        w = W[:, a:b].astype(np.float64)
        num[:, g] = w @ V0[a:b]
        den[:, g] = w @ ok[a:b]
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        tot = den.sum(axis=1)
        ov = np.where(tot > 0, num.sum(axis=1) / np.where(tot > 0, tot, 1.0), np.nan)
    return per, ov, den


def _summaries(per: np.ndarray, ov: np.ndarray, names: Sequence[str], directions, ref: int,
               scores: Mapping, fixed: dict | None):
    """Gap, ratio, to_overall, vs_reference, worst_group (+ named scores) per metric."""
    out: dict[str, np.ndarray] = {}
    choose = fixed is None
    fixed = {} if fixed is None else fixed
    for j, m in enumerate(names):
        v, o = per[:, :, j], ov[:, j]
        out[f"{m}_gap"] = np.asarray(gap(v))
        out[f"{m}_ratio"] = np.asarray(ratio(v))
        out[f"{m}_to_overall"] = np.asarray(to_overall(v, o))
        out[f"{m}_worst_group"] = worst_group(v, direction=directions[m])[0]
        if choose:
            r, t = vs_reference(v, reference=ref)
            fixed[m] = t
        else:
            t = fixed[m]
            r = (vs_reference(v, reference=ref, target=t)[0] if t is not None
                 else np.full(v.shape[0], np.nan))
        out[f"{m}_vs_reference"] = np.asarray(r)
    for sname, (metric, func) in scores.items():
        j = list(names).index(metric)
        out[sname] = np.asarray(func(per[:, :, j], ov[:, j]), dtype=np.float64).reshape(-1)
    return out, fixed


_EXTREME = {"gap": "high", "ratio": "low", "to_overall": "high", "vs_reference": "abs"}


def evaluate_group_means(
    values,
    *,
    groups: np.ndarray,
    group_names: Sequence[str],
    metric_names: Sequence[str] | None = None,
    directions: Mapping[str, object] | None = None,
    scores: Mapping[str, tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]]
    | None = None,
    score_extremes: Mapping[str, str] | None = None,
    cluster: np.ndarray | None = None,
    reference: str | None = None,
    n_bootstrap: int = 0,
    n_permutations: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> GroupResult:
    r"""Group means of per-sample values, with clustered bootstrap CIs, gaps and permutation tests.

    For each metric (column of ``values``) and group :math:`g`, the estimate is the mean
    :math:`\bar v_g` of the group's defined (non-NaN) values; overall is the mean over all
    rows. Summaries per metric ``m`` are those of :func:`evaluate_groups`: ``m_gap``
    (:math:`\max_g \bar v_g - \min_g \bar v_g`), ``m_ratio`` (min / max), ``m_to_overall``,
    ``m_vs_reference`` and ``m_worst_group``, plus any named ``scores``.

    CIs are percentile intervals over ``n_bootstrap`` replicates drawn by
    :class:`ResamplePlan` (stratified by group; whole clusters when ``cluster`` is given); the
    gap's interval is :func:`pairwise_gap_interval` (it reaches 0 when no two groups differ).
    P-values come from ``n_permutations`` permutations of the group labels (of whole clusters
    when every cluster lies in one group), :func:`permutation_pvalue`.

    Source: the (cluster) bootstrap of a mean, Efron & Tibshirani 1993, ch. 6 and 13 (Davison &
    Hinkley 1997, sec. 3.8 for clusters), through the engine's :class:`ResamplePlan`.

    Parameters
    ----------
    values : array (n,) or (n, M) of float
        Per-sample values; NaN = undefined for that sample (left out of that metric).
    groups : int array (n,)
        Group code ``0..G-1`` of each row (from :func:`intersect_groups`).
    group_names : list of str
        Name of each code.
    metric_names : list of str, optional
        Name of each column (default ``value`` / ``value_0, value_1, ...``).
    directions : dict, optional
        ``metric -> 1`` (higher is better), ``-1`` (lower is better) or ``0``, for
        ``*_worst_group`` (default ``1``).
    scores : dict, optional
        ``name -> (metric, func)``: extra summaries ``func(per_group (K, G), overall (K,))
        -> (K,)`` of one metric (e.g. the two ES-Dice definitions); they get bootstrap
        percentile CIs and, with ``score_extremes[name]`` (``"high"``/``"low"``), p-values.
    cluster : array (n,), optional
        Cluster of each row (patient id): whole clusters are resampled and permuted.
    reference : str, optional
        Reference group of ``*_vs_reference`` (default: the largest group).
    n_bootstrap, n_permutations, confidence, seed
        As in :func:`evaluate_groups`.

    Returns
    -------
    GroupResult
        ``per_group`` (``group, metric, estimate, ci_low, ci_high, n, reason``; ``n`` counts
        the rows where the metric is defined), ``summary`` (``metric, estimate, ci_low,
        ci_high, p_value, reason, detail``), ``replicates`` and ``null`` as the engine's.

    Examples
    --------
    >>> import numpy as np
    >>> r = evaluate_group_means([1.0, 0.0, 0.0, 0.0], groups=np.array([0, 0, 1, 1]),
    ...                          group_names=["a", "b"], metric_names=["hallucination"])
    >>> r.estimate("hallucination", "a"), r.estimate("hallucination_gap", None)
    (0.5, 0.5)
    """
    V = np.asarray(values, dtype=np.float64)
    if V.ndim == 1:
        V = V[:, None]
    if V.ndim != 2:
        raise FairfoundryError(f"values must be (n,) or (n, M), got shape {V.shape}")
    n, M = V.shape
    if n == 0:
        raise FairfoundryError("values are empty")
    if np.isinf(V).any():
        row = int(np.flatnonzero(np.isinf(V).any(axis=1))[0])
        raise FairfoundryError(f"values must be finite or NaN; row {row} is infinite")
    names = list(metric_names) if metric_names is not None else (
        ["value"] if M == 1 else [f"value_{j}" for j in range(M)])
    if len(names) != M or len(set(names)) != M:
        raise FairfoundryError(f"metric_names must be {M} distinct names, got {names}")
    gnames = [str(g) for g in group_names]
    codes = np.asarray(groups)
    if codes.shape != (n,) or not np.issubdtype(codes.dtype, np.integer):
        raise FairfoundryError("groups must be integer codes 0..G-1, one per row",
                               hint="use intersect_groups(frame, columns) to build them")
    if codes.min() < 0 or codes.max() >= len(gnames):
        raise FairfoundryError(f"group codes must be in 0..{len(gnames) - 1}")
    if not 0 < confidence < 1:
        raise FairfoundryError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_bootstrap < 0 or n_permutations < 0:
        raise FairfoundryError("n_bootstrap and n_permutations must be >= 0")
    directions = {m: 1 for m in names} | dict(directions or {})
    scores = dict(scores or {})
    score_extremes = dict(score_extremes or {})
    for sname, (metric, _) in scores.items():
        if metric not in names:
            raise FairfoundryError(f"score {sname!r} needs unknown metric {metric!r}")

    counts, present, pnames, dcodes = present_groups(codes, gnames)
    if reference is not None:
        if str(reference) not in pnames:
            raise FairfoundryError(f"unknown or empty reference group {reference!r}")
        ref = pnames.index(str(reference))
    else:
        ref = int(np.argmax(counts[present]))

    order = np.argsort(dcodes, kind="stable")
    bounds = np.searchsorted(dcodes[order], np.arange(len(present) + 1))
    ok = np.isfinite(V[order]).astype(np.float64)
    V0 = np.where(ok > 0, V[order], 0.0)
    per0, ov0, den0 = _means(np.ones((1, n)), V0, ok, bounds)
    sum0, fixed = _summaries(per0, ov0, names, directions, ref, scores, None)

    plan = None
    if n_bootstrap > 0 or n_permutations > 0:
        cl = None
        if cluster is not None:
            c = pd.Series(np.asarray(cluster))
            if len(c) != n:
                raise FairfoundryError("cluster must have one value per row")
            if c.isna().any():
                raise FairfoundryError(f"cluster (e.g. patient id) is missing at row "
                                       f"{int(np.flatnonzero(c.isna().to_numpy())[0])}")
            cl = pd.factorize(c)[0][order]
        plan = ResamplePlan(bounds, cluster=cl, seed=seed)

    chunk = max(1, 2**22 // n)
    reps_per = reps_ov = None
    reps_sum: dict = {}
    if n_bootstrap > 0:
        parts_p, parts_o = [], []
        for a in range(0, n_bootstrap, chunk):
            b = min(a + chunk, n_bootstrap)
            W = np.empty((b - a, n), dtype=np.float64)
            for k in range(b - a):
                plan.weights(a + k, out=W[k])
            p, o, _ = _means(W, V0, ok, bounds)
            parts_p.append(p)
            parts_o.append(o)
        reps_per, reps_ov = np.concatenate(parts_p), np.concatenate(parts_o)
        reps_sum, _ = _summaries(reps_per, reps_ov, names, directions, ref, scores, fixed)

    null: dict = {}
    if n_permutations > 0:
        seg = np.repeat(np.arange(len(present)), np.diff(bounds))
        G = len(present)
        nulls = []
        for p in range(n_permutations):
            pg = plan.permuted_groups(p, seg)
            num = np.stack([np.bincount(pg, weights=V0[:, j], minlength=G)
                            for j in range(M)], axis=1)
            den = np.stack([np.bincount(pg, weights=ok[:, j], minlength=G)
                            for j in range(M)], axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                nulls.append(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan))
        null, _ = _summaries(np.stack(nulls), np.repeat(ov0, n_permutations, axis=0), names,
                             directions, ref, scores, fixed)

    rows = []
    replicates = {}
    for j, m in enumerate(names):
        est = np.concatenate([per0[0, :, j], ov0[:, j]])
        nn = np.concatenate([den0[0, :, j], den0[0, :, j].sum(keepdims=True)])
        lo = hi = np.full(len(est), np.nan)
        if reps_per is not None:
            R = np.column_stack([reps_per[:, :, j], reps_ov[:, j]])
            lo, hi = percentile_interval(R, confidence=confidence)
            full = np.full((n_bootstrap, len(gnames) + 1), np.nan)
            full[:, present] = reps_per[:, :, j]
            full[:, -1] = reps_ov[:, j]
            replicates[m] = full
        for k, gname in enumerate([*pnames, OVERALL]):
            reason = "" if np.isfinite(est[k]) else "no row of the group defines this value"
            rows.append((gname, m, est[k], lo[k], hi[k], int(round(nn[k])), reason))
        for g in np.flatnonzero(counts == 0):
            rows.append((gnames[g], m, np.nan, np.nan, np.nan, 0, "group is empty"))
    per_group = pd.DataFrame(rows, columns=["group", "metric", "estimate", "ci_low", "ci_high",
                                            "n", "reason"])

    srows = []
    for sname, v in sum0.items():
        est = float(v[0])
        lo = hi = np.nan
        metric, suffix = _split(sname, names, scores)
        if reps_per is not None:
            if suffix == "gap":
                j = names.index(metric)
                lo, hi = pairwise_gap_interval(reps_per[:, :, j], per0[0, :, j],
                                               confidence=confidence)
            else:
                lo, hi = (float(x[0]) for x in percentile_interval(reps_sum[sname][:, None],
                                                                  confidence=confidence))
            replicates[sname] = reps_sum[sname]
        p = np.nan
        ext = _EXTREME.get(suffix) if suffix else score_extremes.get(sname)
        if null and ext is not None:
            p = permutation_pvalue(est, null[sname], extreme=ext)
        reason = "" if np.isfinite(est) else _reason(metric, suffix, per0, names)
        srows.append((sname, est, lo, hi, p, reason, _detail(sname, metric, suffix, per0, ov0,
                                                            names, pnames, ref, fixed)))
    summary = pd.DataFrame(srows, columns=["metric", "estimate", "ci_low", "ci_high",
                                           "p_value", "reason", "detail"])
    config = {"metrics": names, "n_bootstrap": int(n_bootstrap), "ci_method": "percentile",
              "gap_ci": "pairwise", "confidence": float(confidence),
              "clustered": cluster is not None,
              "cluster_stratified": bool(plan.stratified) if plan is not None else None,
              "n_permutations": int(n_permutations), "seed": int(seed),
              "reference": pnames[ref], "groups": gnames, "n": int(n)}
    return GroupResult(per_group=per_group, summary=summary, replicates=replicates, null=null,
                       plan=plan, layout_order=order, config=config)


def _split(sname: str, names: Sequence[str], scores: Mapping) -> tuple[str, str]:
    if sname in scores:
        return scores[sname][0], ""
    for m in sorted(names, key=len, reverse=True):
        for suffix in ("gap", "ratio", "to_overall", "vs_reference", "worst_group"):
            if sname == f"{m}_{suffix}":
                return m, suffix
    return sname, ""


def _reason(metric: str, suffix: str, per0: np.ndarray, names: Sequence[str]) -> str:
    row = per0[0, :, list(names).index(metric)]
    if not np.isfinite(row).any():
        return f"{metric} is undefined for every group"
    if suffix == "ratio":
        return f"largest group {metric} is 0"
    return f"{metric} is undefined for the groups involved"


def _detail(sname, metric, suffix, per0, ov0, names, pnames, ref, fixed) -> str:
    row = per0[0, :, list(names).index(metric)]
    if not np.isfinite(row).any():
        return ""
    if suffix in ("gap", "ratio") and np.nanmax(row) == np.nanmin(row):
        return "all groups equal"
    hi, lo = pnames[int(np.nanargmax(row))], pnames[int(np.nanargmin(row))]
    if suffix == "gap":
        return f"{hi} - {lo}"
    if suffix == "ratio":
        return f"{lo} / {hi}"
    if suffix == "vs_reference":
        t = fixed.get(metric)
        return f"{pnames[t]} vs {pnames[ref]}" if t is not None else ""
    return ""
