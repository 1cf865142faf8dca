"""HTML report of a fairness evaluation (:meth:`fairfoundry.Evaluation.to_html`).

Self-contained (plots embedded as PNG, CSS inline): per-group metrics with error bars, ROC and
calibration curves by group, a forest plot of gaps with CIs, a plain-language reading of the
biggest gaps, thresholds and the split they were chosen on, suppressed cells and warnings.
matplotlib is imported inside the functions (Agg backend).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from ._html import esc, figure_html, render_page, table_html

__all__ = ["evaluation_report_html", "gap_readings", "too_few_readings", "METRIC_NAMES"]

#: readable names of the metrics shown in plots and sentences.
METRIC_NAMES = {
    "auc": "AUC", "tpr": "TPR (sensitivity)", "fpr": "FPR", "tnr": "TNR (specificity)",
    "fnr": "FNR", "ppv": "PPV (precision)", "npv": "NPV", "ece": "ECE (calibration error)",
    "selection_rate": "selection rate", "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy", "brier": "Brier score", "f1": "F1",
    "average_precision": "average precision", "underdiagnosis_rate": "underdiagnosis rate",
    "prevalence": "prevalence",
}
_PLOT_METRICS = ("auc", "tpr", "fpr", "ppv", "ece", "selection_rate")
_GAP_METRICS = ("auc", "tpr", "fpr", "ppv", "ece", "underdiagnosis_rate")
_SUMMARY_KEYS = ("auc_gap", "tpr_gap", "fpr_gap", "ppv_gap", "ece_gap",
                 "equalized_odds_difference", "demographic_parity_difference", "es_auc",
                 "underdiagnosis_rate_gap")
_MAX_CURVE_PANELS = 16


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _group_ref(attribute: str, group: str) -> str:
    """``sex=female``; intersection names already read ``sex=female & age=<40``."""
    return str(group) if "=" in str(group) else f"{attribute}={group}"


def _count(n) -> str:
    return "?" if n is None or not np.isfinite(float(n)) else f"{int(n):,}"


def _fmt(x, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _with_ci(est, lo, hi) -> str:
    if not np.isfinite(est):
        return "—"
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{est:.3f} [{lo:.3f}, {hi:.3f}]"
    return f"{est:.3f}"


def _per_label(ev) -> list[str]:
    labels = list(ev.labels)
    extra = [lab for lab in dict.fromkeys(ev.by_group["label"]) if lab not in labels]
    return labels + extra


def _group_rows(ev, label: str, attribute: str, metric: str) -> pd.DataFrame:
    t = ev.by_group
    t = t[(t["label"] == label) & (t["attribute"] == attribute) & (t["metric"] == metric)]
    return t[t["group"] != "overall"]


def _events_text(n_events, count, unit: str) -> str:
    if not np.isfinite(n_events):
        return ""
    if not np.isfinite(count):
        return f"{_count(n_events)} {unit}"
    return f"{_count(round(count))} of {_count(n_events)} {unit}"


def gap_readings(ev, *, top: int = 8, confidence: float | None = None) -> list[str]:
    """Plain-language sentences for the headline findings of ``ev`` (evidence first).

    Only differences that pass the evidence rule of :func:`fairfoundry.evaluation.find_findings`
    are stated: both groups have at least ``min_events`` of the metric's own events, the
    family-wise adjusted p-value (Westfall-Young max-T over patient permutations, or Holm)
    over the whole family of comparisons is below ``1 - confidence`` and
    the CI of the difference excludes 0. Each reads like "Effusion: TPR (sensitivity) for
    sex=F is 0.08 lower than for sex=M (0.71, 120 of 169 positives, vs 0.79, 300 of 380
    positives; 95% CI of the difference 0.03 to 0.12; adjusted p = 0.002 (max-T over 420
    comparisons))". Ranked by the adjusted p-value.
    """
    from ..evaluation import HEADLINE_METRICS

    conf = confidence if confidence is not None else ev.config.get("confidence", 0.95)
    f = getattr(ev, "findings", None)
    if f is None or f.empty:
        return []
    fam = int(ev.findings_info.get("family_size", 0))
    adj = "max-T" if ev.findings_info.get("adjustment") == "westfall_young_maxT" else "Holm"
    out = []
    for rec in f[f["status"] == "finding"].head(top).itertuples(index=False):
        name = METRIC_NAMES.get(rec.metric, rec.metric)
        unit = HEADLINE_METRICS[rec.metric][1]
        g_lo = _group_ref(rec.attribute, rec.group_low)
        g_hi = _group_ref(rec.attribute, rec.group_high)
        text = (f"{rec.label}: {name} for {g_lo} is {rec.difference:.2f} lower than for {g_hi} "
                f"({rec.estimate_low:.2f}, {_events_text(rec.events_low, rec.count_low, unit)}, "
                f"vs {rec.estimate_high:.2f}, "
                f"{_events_text(rec.events_high, rec.count_high, unit)}; "
                f"{conf:.0%} CI of the difference {rec.ci_low:.2f} to {rec.ci_high:.2f}; "
                f"adjusted p = {rec.p_adjusted:.2g} ({adj} over {fam:,} comparisons)).")
        out.append(text)
    return out


def too_few_readings(ev, *, top: int = 12) -> list[str]:
    """Sentences for the groups with too few of a headline metric's events to be judged."""
    few = getattr(ev, "too_few", None)
    if few is None or few.empty:
        return []
    k = ev.findings_info.get("min_events", "")
    out = []
    for (label, attr, metric), part in few.groupby(["label", "attribute", "metric"], sort=False):
        who = ", ".join(f"{_group_ref(attr, g)} ({_count(e) if np.isfinite(e) else 0} "
                        f"{part['unit'].iloc[0]})" for g, e in zip(part["group"], part["events"],
                                                                   strict=True))
        out.append(f"{label}: {METRIC_NAMES.get(metric, metric)} has too few events to judge for {who}; "
                   f"a group needs >= {k}.")
    if len(out) > top:
        out = [*out[:top], f"... and {len(out) - top:,} more (summary.json, findings.too_few_to_judge)."]
    return out


