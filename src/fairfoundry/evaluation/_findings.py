r"""Evidence-based findings: which group differences a report may state as headlines.

A *finding* is a difference between two groups of one attribute in one metric of one label.
It becomes a headline only when

1. both groups have at least ``min_events`` of the metric's own events (the denominator of the
   rate: positives for TPR, negatives for FPR, predicted positives for PPV, both classes for
   AUC, patients with a finding for the underdiagnosis rate); groups below are listed as "too
   few to judge";
2. its p-value, adjusted for multiplicity by Holm's step-down method over **every** pairwise
   comparison of the family (all labels, attributes, headline metrics and pairs of eligible
   groups), is below ``1 - confidence``; and
3. its confidence interval excludes 0.

Headlines are ranked by the adjusted p-value (then by the CI bound nearest 0).

Test of one pair :math:`d = m_g - m_h`: a score-type test, :math:`z = d / \mathrm{se}` with
:math:`p = 2\,\Phi(-|z|)`, where the standard error is computed **under the null** (both groups
at their pooled value :math:`\bar m`): :math:`\mathrm{se}_0^2 = v(\bar m; g) + v(\bar m; h)`
with :math:`v` the binomial variance :math:`\bar m(1 - \bar m) / \text{denominator}` of a
proportion or Hanley & McNeil's variance of an AUC. With bootstrap replicates (clustered by
patient when asked) each group's variance is inflated by its design effect,
:math:`\mathrm{se}^2 = \mathrm{deff}_g v(\bar m; g) + \mathrm{deff}_h v(\bar m; h)` with
:math:`\mathrm{deff}_g = \max(1, \operatorname{var}(m_g^*) / v(\tilde m_g; g))` (at the
Agresti-Caffo-adjusted estimate :math:`\tilde m_g`) and floored at the bootstrap standard
error of :math:`d^*`; the CI is the percentile interval of :math:`d^*`. Using the variance under
the null rather than at the estimates matters for small skewed groups: a rate observed near 0 %
(or an AUC near 1) has a small bootstrap spread around itself, and a Wald test at the estimate
would call random groups different (a null simulation on the real CheXNet predictions found a
significant headline in most data sets that way; benchmarks/sim_headline_null.py). Without a
bootstrap, clustering is ignored (the report says so).

Sources: Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Statist.
1979; Agresti & Caffo, Am. Stat. 2000; Hanley & McNeil, Radiology 1982.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

__all__ = ["HEADLINE_METRICS", "FINDING_COLUMNS", "TOO_FEW_COLUMNS", "find_findings",
           "holm_adjust", "DEFAULT_MIN_EVENTS"]

#: metrics that can make a headline -> (events, unit in sentences).
#: FNR / TNR are 1 - TPR / 1 - FPR (the same tests); ECE is biased by group size (smaller
#: groups get a larger binned ECE with no true difference), so it is never a headline.
HEADLINE_METRICS = {
    "tpr": ("positives", "positives"),
    "fpr": ("negatives", "negatives"),
    "ppv": ("predicted_positives", "predicted positives"),
    "auc": ("both_classes", "cases in the smaller class"),
    "underdiagnosis_rate": ("negatives", "patients with a finding"),
}
DEFAULT_MIN_EVENTS = 10
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


def _hm_var(auc, npos, nneg) -> float:
    """Hanley & McNeil (1982) variance of an AUC."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    return float((auc * (1 - auc) + (npos - 1) * (q1 - auc**2) + (nneg - 1) * (q2 - auc**2))
                 / (npos * nneg))


def _var(metric: str, kind: str, value: float, c: dict) -> float:
    """Analytic variance of one group's estimate: binomial for a proportion (on its own
    denominator), Hanley-McNeil for an AUC."""
    if metric == "auc":
        return _hm_var(min(value, 0.999), c["positives"], c["negatives"])
    den = c[kind]
    return value * (1 - value) / den


def _null_se(metric: str, kind: str, a: tuple, b: tuple, deff=(1.0, 1.0)) -> float:
    """Standard error of the difference under H0 (both groups at their pooled value), each
    group's variance times its design effect (at least 1)."""
    if metric == "auc":
        w = [g[3] for g in (a, b)]
    else:
        w = [g[2][kind] for g in (a, b)]
    pooled = (a[1] * w[0] + b[1] * w[1]) / (w[0] + w[1])
    da, db = (max(1.0, x) for x in deff)
    return float(np.sqrt(da * _var(metric, kind, pooled, a[2])
                         + db * _var(metric, kind, pooled, b[2])))


def _deff(metric: str, kind: str, g: tuple, reps: np.ndarray) -> float:
    """Design effect of one group: bootstrap variance over the analytic one (at the
    Agresti-Caffo-adjusted estimate, so a 0 % or 100 % rate does not divide by 0)."""
    r = reps[np.isfinite(reps)]
    if r.size < 2:
        return 1.0
    if metric == "auc":
        v = _var(metric, kind, g[1], g[2])
    else:
        den = g[2][kind]
        adj = (g[1] * den + 1) / (den + 2)
        v = adj * (1 - adj) / (den + 2)
    return float(np.var(r, ddof=1) / v) if v > 0 else 1.0


