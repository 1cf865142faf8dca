r"""Evidence-based findings: which group differences a report may state as headlines.

A *finding* is a difference between two groups of one attribute in one proportion metric (TPR,
FPR, PPV, underdiagnosis rate) of one label. It becomes a headline only when

1. both groups have at least ``min_events`` of the metric's own events (the denominator of the
   rate: positives for TPR, negatives for FPR, predicted positives for PPV, patients with a
   finding for the underdiagnosis rate); groups below are listed as "too few to judge";
2. its family-wise adjusted p-value is below ``1 - confidence``: the family is **every**
   pairwise comparison the report could state (all labels, attributes, headline metrics and
   pairs of eligible groups), adjusted by the Westfall-Young max-T permutation method
   (:func:`permutation_maxt`; whole patients are permuted when the data are clustered), or by
   Holm's method when no permutations are run; and
3. its confidence interval (bootstrap percentile interval of the difference, clustered when
   asked) excludes 0.

Headlines are ranked by the adjusted p-value, then by the CI bound nearest 0.

The statistic of a pair is a two-proportion score statistic with a cluster-robust variance at
the pooled proportion (never below the binomial one). Normal p-values of such statistics are
anti-conservative far in the tail when a few patients have many images (a null simulation on
the real CheXNet predictions found a "significant" headline in 10-15 % of random-attribute data
sets with Holm on normal p-values), which is why the family-wise adjustment comes from the
permutation distribution of the maximum statistic (benchmarks/sim_headline_null.py).

Sources: Westfall & Young, "Resampling-Based Multiple Testing", Wiley 1993; Holm, "A simple
sequentially rejective multiple test procedure", Scand. J. Statist. 1979; the ratio-estimator
variance of cluster sampling (Cochran, "Sampling Techniques", 1977, ch. 6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

__all__ = ["HEADLINE_METRICS", "FINDING_COLUMNS", "TOO_FEW_COLUMNS", "find_findings", "cluster_sums",
           "proportion_sums", "proportion_cells", "permutation_maxt",
           "holm_adjust", "DEFAULT_MIN_EVENTS"]

#: metrics that can make a headline -> (events, unit in sentences).
#: FNR / TNR are 1 - TPR / 1 - FPR (the same tests); ECE is biased by group size (smaller
#: groups get a larger binned ECE with no true difference), so it is never a headline; AUC
#: differences are reported with CIs in the tables and plots but are not headlines (their
#: family-wise calibration would need the permutation of a rank statistic).
HEADLINE_METRICS = {
    "tpr": ("positives", "positives"),
    "fpr": ("negatives", "negatives"),
    "ppv": ("predicted_positives", "predicted positives"),
    "underdiagnosis_rate": ("negatives", "patients with a finding"),
}
DEFAULT_MIN_EVENTS = 10
#: with more eligible groups than this, each group is compared with the group that has the most
#: events instead of with every other group (the family stays O(groups))
MAX_ALL_PAIRS = 30
FINDING_COLUMNS = ("label", "attribute", "metric", "group_low", "group_high", "estimate_low",
                   "estimate_high", "events_low", "events_high", "count_low", "count_high",
                   "difference", "ci_low", "ci_high", "p_value", "p_adjusted", "status", "test")
TOO_FEW_COLUMNS = ("label", "attribute", "group", "metric", "events", "unit")


def holm_adjust(p: np.ndarray) -> np.ndarray:
    r"""Holm step-down adjusted p-values, :math:`\tilde p_{(i)} = \max_{j \le i}
    \min(1, (m - j + 1) p_{(j)})` (Holm 1979); NaN p-values are left out of the family.

    Examples
    --------
    >>> holm_adjust(np.array([0.01, 0.04, 0.03])).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adj)
    return out


def _events(rows: pd.DataFrame) -> dict:
    """(label, attribute, group) -> counts from the point estimates of ``by_group``."""
    piv = rows[rows["metric"].isin(("n", "positives", "selection_rate"))]
    out: dict = {}
    for rec in piv.itertuples(index=False):
        out.setdefault((rec.label, rec.attribute, rec.group), {})[rec.metric] = rec.estimate
    res = {}
    for key, d in out.items():
        n = float(d.get("n", np.nan))
        pos = float(d.get("positives", np.nan))
        sel = float(d.get("selection_rate", np.nan))
        res[key] = {"n": n, "positives": pos, "negatives": n - pos,
                    "predicted_positives": sel * n if np.isfinite(sel) else np.nan}
    return res