# -- figures ---------------------------------------------------------------------------------------


def _colors(n: int):
    plt = _mpl()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _group_metric_figure(ev, attribute: str, labels: list[str]):
    """Per-group estimates with CI error bars: one panel per metric, x = label."""
    plt = _mpl()
    metrics = [m for m in _PLOT_METRICS if (ev.by_group["metric"] == m).any()]
    t = ev.by_group[(ev.by_group["attribute"] == attribute) & ev.by_group["label"].isin(labels)]
    shown = t[np.isfinite(t["estimate"].to_numpy(dtype=float))]
    groups = [g for g in dict.fromkeys(t["group"]) if g != "overall" and (shown["group"] == g).any()]
    if not metrics or not groups:
        return None
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    width = max(9.0, 0.55 * len(labels) * ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(min(width, 16), 3.4 * nrows), squeeze=False)
    colors = _colors(len(groups))
    x = np.arange(len(labels))
    step = 0.7 / max(len(groups), 1)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        tm = t[t["metric"] == metric].set_index(["label", "group"])
        for gi, group in enumerate(groups):
            est, lo, hi = [], [], []
            for lab in labels:
                if (lab, group) in tm.index:
                    r = tm.loc[(lab, group)]
                    est.append(float(r["estimate"]))
                    lo.append(float(r["ci_low"]))
                    hi.append(float(r["ci_high"]))
                else:
                    est.append(np.nan)
                    lo.append(np.nan)
                    hi.append(np.nan)
            est, lo, hi = map(np.asarray, (est, lo, hi))
            xs = x - 0.35 + step * (gi + 0.5)
            err = np.vstack([np.where(np.isfinite(lo), est - lo, 0), np.where(np.isfinite(hi), hi - est, 0)])
            ax.errorbar(xs, est, yerr=np.clip(err, 0, None), fmt="o", ms=4, capsize=2, lw=1,
                        color=colors[gi], label=str(group))
        ax.set_title(METRIC_NAMES.get(metric, metric), fontsize=10)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=45 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    handles, names = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, names, title=attribute, loc="upper center", ncol=min(len(groups), 8),
               fontsize=8, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / fig.get_figheight()))
    return fig


