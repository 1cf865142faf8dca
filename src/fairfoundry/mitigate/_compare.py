r"""Side-by-side comparison of fit runs: each method's paired difference to ERM, a verdict,
the Pareto front where intervals separate, and a utility-vs-fairness plot.

How a method is compared with the reference (ERM), metric by metric (test AUC, and per
attribute the equalized-odds difference and the AUC gap):

* **two or more seeds** shared with the reference: :math:`d_s = x_{m,s} - x_{\mathrm{ERM},s}`
  per seed, paired t-interval over seeds (:func:`fairfoundry.metrics.t_interval`, the statistic
  of the studies' ``paired_differences``). This interval holds the seed-to-seed (training)
  variation; the test set is the same for every seed.
* **one seed**: a paired bootstrap over test samples: the same B resamples (clustered by patient
  when known, stratified by group) are evaluated for the method and for ERM and the difference is
  taken replicate by replicate (:func:`fairfoundry.metrics.paired_bootstrap_intervals`). This
  interval holds the test-sampling variation of this one trained model, not training variation.

The verdict is family-wise: a method "differs from ERM" only when its simultaneous 95 %
interval (Bonferroni over the K comparisons for the t-intervals, the bootstrap max-T band for the
paired bootstrap) excludes 0, and only for metrics with enough events (:data:`MIN_EVENTS`
positives and negatives in every group of the attribute); otherwise "too few to judge". A null
simulation (``tests/mitigate/test_compare.py``, ``benchmarks/sim_compare_null.py``) checks that
the verdict says "differs" in about 5 % of comparisons of methods that equal ERM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Comparison", "compare_runs", "paired_replicates", "write_comparison", "MIN_EVENTS",
           "COMPARED_GAPS"]

#: fewest positives and negatives (in every group of an attribute) for a difference to be judged
MIN_EVENTS = 10
#: fewest bootstrap resamples for a paired-bootstrap interval (fewer: "not estimable")
MIN_RESAMPLES = 20
#: per-attribute summaries compared with ERM (the first is the plotted fairness axis)
COMPARED_GAPS = ("equalized_odds_difference", "auc_gap")
#: direction of "better" per summary: +1 higher is better, -1 lower is better
_BETTER = {"auc": 1, "equalized_odds_difference": -1, "auc_gap": -1}


def _metric_of(col: str) -> str:
    return col.split(":", 1)[1] if ":" in col else col


def _describe(col: str) -> str:
    if ":" not in col:
        return "test AUC" if col == "auc" else col
    attr, m = col.split(":", 1)
    return {"equalized_odds_difference": f"equalized-odds difference by {attr}",
            "auc_gap": f"AUC gap by {attr}"}.get(m, f"{m} by {attr}")


@dataclass
class Comparison:
    """Result of :func:`compare_runs`.

    Attributes
    ----------
    differences : DataFrame
        One row per (method, metric): ``method, reference, metric, difference, ci_low, ci_high``
        (per-comparison 95 %), ``sim_low, sim_high`` (family-wise), ``interval, n_pairs, events,
        status`` (``differs`` / ``no difference shown`` / ``too few to judge`` / ``not
        estimable``), ``reason``.
    means : DataFrame
        Per method: means over seeds, ``seeds``, ``at_chance`` and, per attribute,
        ``<attr>:pareto`` / ``<attr>:dominated_by``.
    verdict : list of str
        Plain sentences, the first is the headline.
    interval : str
        How the intervals were computed.
    chance : list of str
        Runs whose test AUC interval includes 0.5.
    """

    differences: pd.DataFrame
    means: pd.DataFrame
    verdict: list[str]
    interval: str
    reference: str
    chance: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"reference": self.reference, "interval": self.interval, "verdict": self.verdict,
                "at_chance": self.chance, "min_events": MIN_EVENTS,
                "differences": self.differences.to_dict(orient="records")}


def paired_replicates(predictions: dict, *, thresholds: dict, sensitive: list[str], labels: list[str],
                      bins: dict | None = None, n_bootstrap: int = 200, seed: int = 0,
                      confidence: float = 0.95) -> tuple[dict, dict, dict]:
    """Point estimates and bootstrap replicates of every compared metric, on shared resamples.

    ``predictions``: method -> its per-sample predictions frame (the test rows of one seed,
    every method on the same samples); ``thresholds``: method -> one threshold per label
    (chosen on validation by the run). For every attribute the engine
    (:func:`fairfoundry.metrics.evaluate_groups`) runs once per method with the same groups,
    clusters (``patient_id`` when present) and seed, so replicate ``b`` is the same resample
    of the test samples for every method; with several labels the per-label replicates are
    averaged (macro), as the comparison table is.

    Returns
    -------
    (estimates, replicates, events): ``estimates[method][col]`` float,
    ``replicates[method][col]`` array (B,), ``events[col]`` the fewest positives or negatives
    of any group the metric depends on.
    """
    from ..groups import group_labels
    from ..metrics import evaluate_groups

    ycols = ["y_true"] if len(labels) == 1 else [f"y_true_{lab}" for lab in labels]
    scols = ["y_score"] if len(labels) == 1 else [f"y_score_{lab}" for lab in labels]
    est: dict = {m: {} for m in predictions}
    reps: dict = {m: {} for m in predictions}
    events: dict = {}
    first = next(iter(predictions.values()))
    for attr in [None, *sensitive]:
        per_label_est: dict = {m: {} for m in predictions}
        per_label_rep: dict = {m: {} for m in predictions}
        for k, (yc, sc) in enumerate(zip(ycols, scols, strict=True)):
            known = first[yc].notna().to_numpy()
            sub0 = first[known]
            y = sub0[yc].to_numpy().astype(int)
            g = (np.zeros(len(sub0), dtype=np.int64) if attr is None
                 else group_labels(sub0, [attr], bins=bins or None))
            names = ["all"] if attr is None else None
            cluster = sub0["patient_id"].to_numpy() if "patient_id" in sub0.columns else None
            gl = pd.Series(np.asarray(g)).astype(str).to_numpy()
            pos = pd.Series(y).groupby(gl).sum()
            neg = pd.Series(1 - y).groupby(gl).sum()
            key_cols = ["auc"] if attr is None else [f"{attr}:{m}" for m in COMPARED_GAPS]
            for col in key_cols:
                events[col] = min(events.get(col, np.inf), float(min(pos.min(), neg.min())))
            for m, frame in predictions.items():
                s = frame[known][sc].to_numpy(dtype=float)
                res = evaluate_groups(y, s, threshold=float(thresholds[m][k]), groups=g, group_names=names,
                                      metrics=["auc", "tpr", "fpr"], n_bootstrap=n_bootstrap, seed=seed,
                                      cluster=cluster, confidence=confidence)
                empty = np.full(0, np.nan)
                if attr is None:
                    per_label_est[m].setdefault("auc", []).append(res.estimate("auc"))
                    per_label_rep[m].setdefault("auc", []).append(
                        res.replicates["auc"][:, -1] if res.replicates else empty)
                else:
                    for mm in COMPARED_GAPS:
                        per_label_est[m].setdefault(f"{attr}:{mm}", []).append(res.estimate(mm, None))
                        per_label_rep[m].setdefault(f"{attr}:{mm}", []).append(res.replicates.get(mm, empty))
        for m in predictions:
            for col, values in per_label_est[m].items():
                est[m][col] = float(np.mean(values))
                stacked = np.stack(per_label_rep[m][col])
                if len(ycols) > 1 and not all(predictions[m][c].notna().all() for c in ycols):
                    stacked = np.full_like(stacked, np.nan)  # labels on different rows: resamples differ
                reps[m][col] = stacked.mean(axis=0)
    return est, reps, events


def _wide(table: pd.DataFrame, cols: list[str]) -> dict[str, dict[str, pd.Series]]:
    """Per column, per method: its values by seed."""
    return {c: {m: g.set_index("seed")[c] for m, g in table.groupby("method", sort=False)} for c in cols}


def _pair(wide: dict, a: str, b: str, col: str, reps: dict | None, est: dict | None,
          confidence: float) -> tuple[float, float, float, int, str]:
    """Difference a - b of ``col``: paired over seeds (>= 2 shared) or over shared resamples."""
    from ..metrics import paired_bootstrap_intervals, t_interval

    w = wide[col]
    if a in w and b in w:
        d = (w[a] - w[b]).dropna().to_numpy(dtype=float)
        if len(d) >= 2:
            m, lo, hi = t_interval(d, confidence=confidence)
            return m, lo, hi, len(d), f"paired t over {len(d)} seeds"
    if reps is not None and a in reps and b in reps and col in reps[a]:
        if np.isfinite(reps[a][col] - reps[b][col]).sum() < MIN_RESAMPLES:
            return np.nan, np.nan, np.nan, 1, "paired bootstrap over test samples (too few resamples)"
        dd = float(est[a][col] - est[b][col])
        r = paired_bootstrap_intervals([dd], (reps[a][col] - reps[b][col])[:, None], confidence=confidence)
        return dd, float(r["low"][0]), float(r["high"][0]), 1, "paired bootstrap over test samples"
    return np.nan, np.nan, np.nan, 0, ""


def compare_runs(table: pd.DataFrame, *, sensitive: list[str], reference: str = "erm",
                 replicates: dict | None = None, estimates: dict | None = None,
                 events: dict | None = None, confidence: float = 0.95) -> Comparison:
    r"""Each method's difference to ``reference`` with CIs, the verdict and the Pareto front.

    Parameters
    ----------
    table : DataFrame
        One row per run: ``method, seed, auc, auc_ci_low, auc_ci_high`` and
        ``<attr>:<summary>`` columns (what ``fit`` writes to ``comparison.csv``).
    sensitive : list of str
    reference : str
        The reference method (ERM); when absent, the first method of the table.
    replicates, estimates : dict, optional
        From :func:`paired_replicates`: used when a method shares fewer than two seeds with the
        reference (one seed: paired bootstrap over test samples).
    events : dict, optional
        Per compared column, the fewest positives or negatives of any group; a difference
        with fewer than :data:`MIN_EVENTS` is "too few to judge".
    confidence : float

    Notes
    -----
    Family-wise error: with K = (methods - 1) x metrics comparisons the verdict uses, for paired
    t-intervals, the Bonferroni level :math:`1 - \alpha/K`; for the paired bootstrap, the
    max-T band of :func:`fairfoundry.metrics.paired_bootstrap_intervals` over all K.
    Pareto: method *i* is dominated by *j* (for one attribute) when *j* is better on one axis
    (higher AUC, or smaller equalized-odds difference) with a 95 % paired interval of the
    difference excluding 0, and no worse on the other (point estimates). Only non-dominated
    methods are "on the front"; when no pair separates, no front is drawn.
    """
    from ..metrics import paired_bootstrap_intervals, t_interval

    methods = list(dict.fromkeys(table["method"]))
    if reference not in methods:
        reference = methods[0]
    cols = [c for c in ["auc", *[f"{a}:{m}" for a in sensitive for m in COMPARED_GAPS]] if c in table.columns]
    others = [m for m in methods if m != reference]
    K = max(1, len(others) * len(cols))
    events = events or {}
    wide = _wide(table, cols)
    rows = []
    boot_keys: list[tuple[str, str]] = []
    for m in others:
        for col in cols:
            d, lo, hi, n, how = _pair(wide, m, reference, col, replicates, estimates, confidence)
            sim_lo = sim_hi = np.nan
            if how.startswith("paired t"):
                _, sim_lo, sim_hi = t_interval((wide[col][m] - wide[col][reference]).dropna().to_numpy(float),
                                               confidence=1 - (1 - confidence) / K)
            elif how and np.isfinite(d):
                boot_keys.append((m, col))
            ev = events.get(col, np.nan)
            rows.append({"method": m, "reference": reference, "metric": col, "difference": d, "ci_low": lo,
                         "ci_high": hi, "sim_low": sim_lo, "sim_high": sim_hi, "interval": how, "n_pairs": n,
                         "events": ev})
    diffs = pd.DataFrame(rows, columns=["method", "reference", "metric", "difference", "ci_low", "ci_high",
                                        "sim_low", "sim_high", "interval", "n_pairs", "events"])
    if boot_keys:  # one max-T band over every bootstrap comparison
        est = [estimates[m][c] - estimates[reference][c] for m, c in boot_keys]
        rep = np.stack([replicates[m][c] - replicates[reference][c] for m, c in boot_keys], axis=1)
        band = paired_bootstrap_intervals(est, rep, confidence=confidence)
        for k, (m, c) in enumerate(boot_keys):
            i = diffs.index[(diffs["method"] == m) & (diffs["metric"] == c)][0]
            diffs.loc[i, ["sim_low", "sim_high"]] = band["sim_low"][k], band["sim_high"][k]
    status, reason = [], []
    for r in diffs.itertuples(index=False):
        if not (np.isfinite(r.sim_low) and np.isfinite(r.sim_high)):
            status.append("not estimable")
            reason.append("fewer than two seeds shared with the reference and no paired bootstrap"
                          if not r.interval else
                          f"fewer than {MIN_RESAMPLES} bootstrap resamples where the metric is defined"
                          if "too few resamples" in r.interval else
                          "the metric is undefined in some seeds or resamples")
        elif np.isfinite(r.events) and r.events < MIN_EVENTS:
            status.append("too few to judge")
            reason.append(f"a group has {int(r.events)} positives or negatives (< {MIN_EVENTS})")
        elif r.sim_low > 0 or r.sim_high < 0:
            status.append("differs")
            reason.append("")
        else:
            status.append("no difference shown")
            reason.append("the family-wise interval includes 0")
    diffs["status"] = status
    diffs["reason"] = reason
    interval = "; ".join(sorted({h for h in diffs["interval"] if h})) or "none"
    means = _means(table, wide, sensitive=sensitive, cols=cols, replicates=replicates, estimates=estimates,
                   confidence=confidence)
    chance = _chance(table)
    verdict = _verdict(diffs, reference=reference, K=K, interval=interval, chance=chance)
    return Comparison(differences=diffs, means=means, verdict=verdict, interval=interval,
                      reference=reference, chance=chance)


def _means(table, wide, *, sensitive, cols, replicates, estimates, confidence) -> pd.DataFrame:
    g = table.groupby("method", sort=False)
    means = g[cols].mean().reset_index()
    means.insert(1, "seeds", g.size().to_numpy())
    means["at_chance"] = [bool(((sub["auc_ci_low"] <= 0.5) & (sub["auc_ci_high"] >= 0.5)).any())
                          if "auc_ci_low" in sub.columns else False for _, sub in g]
    methods = list(means["method"])
    for attr in sensitive:
        gap = f"{attr}:{COMPARED_GAPS[0]}"
        if gap not in cols or "auc" not in cols:
            continue
        dominated: dict[str, list[str]] = {m: [] for m in methods}
        pt = means.set_index("method")
        for i in methods:
            for j in methods:
                if i == j:
                    continue
                _, lo_a, _, _, _ = _pair(wide, j, i, "auc", replicates, estimates, confidence)
                _, _, hi_g, _, _ = _pair(wide, j, i, gap, replicates, estimates, confidence)
                better_auc = np.isfinite(lo_a) and lo_a > 0
                better_gap = np.isfinite(hi_g) and hi_g < 0
                if ((better_auc and pt.loc[j, gap] <= pt.loc[i, gap])
                        or (better_gap and pt.loc[j, "auc"] >= pt.loc[i, "auc"])):
                    dominated[i].append(j)
        means[f"{attr}:pareto"] = [not dominated[m] for m in methods]
        means[f"{attr}:dominated_by"] = [", ".join(dominated[m]) for m in methods]
    return means


def _chance(table: pd.DataFrame) -> list[str]:
    if "auc_ci_low" not in table.columns:
        return []
    at = table[(table["auc_ci_low"] <= 0.5) & (table["auc_ci_high"] >= 0.5)]
    return [f"{r['method']} seed {r['seed']}" for r in at.to_dict(orient="records")]


def _fmt(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:+.3f}"


def _verdict(diffs: pd.DataFrame, *, reference: str, K: int, interval: str, chance: list[str]) -> list[str]:
    fam = (f"family-wise over {K} comparison{'s' if K != 1 else ''}: "
           "Bonferroni t-intervals" if interval.startswith("paired t") else
           f"family-wise over {K} comparison{'s' if K != 1 else ''}: bootstrap max-T band")
    out = []
    differ = diffs[diffs["status"] == "differs"]
    if not len(diffs):
        out.append(f"Only {reference} was run: nothing to compare.")
    elif not (diffs["status"].isin(["differs", "no difference shown"])).any():
        out.append(f"No difference to {reference.upper() if reference == 'erm' else reference} could be judged: "
                   "every comparison is too few to judge or not estimable.")
    elif not len(differ):
        out.append(f"No method differs from {reference.upper() if reference == 'erm' else reference} at 95 % "
                   f"({fam}; {interval}).")
    else:
        names = list(dict.fromkeys(differ["method"]))
        parts = []
        for m in names:
            sub = differ[differ["method"] == m]
            bits = [f"{_describe(r.metric)} {_fmt(r.difference)} [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] "
                    f"({'better' if np.sign(r.difference) == _BETTER.get(_metric_of(r.metric), 1) else 'worse'})"
                    for r in sub.itertuples(index=False)]
            parts.append(f"{m}: " + "; ".join(bits))
        ref = reference.upper() if reference == "erm" else reference
        out.append(f"{', '.join(names)} differ{'s' if len(names) == 1 else ''} from {ref} at 95 % ({fam}; "
                   f"{interval}). " + " | ".join(parts) + ".")
    few = diffs[diffs["status"] == "too few to judge"]
    if len(few):
        out.append("Too few to judge: " + ", ".join(sorted({_describe(c) for c in few["metric"]}))
                   + f" (a group has fewer than {MIN_EVENTS} positives or negatives in the test split).")
    na = diffs[diffs["status"] == "not estimable"]
    if len(na):
        out.append("Not estimable: " + ", ".join(sorted({f"{r.method} / {_describe(r.metric)}"
                                                          for r in na.itertuples(index=False)})) + ".")
    if chance:
        out.append("At chance (test AUC 95 % CI includes 0.5): " + ", ".join(chance)
                   + ". Fairness gaps of a model at chance say nothing about the model.")
    return out


def write_comparison(path: Path, table, *, sensitive: list[str], config, comparison: Comparison | None = None) -> Path:
    """Write ``comparison.html``: the verdict, the differences to ERM, and per attribute the
    AUC vs equalized-odds plot (runs with CIs, method means, the Pareto front where CIs separate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._io import write_text_atomic
    from ..report._html import esc, figure_html, render_page, table_html

    comparison = comparison or compare_runs(table, sensitive=sensitive)
    body = [f"<p class='meta'>Head <code>{esc(config.head)}</code>, selection <code>{esc(config.select)}</code> on "
            "validation, test metrics with bootstrap 95% CIs. Differences to the reference are paired "
            f"({esc(comparison.interval)}).</p>", "<h2>Verdict</h2>"]
    body += [f"<p><strong>{esc(s)}</strong></p>" if k == 0 else f"<p>{esc(s)}</p>"
             for k, s in enumerate(comparison.verdict)]
    if len(comparison.differences):
        shown = comparison.differences.drop(columns=["reference"]).rename(columns={
            "ci_low": "95% CI low", "ci_high": "95% CI high", "sim_low": "family-wise low",
            "sim_high": "family-wise high", "n_pairs": "paired seeds", "events": "fewest events"})
        body.append(f"<h2>Difference to {esc(comparison.reference)}</h2>")
        body.append(table_html(shown, left=["method", "metric", "interval", "status", "reason"]))
    means = comparison.means
    for attr in sensitive:
        gap = f"{attr}:{COMPARED_GAPS[0]}"
        if "auc" not in table.columns or gap not in table.columns or f"{attr}:pareto" not in means.columns:
            continue
        separated = not means[f"{attr}:pareto"].all()
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        order = list(means["method"])
        for d in table.to_dict(orient="records"):
            xerr = np.array([[d["auc"] - d["auc_ci_low"]], [d["auc_ci_high"] - d["auc"]]])
            yerr = np.array([[d[gap] - d[gap + "_ci_low"]], [d[gap + "_ci_high"] - d[gap]]])
            ax.errorbar(d["auc"], d[gap], xerr=np.abs(xerr), yerr=np.abs(yerr), fmt="o", alpha=0.35,
                        color=f"C{order.index(d['method']) % 10}")
        for j, r in means.iterrows():
            front = bool(r[f"{attr}:pareto"]) and separated
            ax.scatter(r["auc"], r[gap], s=90, marker="*" if front else "D", color=f"C{j % 10}",
                       edgecolor="k", zorder=3, label=r["method"] + (" (Pareto)" if front else ""))
        if separated:
            fr = means[means[f"{attr}:pareto"]].sort_values("auc")
            ax.plot(fr["auc"], fr[gap], "k--", lw=1)
        ax.set_xlabel("test AUC (higher is better)")
        ax.set_ylabel(f"equalized-odds difference by {attr} (lower is fairer)")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
        body.append(f"<h2>{esc(attr)}</h2>")
        note = ("Pareto front (stars, dashed line): methods no other method beats on one axis with a 95% "
                "paired interval excluding 0 while being no worse on the other." if separated else
                "No method's paired interval separates it from another on AUC or on the equalized-odds "
                "difference: no Pareto front is marked.")
        body.append(f"<p>{esc(note)}</p>")
        body.append(figure_html(fig, caption=f"Utility vs fairness by {attr}: points are runs with 95% CIs, "
                                              "large markers are means over seeds."))
        body.append(table_html(means[["method", "seeds", "auc", gap, f"{attr}:pareto", f"{attr}:dominated_by",
                                      "at_chance"]], left=["method", f"{attr}:dominated_by"]))
    body.append("<h2>All runs</h2>")
    body.append(table_html(table, left=["method", "stage"]))
    return write_text_atomic(path, render_page("fairfoundry fit: methods compared", "\n".join(body)))