def _n_events(kind: str, c: dict) -> float:
    if kind == "both_classes":
        return float(np.fmin(c.get("positives", np.nan), c.get("negatives", np.nan)))
    return float(c.get(kind, np.nan))


def _var(metric: str, kind: str, value: float, c: dict) -> float:
    """Binomial variance of one group's proportion on its own denominator."""
    den = c[kind]
    return value * (1 - value) / den


def cluster_sums(codes: np.ndarray, cluster: np.ndarray | None, mask: np.ndarray,
                 success: np.ndarray, n_groups: int) -> np.ndarray:
    r"""Per group, the cluster sums a cluster-robust variance of a proportion needs:
    ``(G, 4)`` columns :math:`\sum_c x_c^2, \sum_c x_c n_c, \sum_c n_c^2, C` over the clusters
    ``c`` of the group (rows of one cluster in one group form one unit; each row is its own
    cluster without ``cluster``), with :math:`n_c` the cluster's rows in the denominator
    ``mask`` and :math:`x_c` its successes among them."""
    codes = np.asarray(codes, dtype=np.int64)[mask]
    x = np.asarray(success, dtype=np.float64)[mask]
    if cluster is None:
        unit = np.arange(codes.size)
    else:
        unit = np.asarray(cluster)[mask]
    key = pd.factorize(pd.Series(codes) * (int(np.max(unit, initial=0)) + 1) + unit)[0] \
        if cluster is not None else unit
    nk = int(key.max(initial=-1)) + 1
    n_c = np.bincount(key, minlength=nk).astype(np.float64)
    x_c = np.bincount(key, weights=x, minlength=nk)
    g_c = np.zeros(nk, dtype=np.int64)
    g_c[key] = codes
    out = np.zeros((n_groups, 4))
    for col, v in enumerate((x_c * x_c, x_c * n_c, n_c * n_c, np.ones(nk))):
        out[:, col] = np.bincount(g_c, weights=v, minlength=n_groups)
    return out


def proportion_cells(y: np.ndarray, pred: np.ndarray) -> dict:
    """(denominator mask, success) of TPR, FPR and PPV for :func:`find_findings`' ``rows``."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(pred).astype(bool)
    return {"tpr": (y, pred), "fpr": (~y, pred), "ppv": (pred, y)}


def proportion_sums(y: np.ndarray, pred: np.ndarray, codes: np.ndarray,
                    cluster: np.ndarray | None, n_groups: int) -> dict:
    """:func:`cluster_sums` of TPR, FPR and PPV (metric -> ``(G, 4)``)."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(pred).astype(bool)
    return {"tpr": cluster_sums(codes, cluster, y, pred, n_groups),
            "fpr": cluster_sums(codes, cluster, ~y, pred, n_groups),
            "ppv": cluster_sums(codes, cluster, pred, y, n_groups)}


def _robust_var(sums: np.ndarray, p0: float, den: float) -> float:
    r"""Cluster-robust variance of a proportion under :math:`H_0: p = p_0`,
    :math:`\frac{C}{C - 1}\sum_c (x_c - p_0 n_c)^2 / N^2` (the ratio-estimator variance of
    survey sampling, e.g. Cochran, "Sampling Techniques", 1977, ch. 6)."""
    sxx, sxn, snn, c = sums
    if den <= 0 or c < 2:
        return float("nan")
    v = (sxx - 2 * p0 * sxn + p0 * p0 * snn) / (den * den)
    return float(max(v, 0.0) * c / (c - 1))