def _forest_figure(ev, attribute: str, labels: list[str]):
    """Forest plot: gap (max - min over groups) with CI, one row per label x metric."""
    plt = _mpl()
    s = ev.summary_table
    s = s[(s["attribute"] == attribute) & s["label"].isin(labels)
          & s["metric"].isin([f"{m}_gap" for m in _GAP_METRICS])]
    s = s[np.isfinite(s["estimate"].to_numpy(dtype=float))]
    if s.empty:
        return None
    order = {f"{m}_gap": i for i, m in enumerate(_GAP_METRICS)}
    lab_order = {lab: i for i, lab in enumerate(labels)}
    s = s.assign(_o=s["metric"].map(order), _l=s["label"].map(lab_order)).sort_values(["_o", "_l"])
    n = len(s)
    fig, ax = plt.subplots(figsize=(8.5, max(2.2, 0.24 * n + 1.0)))
    y = np.arange(n)[::-1]
    colors = _colors(len(_GAP_METRICS))
    est = s["estimate"].to_numpy(dtype=float)
    lo = s["ci_low"].to_numpy(dtype=float)
    hi = s["ci_high"].to_numpy(dtype=float)
    col = [colors[order[m]] for m in s["metric"]]
    has = np.isfinite(lo) & np.isfinite(hi)
    ax.hlines(y[has], lo[has], hi[has], colors=np.asarray(col, dtype=object)[has].tolist(), lw=1.6)
    ax.scatter(est, y, c=col, s=18, zorder=3)
    ax.axvline(0, color="#555", lw=0.8, ls="--")
    names = [f"{lab} · {METRIC_NAMES.get(m[:-4], m[:-4]).split(' (')[0]} gap"
             for lab, m in zip(s["label"], s["metric"], strict=True)]
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=7 if n > 30 else 8)
    ax.set_xlabel(f"gap between groups of {attribute} (max - min); 0 = no difference")
    ax.set_ylim(-0.8, n - 0.2)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def _curve_panels(ev, attribute: str, kind: str):
    """ROC (``kind="roc"``) or reliability (``"calibration"``) curves by group, one panel per label."""
    from ..metrics import roc_points

    plt = _mpl()
    cur = ev.curves
    gcol = f"g::{attribute}"
    if cur is None or gcol not in cur.columns:
        return None
    labels = [lab for lab in ev.labels if f"y::{lab}" in cur.columns][:_MAX_CURVE_PANELS]
    col = cur[gcol]
    present = set(col.dropna())
    order = list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype) else list(present)
    groups = [g for g in order if g in present]
    if not labels or not groups:
        return None
    ncols = min(4, len(labels))
    nrows = math.ceil(len(labels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 3.1 * nrows), squeeze=False)
    colors = _colors(len(groups))
    n_bins = int(ev.config.get("ece_bins", 10))
    gvals = cur[gcol].to_numpy(dtype=object)
    for ax, lab in zip(axes.ravel(), labels, strict=False):
        y = cur[f"y::{lab}"].to_numpy(dtype=float)
        s = cur[f"s::{lab}"].to_numpy(dtype=float)
        for gi, group in enumerate(groups):
            m = gvals == group
            yg, sg = y[m], s[m]
            if kind == "roc":
                if yg.min(initial=1) == yg.max(initial=0):
                    continue
                _, fpr, tpr = roc_points(yg, sg)
                ax.plot(np.r_[0.0, fpr], np.r_[0.0, tpr], color=colors[gi], lw=1.1, label=str(group))
            else:
                idx = np.clip((sg * n_bins).astype(int), 0, n_bins - 1)
                cnt = np.bincount(idx, minlength=n_bins)
                ok = cnt >= 5
                if not ok.any():
                    continue
                mp = np.bincount(idx, weights=sg, minlength=n_bins)[ok] / cnt[ok]
                fo = np.bincount(idx, weights=yg, minlength=n_bins)[ok] / cnt[ok]
                ax.plot(mp, fo, "o-", ms=3, color=colors[gi], lw=1.1, label=str(group))
        ax.plot([0, 1], [0, 1], color="#999", lw=0.7, ls="--")
        ax.set_title(lab, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
        if kind == "roc":
            ax.set_xlabel("FPR", fontsize=8)
            ax.set_ylabel("TPR", fontsize=8)
        else:
            ax.set_xlabel("mean predicted", fontsize=8)
            ax.set_ylabel("observed rate", fontsize=8)
    for ax in axes.ravel()[len(labels):]:
        ax.axis("off")
    handles, names = axes.ravel()[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, title=attribute, loc="upper center", ncol=min(len(groups), 8),
                   fontsize=8, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / fig.get_figheight()))
    return fig


# -- page ------------------------------------------------------------------------------------------


def _thresholds_html(ev) -> str:
    t = ev.thresholds.copy()
    if t.empty:
        return ""
    show = pd.DataFrame({
        "label": t["label"], "threshold": t["threshold"].astype(float), "rule": t["rule"],
        "chosen on split": t["chosen_on_split"].fillna("— (fixed)").astype(str),
        "rows used": t["n_rows_chosen_on"].astype(int),
    })
    return table_html(show, left=("label", "rule", "chosen on split"))