def find_findings(by_group: pd.DataFrame, replicates: dict | None, *, min_events: int,
                  confidence: float, clustered: bool = False) -> tuple[pd.DataFrame,
                                                                       pd.DataFrame, dict]:
    """Test every pairwise group difference of the headline metrics; adjust by Holm.

    Parameters
    ----------
    by_group : DataFrame
        :attr:`Evaluation.by_group` (point estimates; suppressed cells are skipped).
    replicates : dict or None
        ``{attribute: {label: {"per": {metric: (B, G + 1)}, "names": [...]}}}`` (bootstrap
        replicates of every group, then overall), or None without a bootstrap.
    min_events : int
        Fewest events of the metric's own denominator for a group to be judged.
    confidence : float
        Level of the intervals; ``1 - confidence`` is the family-wise error rate of the headlines.

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
    head = t[t["metric"].isin(HEADLINE_METRICS) & ~t["reason"].astype(str).str.startswith(
        "suppressed")]
    pairs = []  # (cell key, g_lo, g_hi, d, lo, hi, p, test)
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
        for i in range(len(ok)):
            for j in range(i + 1, len(ok)):
                a, b = ok[i], ok[j]
                lo_g, hi_g = (a, b) if a[1] <= b[1] else (b, a)
                d = hi_g[1] - lo_g[1]
                if rep is not None and lo_g[0] in rep[1] and hi_g[0] in rep[1]:
                    R, names = rep
                    r_lo, r_hi = R[:, names.index(lo_g[0])], R[:, names.index(hi_g[0])]
                    ds = r_hi - r_lo
                    ds = ds[np.isfinite(ds)]
                    if ds.size < 2:
                        continue
                    se = max(float(np.std(ds, ddof=1)),
                             _null_se(metric, kind, lo_g, hi_g,
                                      deff=(_deff(metric, kind, lo_g, r_lo),
                                            _deff(metric, kind, hi_g, r_hi))))
                    lo, hi = np.quantile(ds, [alpha / 2, 1 - alpha / 2])
                    test = "score_bootstrap_deff"
                else:
                    se = _null_se(metric, kind, lo_g, hi_g)
                    lo, hi = d - zq * se, d + zq * se
                    test = "score_" + ("hanley_mcneil" if metric == "auc" else "binomial")
                z = d / se if se > 0 else (np.inf if d > 0 else 0.0)
                p = float(2 * ndtr(-abs(z)))
                pairs.append(((label, attr, metric), lo_g, hi_g, d, float(lo), float(hi), p,
                              test))
    padj = holm_adjust(np.array([x[6] for x in pairs])) if pairs else np.array([])
    best: dict = {}
    for k, (key, lo_g, hi_g, d, lo, hi, p, test) in enumerate(pairs):
        cur = best.get(key)
        cand = (padj[k], -abs(lo), k)
        if cur is None or cand < cur:
            best[key] = cand
    rows = []
    for key, (_, _, k) in best.items():
        _, lo_g, hi_g, d, lo, hi, p, test = pairs[k]
        kind = HEADLINE_METRICS[key[2]][0]
        sure = padj[k] < alpha and (lo > 0 or hi < 0)
        cnt = {"lo": np.nan, "hi": np.nan}
        if kind != "both_classes":
            cnt = {"lo": lo_g[1] * lo_g[3], "hi": hi_g[1] * hi_g[3]}
        rows.append((*key, lo_g[0], hi_g[0], lo_g[1], hi_g[1], lo_g[3], hi_g[3],
                     cnt["lo"], cnt["hi"], d, lo, hi, p, float(padj[k]),
                     "finding" if sure else "not clear", test))
    findings = pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    if not findings.empty:
        findings = findings.assign(_s=findings["status"] != "finding",
                                   _b=-np.fmin(findings["ci_low"].abs(), findings["ci_high"].abs()))
        findings = findings.sort_values(["_s", "p_adjusted", "_b"], kind="stable").drop(
            columns=["_s", "_b"]).reset_index(drop=True)
    few = pd.DataFrame(too_few, columns=list(TOO_FEW_COLUMNS))
    boot = replicates is not None
    info = {
        "min_events": int(min_events),
        "events": {m: u for m, (_, u) in HEADLINE_METRICS.items()},
        "family_size": len(pairs),
        "adjustment": "holm",
        "ranking": "Holm-adjusted p-value over every pairwise comparison of the family (all "
                   "labels, attributes, headline metrics and pairs of groups with enough "
                   "events), then the CI bound nearest 0",
        "test": ("score-type z test of the difference: standard error under the null (binomial "
                 "for proportions, Hanley-McNeil for AUC, at the pooled value of the two groups) "
                 "times the bootstrap design effect, at least the bootstrap standard error; CI: "
                 "bootstrap percentile interval of the difference" if boot else
                 "score-type z test: standard error under the null (binomial for proportions, "
                 "Hanley-McNeil for AUC, at the pooled value); no bootstrap, so clustering is "
                 "ignored"
                 + (" (the data are clustered: run with a bootstrap)" if clustered else "")),
        "headline_rule": f"both groups have >= {min_events} events, Holm-adjusted p < "
                         f"{alpha:.3g} and the {confidence:.0%} CI of the difference excludes 0",
        "n_findings": int((findings["status"] == "finding").sum()) if not findings.empty else 0,
        "n_too_few": len(few),
    }
    return findings, few, info