def permutation_maxt(cells: list, observed: list, *, joint_codes: np.ndarray, decode: list,
                     cluster: np.ndarray | None, n_permutations: int,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Westfall-Young single-step max-T adjusted p-values of pairwise proportion differences.

    Each comparison's statistic is the cluster-robust score statistic
    :math:`z = (\hat p_h - \hat p_g) / \sqrt{v_g + v_h}` with
    :math:`v_g = \frac{C_g}{C_g - 1} \sum_c (x_c - \bar p n_c)^2 / N_g^2` at the pooled
    :math:`\bar p` (units ``c`` = a patient's rows in the group; never below the binomial
    :math:`\bar p(1 - \bar p)/N_g`). Permutation ``b`` re-assigns the groups of whole
    patients (every attribute at once, by :class:`~fairfoundry.metrics.ResamplePlan`'s scheme:
    rows, whole clusters, or whole clusters' group sequences among clusters of the same size
    when a group varies within clusters). Each comparison ``k`` is standardised by the root mean
    square of its statistic over the B permutations and the observed data,
    :math:`t_k = |z_k| / s_k`, :math:`s_k^2 = (z_k^2 + \sum_b z^{*2}_{b,k}) / (B + 1)` (a
    symmetric function of all B + 1, so the test stays exact), and permutation ``b`` records
    :math:`\max_k t^*_{b,k}` over the whole family;
    :math:`\tilde p_k = (1 + \#\{\max t^* \ge t_k\}) / (1 + B)`. This controls the
    family-wise error rate without assuming normal tails, which heavy-tailed patient cluster
    sizes break (benchmarks/sim_headline_null.py); the standardisation keeps the comparisons
    whose permutation spread is widest (PPV and FPR of patients with many images) from setting
    the critical value of all the others (max-T wants comparable margins: Westfall & Young,
    "Resampling-Based Multiple Testing", Wiley 1993, ch. 2; raw |z| gave a critical value of
    about 3.9, the standardised one about 3.5 on the CheXNet predictions).

    ``cells``: ``(attribute index, mask (n,), success (n,), G)``; ``observed``: per cell the
    list of ``(g, h, _)`` tested pairs. Returns (adjusted p-values, observed z), flattened in
    order.
    """
    from ..metrics._bootstrap import ResamplePlan

    n_obs = sum(len(o) for o in observed)
    if n_obs == 0:
        return np.full(0, np.nan), np.full(0, np.nan)
    n = joint_codes.size
    cl = (np.arange(n) if cluster is None else pd.factorize(pd.Series(np.asarray(cluster)))[0])
    cl = cl.astype(np.int64)
    n_cl = int(cl.max()) + 1
    by_attr: dict[int, list[int]] = {}
    for k, (ai, _, _, _) in enumerate(cells):
        if observed[k]:
            by_attr.setdefault(ai, []).append(k)
    mats = {ai: (np.vstack([cells[k][1] for k in ks]).astype(np.float64),
                 np.vstack([cells[k][1] & cells[k][2] for k in ks]).astype(np.float64))
            for ai, ks in by_attr.items()}
    pidx = {ai: tuple(np.array([x[c] for row, k in enumerate(ks) for x in
                                [(row, g, h) for g, h, _ in observed[k]]], dtype=np.int64)
                      for c in range(3)) for ai, ks in by_attr.items()}
    # observed statistics: ``zcat`` in attribute order, ``where`` maps ``observed`` order to it
    attrs = list(by_attr)
    zs = {ai: _robust_z(decode[ai][joint_codes], cl, n_cl, cells[by_attr[ai][0]][3], *mats[ai], pidx[ai])
          for ai in attrs}
    offset = dict(zip(attrs, np.cumsum([0] + [zs[ai].size for ai in attrs])[:-1], strict=True))
    zcat = np.abs(np.concatenate([zs[ai] for ai in attrs])).astype(np.float64)
    pos = {ai: 0 for ai in attrs}
    where = []
    for k, pairs in enumerate(observed):
        if pairs:
            ai = cells[k][0]
            where.extend(range(offset[ai] + pos[ai], offset[ai] + pos[ai] + len(pairs)))
            pos[ai] += len(pairs)
    where = np.asarray(where, dtype=np.int64)
    zobs = zcat[where]
    if n_permutations <= 0:
        return np.full(zobs.shape, np.nan), zobs
    order = np.argsort(joint_codes, kind="stable")
    G = int(joint_codes.max()) + 1
    bounds = np.concatenate([[0], np.cumsum(np.bincount(joint_codes, minlength=G))])
    plan = ResamplePlan(bounds, cluster=None if cluster is None else cl[order], seed=seed,
                        row_order=order)
    seg = joint_codes[order]
    if cluster is not None and plan.stratified:
        # every patient lies in one group: patients move whole, so sum each patient once
        cl_joint = np.empty(n_cl, dtype=np.int64)
        cl_joint[cl] = joint_codes
        per_cl = {ai: (np.stack([np.bincount(cl, weights=row, minlength=n_cl)
                                 for row in mats[ai][0]]),
                       np.stack([np.bincount(cl, weights=row, minlength=n_cl)
                                 for row in mats[ai][1]])) for ai in attrs}
        rng_plan = ResamplePlan(np.array([0, n_cl]), seed=seed)

        def perm_z(b: int) -> np.ndarray:
            pj = cl_joint[rng_plan.permuted_groups(b, np.arange(n_cl))]
            return np.abs(np.concatenate([_cluster_z(decode[ai][pj], cells[by_attr[ai][0]][3], *per_cl[ai],
                                                     pidx[ai]) for ai in attrs]))
    else:
        def perm_z(b: int) -> np.ndarray:
            perm = np.empty_like(joint_codes)
            perm[order] = plan.permuted_groups(b, seg)
            return np.abs(np.concatenate([_robust_z(decode[ai][perm], cl, n_cl, cells[by_attr[ai][0]][3],
                                                    *mats[ai], pidx[ai]) for ai in attrs]))
    # each comparison is standardised by the root mean square of its statistic over the
    # permutations and the observed data (a symmetric function of all B + 1, so the max-T test
    # stays exact): comparisons whose permutation spread is wider (few, large patients) no
    # longer set the critical value for the others
    K = zcat.size
    keep = n_permutations * K <= 2**24
    stored = np.empty((n_permutations, K), dtype=np.float32) if keep else None
    ss = zcat * zcat
    for b in range(n_permutations):
        z = perm_z(b)
        ss += z * z
        if keep:
            stored[b] = z
    scale = np.sqrt(ss / (n_permutations + 1))
    scale = np.where(scale > 0, scale, 1.0)
    maxes = np.empty(n_permutations)
    for b in range(n_permutations):
        z = stored[b] if keep else perm_z(b)  # the same permutation again: seeded by (seed, b)
        maxes[b] = float(np.max(z / scale, initial=0.0))
    tobs = (zcat / scale)[where]
    maxes.sort()
    hits = maxes.size - np.searchsorted(maxes, tobs - 1e-6, side="left")
    return (1.0 + hits) / (1.0 + n_permutations), zobs


def _robust_z(codes, cl, n_cl, G, M, XS, idx) -> np.ndarray:
    """Cluster-robust score statistics of the pairs ``idx = (cell row, g, h)`` for group codes
    ``codes`` (see :func:`permutation_maxt`); ``M`` / ``XS``: cells x rows denominators and
    successes."""
    key = codes.astype(np.int64) * n_cl + cl
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    n_u = np.add.reduceat(M[:, order], starts, axis=1)
    x_u = np.add.reduceat(XS[:, order], starts, axis=1)
    ug = ks[starts] // n_cl
    return _unit_z(ug, G, n_u, x_u, idx)


def _cluster_z(cl_group, G, n_c, x_c, idx) -> np.ndarray:
    """:func:`_robust_z` when every patient is one unit (``n_c``/``x_c``: cells x patients)."""
    keep = n_c.sum(axis=0) > 0
    order = np.argsort(cl_group[keep], kind="stable")
    return _unit_z(cl_group[keep][order], G, n_c[:, keep][:, order], x_c[:, keep][:, order],
                   idx)


def _unit_z(ug, G, n_u, x_u, idx) -> np.ndarray:
    """Score statistics from unit sums ``n_u``/``x_u`` (cells x units, units sorted by their
    group ``ug``)."""
    gst = np.flatnonzero(np.r_[True, ug[1:] != ug[:-1]])
    gid = ug[gst]
    K = n_u.shape[0]

    def red(v):
        out = np.zeros((K, G))
        out[:, gid] = np.add.reduceat(v, gst, axis=1)
        return out

    N, X = red(n_u), red(x_u)
    sxx, sxn, snn, cnt = red(x_u * x_u), red(x_u * n_u), red(n_u * n_u), red(
        (n_u > 0).astype(np.float64))
    r, g, h = idx
    with np.errstate(divide="ignore", invalid="ignore"):
        p0 = (X[r, g] + X[r, h]) / (N[r, g] + N[r, h])

        def var(j):
            nn = N[r, j]
            c = cnt[r, j]
            v = (sxx[r, j] - 2 * p0 * sxn[r, j] + p0 * p0 * snn[r, j]) / (nn * nn)
            v = np.where(c > 1, np.maximum(v, 0.0) * c / (c - 1), np.nan)
            return np.fmax(v, p0 * (1 - p0) / nn)

        v = var(g) + var(h)
        z = (X[r, h] / N[r, h] - X[r, g] / N[r, g]) / np.sqrt(v)
    return np.where(np.isfinite(z), z, 0.0)


def _z(x1, n1, x2, n2) -> float:
    if n1 <= 0 or n2 <= 0:
        return 0.0
    p0 = (x1 + x2) / (n1 + n2)
    v = p0 * (1 - p0) * (1 / n1 + 1 / n2)
    return (x2 / n2 - x1 / n1) / np.sqrt(v) if v > 0 else 0.0


def find_findings(by_group: pd.DataFrame, replicates: dict | None, *, min_events: int,
                  confidence: float, clustered: bool = False, rows: dict | None = None,
                  n_permutations: int = 1000, seed: int = 0,
                  robust: dict | None = None, metrics=None,
                  labels=None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Test every pairwise group difference of the headline metrics, family-wise.

    Parameters
    ----------
    by_group : DataFrame
        :attr:`Evaluation.by_group` (point estimates; suppressed cells are skipped).
    replicates : dict or None
        ``{attribute: {label: {"per": {metric: (B, G + 1)}, "names": [...]}}}`` (bootstrap
        replicates of every group, then overall) for the CIs, or None without a bootstrap.
    min_events : int
        Fewest events of the metric's own denominator for a group to be judged.
    confidence : float
        Level of the intervals; ``1 - confidence`` is the family-wise error rate of the headlines.
    clustered : bool
        Whether the rows are clustered (patients); said in the description of the test.
    rows : dict, optional
        The per-row data for the permutation max-T adjustment: ``{"attributes": [names],
        "names": [group names per attribute], "codes": [codes per attribute], "cluster":
        array or None, "cells": {(label, metric): (mask, success)}}``. Without it (or with
        ``n_permutations=0``) p-values are Holm-adjusted cluster-robust score tests
        (``robust``: :func:`proportion_sums` per (label, attribute, metric)).
    n_permutations, seed : int
        Permutations of the max-T adjustment and their seed.
    metrics, labels : sequence of str, optional
        A **pre-specified family** (a primary analysis, as in a statistical analysis plan):
        only these headline metrics / labels are tested, so the family-wise adjustment covers
        fewer comparisons and has more power for them; the other comparisons stay in the
        tables but can make no headline. Default: every headline metric of every label (the
        exploratory family). Choosing them after looking at the results voids the guarantee.

    Returns
    -------
    (findings, too_few, info)
        ``findings``: one row per (label, attribute, metric) with at least two eligible groups:
        the pair with the smallest adjusted p-value (columns :data:`FINDING_COLUMNS`; ``status``
        ``"finding"`` or ``"not clear"``); ``too_few``: the groups below ``min_events``;
        ``info``: the method, the family size and ``min_events`` (for ``summary.json``).
    """
    alpha = 1.0 - confidence
    zq = float(ndtri(1 - alpha / 2))
    t = by_group[(by_group["label"] != "macro") & (by_group["group"] != "overall")]
    events = _events(t)
    fam_metrics = list(HEADLINE_METRICS) if metrics is None else list(metrics)
    head = t[t["metric"].isin(fam_metrics) & ~t["reason"].astype(str).str.startswith(
        "suppressed")]
    if labels is not None:
        head = head[head["label"].isin(list(labels))]
    use_maxt = rows is not None and n_permutations > 0
    pairs = []  # (cell key, g_lo, g_hi, d, lo, hi, p, test, |z|)
    cells, observed, cell_of_pair = [], [], []
    too_few = []
    for (label, attr, metric), part in head.groupby(["label", "attribute", "metric"], sort=False):
        kind, unit = HEADLINE_METRICS[metric]
        ok = []
        for rec in part.itertuples(index=False):
            if not np.isfinite(rec.estimate):
                continue
            c = events.get((label, attr, rec.group), {})
            if metric == "underdiagnosis_rate":  # no finding is the positive class there
                c = {**c, "negatives": c.get("n", np.nan) - c.get("positives", np.nan)}
            e = _n_events(kind, c)
            if not np.isfinite(e) or e < min_events:
                too_few.append((label, attr, rec.group, metric, e, unit))
                continue
            ok.append((rec.group, float(rec.estimate), c, e))
        if len(ok) < 2:
            continue
        rep = None
        if replicates is not None:
            r = replicates.get(attr, {}).get(label)
            if r and metric in r.get("per", {}):
                rep = (np.asarray(r["per"][metric], dtype=np.float64), r["names"])
        data = None
        if use_maxt and attr in rows["attributes"] and (label, metric) in rows["cells"]:
            ai = rows["attributes"].index(attr)
            mask, succ = rows["cells"][(label, metric)]
            data = (ai, rows["names"][ai])
            cells.append((ai, mask, succ, len(data[1])))
            observed.append([])
        if len(ok) <= MAX_ALL_PAIRS:
            todo = [(i, j) for i in range(len(ok)) for j in range(i + 1, len(ok))]
        else:  # many groups: each against the group with the most events (O(G) comparisons)
            big = int(np.argmax([g[3] for g in ok]))
            todo = [(big, j) for j in range(len(ok)) if j != big]
        for i, j in todo:
            a, b = ok[i], ok[j]
            lo_g, hi_g = (a, b) if a[1] <= b[1] else (b, a)
            d = hi_g[1] - lo_g[1]
            n_lo, n_hi = lo_g[2][kind], hi_g[2][kind]
            z = _z(lo_g[1] * n_lo, n_lo, hi_g[1] * n_hi, n_hi)
            rob = robust.get((label, attr, metric)) if robust else None
            if rob is not None and lo_g[0] in rob[0] and hi_g[0] in rob[0]:
                p0 = (lo_g[1] * n_lo + hi_g[1] * n_hi) / (n_lo + n_hi)
                v = sum(max(_robust_var(rob[1][rob[0].index(g[0])], p0, g[2][kind]),
                            _var(metric, kind, p0, g[2])) for g in (lo_g, hi_g))
                z = d / np.sqrt(v) if v > 0 else z
            if rep is not None and lo_g[0] in rep[1] and hi_g[0] in rep[1]:
                R, names = rep
                ds = R[:, names.index(hi_g[0])] - R[:, names.index(lo_g[0])]
                ds = ds[np.isfinite(ds)]
                if ds.size < 2:
                    continue
                lo, hi = np.quantile(ds, [alpha / 2, 1 - alpha / 2])
                ci = "bootstrap percentile"
            else:
                se = np.sqrt(lo_g[1] * (1 - lo_g[1]) / n_lo + hi_g[1] * (1 - hi_g[1]) / n_hi)
                lo, hi = d - zq * se, d + zq * se
                ci = "normal"
            p = float(2 * ndtr(-abs(z)))
            if data is not None:
                observed[-1].append((data[1].index(lo_g[0]), data[1].index(hi_g[0]), abs(z)))
                cell_of_pair.append(len(pairs))
            pairs.append(((label, attr, metric), lo_g, hi_g, d, float(lo), float(hi), p,
                          ci))
    if use_maxt:
        pm, zobs = permutation_maxt(cells, observed, joint_codes=rows["joint"],
                                    decode=rows["decode"], cluster=rows.get("cluster"),
                                    n_permutations=n_permutations, seed=seed)
        padj = np.full(len(pairs), np.nan)
        idx = np.asarray(cell_of_pair, dtype=np.int64)
        padj[idx] = pm
        for k, zk in zip(idx, zobs, strict=True):  # raw p of the statistic that was permuted
            pairs[k] = (*pairs[k][:6], float(2 * ndtr(-zk)), pairs[k][7])
        rest = np.isnan(padj)
        if rest.any():  # pairs without row data: Holm on their own
            padj[rest] = holm_adjust(np.array([x[6] for x in pairs]))[rest]
    else:
        padj = holm_adjust(np.array([x[6] for x in pairs])) if pairs else np.array([])
    best: dict = {}
    for k, (key, _lo_g, _hi_g, _d, lo, hi, _p, _test) in enumerate(pairs):
        cur = best.get(key)
        cand = (padj[k], -min(abs(lo), abs(hi)), k)
        if cur is None or cand < cur:
            best[key] = cand
    out = []
    for key, (_, _, k) in best.items():
        _, lo_g, hi_g, d, lo, hi, p, test = pairs[k]
        kind = HEADLINE_METRICS[key[2]][0]
        sure = padj[k] < alpha and (lo > 0 or hi < 0)
        cnt = {"lo": np.nan, "hi": np.nan}
        if kind != "both_classes":
            cnt = {"lo": lo_g[1] * lo_g[3], "hi": hi_g[1] * hi_g[3]}
        out.append((*key, lo_g[0], hi_g[0], lo_g[1], hi_g[1], lo_g[3], hi_g[3],
                     cnt["lo"], cnt["hi"], d, lo, hi, p, float(padj[k]),
                     "finding" if sure else "not clear", test))
    findings = pd.DataFrame(out, columns=list(FINDING_COLUMNS))
    if not findings.empty:
        findings = findings.assign(_s=findings["status"] != "finding",
                                   _b=-np.fmin(findings["ci_low"].abs(), findings["ci_high"].abs()))
        findings = findings.sort_values(["_s", "p_adjusted", "_b"], kind="stable").drop(
            columns=["_s", "_b"]).reset_index(drop=True)
    few = pd.DataFrame(too_few, columns=list(TOO_FEW_COLUMNS))
    boot = replicates is not None
    adj = "westfall_young_maxT" if use_maxt else "holm"
    adj_txt = (f"Westfall-Young max-T over {n_permutations} permutations of whole patients' "
               "groups" if use_maxt and clustered else
               f"Westfall-Young max-T over {n_permutations} permutations of the groups"
               if use_maxt else "Holm")
    prespecified = metrics is not None or labels is not None
    fam_txt = ("pre-specified family: " + ", ".join(
        x for x in (f"metrics {', '.join(fam_metrics)}" if metrics is not None else "",
                    f"labels {', '.join(map(str, labels))}" if labels is not None else "") if x)
               if prespecified else "exploratory family: every headline metric of every label")
    info = {
        "family": {"prespecified": prespecified, "metrics": fam_metrics,
                   "labels": None if labels is None else [str(x) for x in labels],
                   "description": fam_txt},
        "min_events": int(min_events),
        "events": {m: u for m, (_, u) in HEADLINE_METRICS.items()},
        "family_size": len(pairs),
        "adjustment": adj,
        "adjustment_description": adj_txt,
        "n_permutations": int(n_permutations) if use_maxt else 0,
        "ranking": f"{adj_txt}-adjusted p-value over every pairwise comparison of the family "
                   + ("(all labels, attributes, headline metrics and pairs of groups with enough "
                      "events)" if not prespecified else
                      f"({fam_txt}; every attribute and pair of groups with enough events)")
                   + ", then the CI bound nearest 0",
        "test": ("two-proportion score statistic per pair of groups on the metric's own "
                 "denominator, with the cluster-robust variance at the pooled proportion "
                 "(patients as clusters; never below the binomial one); "
                 + ("family-wise p-value from its permutation distribution (max-T)"
                    if use_maxt else "normal p-value, Holm-adjusted")
                 + "; CI: " + ("bootstrap percentile interval of the difference" if boot else
                               "normal (Wald) interval, which ignores clustering")),
        "headline_rule": f"both groups have >= {min_events} events, the family-wise adjusted "
                         f"p < {alpha:.3g} ({adj_txt}) and the {confidence:.0%} CI of the "
                         "difference excludes 0",
        "n_findings": int((findings["status"] == "finding").sum()) if not findings.empty else 0,
        "n_too_few": len(few),
    }
    return findings, few, info