def _summary_html(ev) -> str:
    s = ev.summary_table
    s = s[s["metric"].isin(_SUMMARY_KEYS)]
    if s.empty:
        return "<p>No summaries.</p>"
    s = s.assign(value=[_with_ci(e, lo, hi) for e, lo, hi in
                        zip(s["estimate"], s["ci_low"], s["ci_high"], strict=True)])
    wide = s.pivot_table(index=["label", "attribute"], columns="metric", values="value",
                         aggfunc="first", sort=False)
    wide = wide[[m for m in _SUMMARY_KEYS if m in wide.columns]].reset_index().fillna("—")
    return table_html(wide, left=("label", "attribute"))


def _by_group_html(ev, label: str) -> str:
    t = ev.by_group[(ev.by_group["label"] == label)
                    & ev.by_group["metric"].isin(("n", "prevalence", *_PLOT_METRICS))]
    if t.empty:
        return ""
    t = t.assign(value=[
        ("suppressed" if str(r).startswith("suppressed") else
         (_count(e) if m == "n" else _with_ci(e, lo, hi)))
        for e, lo, hi, r, m in zip(t["estimate"], t["ci_low"], t["ci_high"], t["reason"],
                                   t["metric"], strict=True)])
    wide = t.pivot_table(index=["attribute", "group"], columns="metric", values="value",
                         aggfunc="first", sort=False)
    cols = [m for m in ("n", "prevalence", *_PLOT_METRICS) if m in wide.columns]
    wide = wide[cols].reset_index().fillna("—")
    return table_html(wide, left=("attribute", "group"))


def evaluation_report_html(ev) -> str:
    """The full self-contained HTML report of an :class:`~fairfoundry.Evaluation`."""
    info = ev.info
    labels = list(ev.labels)
    per_label = _per_label(ev)
    conf = float(ev.config.get("confidence", 0.95))
    n_boot = int(ev.config.get("bootstrap", 0))
    parts: list[str] = []

    if info.get("threshold_on_report_split"):
        parts.append('<div class="warn"><b>Thresholds were chosen on the reported rows</b> '
                     "(--allow-threshold-on-report-split). Threshold-dependent metrics (TPR, FPR, "
                     "PPV, accuracy, ...) are optimistic and not a fair test estimate.</div>")
    split = info.get("report_split")
    parts.append(
        f'<p class="meta">Input <code>{esc(info.get("source"))}</code> '
        f'(fingerprint <code>{esc(str(info.get("fingerprint"))[:23])}</code>), '
        f'{info.get("n_rows", 0):,} rows; reported on '
        f'{"split <b>" + esc(split) + "</b>" if split else "all rows"} '
        f'({info.get("n_report_rows", 0):,} rows). '
        + (f"{conf:.0%} bootstrap CIs from {n_boot} replicates"
           + (f", resampling whole <code>{esc(ev.config.get('cluster'))}</code> clusters"
              if ev.config.get("cluster") else "")
           + f" ({esc(ev.config.get('ci_method'))}; gaps: "
           + ("simultaneous pairwise-difference intervals, 0 at the bottom when no two groups "
              "differ significantly" if ev.config.get("gap_ci", "pairwise") == "pairwise"
              else "percentile interval of max - min")
           + f"), seed {ev.config.get('seed')}."
           + (" Calibration slope/intercept replicates use the one-step refit."
              if "one_step" in (info.get("uncertainty", {}).get("calibration_bootstrap") or [])
              else "")
           if n_boot else "No bootstrap: point estimates only (pass --bootstrap N for CIs).")
        + "</p>")

    parts.append("<h2>Findings, in words</h2>")
    readings = gap_readings(ev)
    finfo = getattr(ev, "findings_info", {}) or {}
    parts.append("<p class=\"meta\">A difference is stated only when " + esc(
        finfo.get("headline_rule", "")) + ". Ranked by " + esc(finfo.get("ranking", "")) + ". Test: "
        + esc(finfo.get("test", "")) + ".</p>")
    parts.append("<ul class=\"reading\">" + "".join(f"<li>{esc(r)}</li>" for r in readings) + "</ul>"
                 if readings else
                 f"<p>No difference between groups is clear at {conf:.0%} after the "
                 f"{esc(finfo.get('adjustment_description', 'family-wise'))} adjustment over "
                 f"{int(finfo.get('family_size', 0)):,} comparisons.</p>")
    few = too_few_readings(ev)
    if few:
        parts.append("<h3>Too few to judge</h3><ul class=\"reading\">"
                     + "".join(f"<li>{esc(r)}</li>" for r in few) + "</ul>")

    parts.append("<h2>Thresholds</h2>")
    parts.append("<p>Decisions are <code>score &gt;= threshold</code>, one threshold per label.</p>")
    parts.append(_thresholds_html(ev))

    if ev.warnings or ev.suppressed:
        parts.append("<h2>Warnings</h2>")
        parts.extend(f'<div class="warn">{esc(w)}</div>' for w in ev.warnings)
        if ev.suppressed:
            k = ev.config.get("min_group_size")
            sup = pd.DataFrame(ev.suppressed)
            parts.append(f"<p>Cells of groups with fewer than {esc(k)} rows are suppressed "
                         "(estimates and CIs blanked) in every output:</p>")
            parts.append(table_html(sup, left=tuple(sup.columns)))

    parts.append("<h2>Summary of gaps</h2>")
    parts.append("<p><code>*_gap</code> = max - min over groups (0 is fair); "
                 "<code>equalized_odds_difference</code> = max of the TPR and FPR gaps (fairlearn); "
                 "<code>es_auc</code> = AUC / (1 + Σ|AUC<sub>g</sub> - AUC|) (FairCLIP). "
                 "All summaries, ratios and p-values are in <code>summary.json</code>.</p>")
    parts.append(_summary_html(ev))

    attributes = ev.attributes
    plot_labels = [lab for lab in per_label if lab != "macro"]
    for attr in attributes:
        parts.append(f"<h2>By {esc(attr)}</h2>")
        fig = _group_metric_figure(ev, attr, [lab for lab in plot_labels if lab in labels])
        if fig is not None:
            parts.append(figure_html(fig, alt=f"metrics by {attr}",
                                     caption=f"Per-group estimates by {attr}"
                                     + (f" with {conf:.0%} bootstrap CIs." if n_boot else ".")))
        fig = _forest_figure(ev, attr, plot_labels)
        if fig is not None:
            parts.append(figure_html(fig, alt=f"forest plot of gaps by {attr}",
                                     caption=f"Gaps between groups of {attr}"
                                     + (f" with {conf:.0%} CIs" if n_boot else "")
                                     + "; a CI crossing 0 means no clear difference."))
        fig = _curve_panels(ev, attr, "roc")
        if fig is not None:
            parts.append(figure_html(fig, alt=f"ROC curves by {attr}",
                                     caption=f"ROC curves by {attr} on the reported rows."))
        fig = _curve_panels(ev, attr, "calibration")
        if fig is not None:
            parts.append(figure_html(fig, alt=f"calibration curves by {attr}",
                                     caption=f"Reliability diagrams by {attr} ({ev.config.get('ece_bins')} "
                                             "equal-width bins, bins with >= 5 rows)."))

    parts.append("<h2>Per-group table</h2>")
    main_label = "macro" if "macro" in per_label else (labels[0] if labels else per_label[0])
    parts.append(f"<p>Label <b>{esc(main_label)}</b>"
                 + (" (mean over labels)" if main_label == "macro" else "")
                 + "; every label, metric and CI is in <code>evaluation.csv</code>.</p>")
    parts.append(_by_group_html(ev, main_label))
    if "any_finding" in per_label:
        parts.append("<h3>Underdiagnosis (Seyyed-Kalantari et al., Nat. Med. 2021)</h3>")
        parts.append("<p>Share of patients with at least one finding whom the model calls "
                     "\"no finding\" (every score below its threshold).</p>")
        t = ev.by_group[(ev.by_group["label"] == "any_finding")
                        & (ev.by_group["metric"] == "underdiagnosis_rate")]
        t = t.assign(value=[_with_ci(e, lo, hi) for e, lo, hi in
                            zip(t["estimate"], t["ci_low"], t["ci_high"], strict=True)])
        parts.append(table_html(t[["attribute", "group", "metric", "value", "n", "reason"]],
                                left=("attribute", "group", "metric", "value", "reason")))

    parts.append("<h2>Configuration</h2>")
    config = ev.summary["config"]
    parts.append(table_html(pd.DataFrame({"option": list(config),
                                          "value": [json.dumps(v) for v in config.values()]}),
                            left=("option", "value")))
    parts.append("<p class=\"meta\">" + esc(", ".join(f"{k} {v}" for k, v in ev.versions.items()
                                                        if v)) + "</p>")
    title = "Fairness evaluation"
    subtitle = (f"{len(labels)} label(s): {', '.join(labels[:6])}{', ...' if len(labels) > 6 else ''}"
                f" · attributes: {', '.join(attributes)}")
    return render_page(title, "".join(parts), subtitle=subtitle)
