"""HTML report of a fairness evaluation (:meth:`fairfoundry.Evaluation.to_html`).

Self-contained (plots embedded as PNG, CSS inline): the findings in words, thresholds and the
split they were chosen on, warnings and suppressed cells, a summary of gaps, per attribute the
per-group estimates with error bars (the largest :data:`TOP_GROUPS` groups; every group is in the
tables), a forest plot of gaps with CIs, ROC curves and reliability diagrams with bin counts (the
largest :data:`TOP_CURVE_GROUPS` groups), and one per-group table per label. The page is the
jinja2 template ``templates/evaluation.html.j2`` (autoescaped: every user-supplied name is
escaped); the figures can also be written as PNG and SVG files (``figures_dir``). Work is linear
in the number of groups: figures are capped, tables are cut at 500 rows with a note (the CSV has
every row). matplotlib is imported inside the functions (Agg backend).
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ._html import figure_html, render_page, table_html, templates

__all__ = ["evaluation_report_html", "evaluation_summary_html", "gap_readings",
           "too_few_readings", "METRIC_NAMES", "TOP_GROUPS", "TOP_CURVE_GROUPS"]

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
_TABLE_METRICS = ("n", "prevalence", *_PLOT_METRICS)
_GAP_METRICS = ("auc", "tpr", "fpr", "ppv", "ece", "underdiagnosis_rate")
_SUMMARY_KEYS = ("auc_gap", "tpr_gap", "fpr_gap", "ppv_gap", "ece_gap",
                 "equalized_odds_difference", "demographic_parity_difference", "es_auc",
                 "underdiagnosis_rate_gap")
_MAX_CURVE_PANELS = 16
#: groups drawn in the per-group figure of an attribute (the largest; every group is in the tables)
TOP_GROUPS = 25
#: groups drawn as curves (ROC, reliability) per panel (the largest)
TOP_CURVE_GROUPS = 8
#: labels drawn as separate series in the per-group figure (more: the macro average only)
_MAX_SERIES_LABELS = 4


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
    pre = (ev.findings_info.get("family") or {}).get("prespecified", False)
    of = " of the pre-specified family" if pre else ""
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
                f"adjusted p = {rec.p_adjusted:.2g} ({adj} over {fam:,} comparisons{of})).")
        out.append(text)
    return out


def too_few_readings(ev, *, top: int = 12, groups_per_line: int = 10) -> list[str]:
    """Sentences for the groups with too few of a headline metric's events to be judged.

    One sentence per label, attribute and metric, naming at most ``groups_per_line`` groups
    (then "and N more"); at most ``top`` sentences (then a pointer to ``summary.json``)."""
    few = getattr(ev, "too_few", None)
    if few is None or few.empty:
        return []
    k = ev.findings_info.get("min_events", "")
    out = []
    keys = few[["label", "attribute", "metric"]].astype(str).agg("\x1f".join, axis=1)
    n_keys = keys.nunique()
    for key in list(dict.fromkeys(keys))[:top]:
        part = few[(keys == key).to_numpy()]
        label, attr, metric = key.split("\x1f")
        shown = part.head(groups_per_line)
        who = ", ".join(f"{_group_ref(attr, g)} ({_count(e) if np.isfinite(e) else 0} {u})"
                        for g, e, u in zip(shown["group"], shown["events"], shown["unit"],
                                           strict=True))
        more = (f" and {len(part) - len(shown):,} more group(s)" if len(part) > len(shown)
                else "")
        out.append(f"{label}: {METRIC_NAMES.get(metric, metric)} has too few events to judge for "
                   f"{who}{more}; a group needs >= {k}.")
    if n_keys > top:
        out.append(f"... and {n_keys - top:,} more (summary.json, findings.too_few_to_judge).")
    return out


# -- figures ---------------------------------------------------------------------------------------


def _colors(n: int):
    plt = _mpl()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _group_sizes(ev, attribute: str) -> pd.Series:
    """Rows per group of ``attribute`` (first label's ``n``), in the table's group order."""
    t = ev.by_group
    lab = next(iter(t["label"]), None)
    t = t[(t["attribute"] == attribute) & (t["metric"] == "n") & (t["label"] == lab)
          & (t["group"] != "overall")]
    return pd.Series(t["estimate"].to_numpy(dtype=float), index=t["group"].to_numpy())


def top_groups(ev, attribute: str, k: int) -> tuple[list[str], int]:
    """The ``k`` largest groups of ``attribute`` (in table order) and the number of groups."""
    sizes = _group_sizes(ev, attribute).fillna(0)
    if len(sizes) <= k:
        return list(sizes.index), len(sizes)
    keep = set(sizes.sort_values(ascending=False, kind="stable").index[:k])
    return [g for g in sizes.index if g in keep], len(sizes)


def _shown_note(shown: int, total: int) -> str:
    return (f" The {shown:,} largest of {total:,} groups are drawn; every group is in the tables "
            "below and in evaluation.csv." if shown < total else "")


def _group_metric_figure(ev, attribute: str, labels: list[str], groups: list[str]):
    """Small multiples, one panel per metric: each group's estimate with its CI on its own row
    (group names on the y axis, so no legend to match colours against); one series per label
    when there are few labels (legend outside the panels)."""
    plt = _mpl()
    bg = ev.by_group
    metrics = [m for m in _PLOT_METRICS if (bg["metric"] == m).any()]
    t = bg[(bg["attribute"] == attribute) & bg["label"].isin(labels) & bg["group"].isin(groups)
           & bg["metric"].isin(metrics)]
    if not metrics or not groups or not np.isfinite(t["estimate"].to_numpy(dtype=float)).any():
        return None
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    height = max(2.4, 0.26 * len(groups) * max(1, len(labels)) ** 0.5 + 1.2)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + (1.8 if len(labels) > 1 else 0),
                                                    height * nrows), squeeze=False, sharey=True)
    colors = _colors(len(labels))
    y = np.arange(len(groups))[::-1]
    step = 0.7 / max(len(labels), 1)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        tm = t[t["metric"] == metric]
        for li, lab in enumerate(labels):
            r = tm[tm["label"] == lab].drop_duplicates("group").set_index("group").reindex(groups)
            est = r["estimate"].to_numpy(dtype=float)
            lo = r["ci_low"].to_numpy(dtype=float)
            hi = r["ci_high"].to_numpy(dtype=float)
            ys = y + 0.35 - step * (li + 0.5) if len(labels) > 1 else y
            has = np.isfinite(lo) & np.isfinite(hi)
            # one LineCollection for the intervals and one line of markers (errorbar draws an
            # artist per point: slow at many groups)
            ax.hlines(ys[has], lo[has], hi[has], color=colors[li], lw=1)
            ax.plot(est, ys, "o", ms=3.5, color=colors[li], label=str(lab))
        ax.set_title(METRIC_NAMES.get(metric, metric), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[0, 0].set_yticks(y)
    axes[0, 0].set_yticklabels([str(g) for g in groups], fontsize=8 if len(groups) <= 30 else 6)
    for row in axes:
        row[0].set_yticks(y)
        row[0].set_yticklabels([str(g) for g in groups], fontsize=8 if len(groups) <= 30 else 6)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    if len(labels) > 1:
        handles, names = axes.ravel()[0].get_legend_handles_labels()
        fig.legend(handles, names, title="label", loc="center left", fontsize=8,
                   bbox_to_anchor=(1.0, 0.5), frameon=False)
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


def _curve_panels(ev, attribute: str, kind: str, groups: list[str]):
    """ROC (``kind="roc"``) or reliability (``"calibration"``) curves by group, one panel per
    label, the legend outside the panels. Reliability panels show the rows per bin (grey bars,
    right axis) and draw each group's points with an area proportional to its bin count."""
    from ..metrics import roc_points

    plt = _mpl()
    cur = ev.curves
    gcol = f"g::{attribute}"
    if cur is None or gcol not in cur.columns:
        return None
    labels = [lab for lab in ev.labels if f"y::{lab}" in cur.columns][:_MAX_CURVE_PANELS]
    col = cur[gcol]
    codes = (col.cat.codes.to_numpy() if isinstance(col.dtype, pd.CategoricalDtype)
             else pd.Categorical(col).codes)
    cats = (list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype)
            else list(pd.Categorical(col).categories))
    present = np.bincount(codes[codes >= 0], minlength=len(cats)) > 0
    index = {str(c): i for i, c in enumerate(cats)}
    groups = [g for g in groups if g in index and present[index[g]]]
    if not labels or not groups:
        return None
    ncols = min(4, len(labels))
    nrows = math.ceil(len(labels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols + 1.8, 3.1 * nrows), squeeze=False)
    colors = _colors(len(groups))
    n_bins = int(ev.config.get("ece_bins", 10))
    for ax, lab in zip(axes.ravel(), labels, strict=False):
        y = cur[f"y::{lab}"].to_numpy(dtype=float)
        s = cur[f"s::{lab}"].to_numpy(dtype=float)
        if kind != "roc":
            all_idx = np.clip((s * n_bins).astype(int), 0, n_bins - 1)
            counts = np.bincount(all_idx, minlength=n_bins)
            ax2 = ax.twinx()
            ax2.bar((np.arange(n_bins) + 0.5) / n_bins, counts, width=0.9 / n_bins, color="#ccc",
                    alpha=0.6, zorder=0)
            ax2.set_ylabel("rows per bin (all groups)", fontsize=7, color="#777")
            ax2.tick_params(labelsize=6, colors="#777")
            ax2.set_ylim(0, max(1, counts.max()) * 3.0)  # bars in the lower third
            for k, c in enumerate(counts):
                if c:
                    ax2.text((k + 0.5) / n_bins, c, _short_count(c), ha="center", va="bottom",
                             fontsize=5.5, color="#666", rotation=90)
            ax.set_zorder(ax2.get_zorder() + 1)
            ax.patch.set_visible(False)
        for gi, group in enumerate(groups):
            m = codes == index[group]
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
                ax.plot(mp, fo, "-", color=colors[gi], lw=1.0, label=str(group))
                ax.scatter(mp, fo, s=np.clip(4 + 60 * cnt[ok] / max(cnt.max(), 1), 4, 64),
                           color=colors[gi], zorder=3)
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
    fig.tight_layout()
    handles, names = axes.ravel()[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, title=attribute, loc="center left", fontsize=8,
                   bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig


def _short_count(c: int) -> str:
    """``950``, ``2.6k``, ``1.2M`` (bin counts on a reliability diagram)."""
    c = int(c)
    if c < 1000:
        return str(c)
    if c < 1_000_000:
        return f"{c / 1000:.1f}k".replace(".0k", "k")
    return f"{c / 1e6:.1f}M".replace(".0M", "M")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", str(text)).strip("_") or "attribute"


class _FigureSink:
    """Renders each figure once to PNG (embedded in the page) and, with ``directory``, also
    writes it as ``<name>.png`` and ``<name>.svg`` there."""

    def __init__(self, directory: Path | None):
        self.directory = None if directory is None else Path(directory)
        self.files: list[str] = []
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def html(self, fig, name: str, *, alt: str, caption: str):
        from markupsafe import Markup

        plt = _mpl()
        buf = io.BytesIO()
        # the tight bounding box once, for both formats (each "tight" save would lay out again)
        bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1)
        fig.savefig(buf, format="png", dpi=110, bbox_inches=bbox)
        files = []
        if self.directory is not None:
            (self.directory / f"{name}.png").write_bytes(buf.getvalue())
            fig.savefig(self.directory / f"{name}.svg", format="svg", bbox_inches=bbox)
            files = [f"{self.directory.name}/{name}.png", f"{self.directory.name}/{name}.svg"]
            self.files.extend(files)
        plt.close(fig)
        uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        return Markup(figure_html(None, uri=uri, alt=alt, caption=caption, files=files))


# -- tables ----------------------------------------------------------------------------------------


def _thresholds_table(ev):
    from markupsafe import Markup

    t = ev.thresholds.copy()
    if t.empty:
        return ""
    show = pd.DataFrame({
        "label": t["label"], "threshold": t["threshold"].astype(float), "rule": t["rule"],
        "chosen on split": t["chosen_on_split"].fillna("— (fixed)").astype(str),
        "rows used": t["n_rows_chosen_on"].astype(int),
    })
    return Markup(table_html(show, left=("label", "rule", "chosen on split"), thousands=True))


def _summary_table(ev):
    from markupsafe import Markup

    s = ev.summary_table
    s = s[s["metric"].isin(_SUMMARY_KEYS)]
    if s.empty:
        return Markup("<p>No summaries.</p>")
    s = s.assign(value=[_with_ci(e, lo, hi) for e, lo, hi in
                        zip(s["estimate"], s["ci_low"], s["ci_high"], strict=True)])
    wide = s.pivot_table(index=["label", "attribute"], columns="metric", values="value",
                         aggfunc="first", sort=False)
    wide = wide[[m for m in _SUMMARY_KEYS if m in wide.columns]].reset_index().fillna("—")
    return Markup(table_html(wide, left=("label", "attribute")))


def by_group_wide(ev, label: str, metrics=_TABLE_METRICS) -> pd.DataFrame:
    """One label's per-group table, one row per (attribute, group), cells formatted as
    ``estimate [low, high]`` (counts with thousand separators; suppressed cells say so)."""
    t = ev.by_group[(ev.by_group["label"] == label) & ev.by_group["metric"].isin(metrics)]
    if t.empty:
        return pd.DataFrame()
    t = t.assign(value=[
        ("suppressed" if str(r).startswith("suppressed") else
         (_count(e) if m in ("n", "positives") else _with_ci(e, lo, hi)))
        for e, lo, hi, r, m in zip(t["estimate"], t["ci_low"], t["ci_high"], t["reason"],
                                   t["metric"], strict=True)])
    wide = t.pivot_table(index=["attribute", "group"], columns="metric", values="value",
                         aggfunc="first", sort=False)
    cols = [m for m in metrics if m in wide.columns]
    return wide[cols].reset_index().fillna("—")


def _by_group_table(ev, label: str, *, max_rows: int = 500):
    from markupsafe import Markup

    wide = by_group_wide(ev, label)
    if wide.empty:
        return ""
    return Markup(table_html(wide, left=("attribute", "group"), right=_TABLE_METRICS,
                             max_rows=max_rows))


def _underdiagnosis_table(ev):
    from markupsafe import Markup

    t = ev.by_group[(ev.by_group["label"] == "any_finding")
                    & (ev.by_group["metric"] == "underdiagnosis_rate")]
    t = t.assign(value=[_with_ci(e, lo, hi) for e, lo, hi in
                        zip(t["estimate"], t["ci_low"], t["ci_high"], strict=True)],
                 n=[_count(v) for v in t["n"]])
    return Markup(table_html(t[["attribute", "group", "metric", "value", "n", "reason"]],
                             left=("attribute", "group", "metric", "value", "reason"),
                             right=("n",)))


def _meta(ev) -> dict:
    info = ev.info
    cfg = ev.config
    return {
        "source": info.get("source"), "fingerprint": str(info.get("fingerprint"))[:23],
        "n_rows": _count(info.get("n_rows", 0)), "split": info.get("report_split"),
        "n_report": _count(info.get("n_report_rows", 0)),
        "n_boot": int(cfg.get("bootstrap", 0)), "conf": f"{float(cfg.get('confidence', 0.95)):.0%}",
        "cluster": cfg.get("cluster"), "ci_method": cfg.get("ci_method"), "seed": cfg.get("seed"),
        "gap_desc": ("simultaneous pairwise-difference intervals, 0 at the bottom when no two "
                     "groups differ significantly" if cfg.get("gap_ci", "pairwise") == "pairwise"
                     else "percentile interval of max - min"),
        "one_step": "one_step" in (info.get("uncertainty", {}).get("calibration_bootstrap") or []),
    }


def _findings_context(ev) -> dict:
    finfo = getattr(ev, "findings_info", {}) or {}
    return {
        "rule": finfo.get("headline_rule", ""), "ranking": finfo.get("ranking", ""),
        "test": finfo.get("test", ""), "readings": gap_readings(ev),
        "adjustment": finfo.get("adjustment_description", "family-wise"),
        "family": f"{int(finfo.get('family_size', 0)):,}", "too_few": too_few_readings(ev),
    }


# -- pages -----------------------------------------------------------------------------------------


def evaluation_report_html(ev, *, figures_dir: str | Path | None = None) -> str:
    """The full self-contained HTML report of an :class:`~fairfoundry.Evaluation`.

    With ``figures_dir`` every figure is also written there as ``<name>.png`` and ``<name>.svg``
    (the report names the files under each figure)."""
    from markupsafe import Markup

    labels = list(ev.labels)
    per_label = _per_label(ev)
    conf = float(ev.config.get("confidence", 0.95))
    n_boot = int(ev.config.get("bootstrap", 0))
    sink = _FigureSink(figures_dir)
    ci_txt = f" with {conf:.0%} bootstrap CIs" if n_boot else ""

    series = ([lab for lab in labels] if len(labels) <= _MAX_SERIES_LABELS
              else (["macro"] if "macro" in per_label else labels[:1]))
    attributes = []
    for i, attr in enumerate(ev.attributes):
        slug = f"{i + 1:02d}_{_slug(attr)}"
        figs = []
        groups, total = top_groups(ev, attr, TOP_GROUPS)
        which = (f"label {series[0]}" + (" (mean over labels)" if series == ["macro"] else "")
                 if len(series) == 1 else "one series per label")
        fig = _group_metric_figure(ev, attr, series, groups)
        if fig is not None:
            figs.append(sink.html(fig, f"{slug}_metrics", alt=f"metrics by {attr}",
                                  caption=f"Per-group estimates by {attr}{ci_txt}, {which}."
                                  + _shown_note(len(groups), total)))
        fig = _forest_figure(ev, attr, [lab for lab in per_label if lab != "any_finding"])
        if fig is not None:
            figs.append(sink.html(fig, f"{slug}_gaps", alt=f"forest plot of gaps by {attr}",
                                  caption=f"Gaps between groups of {attr}"
                                  + (f" with {conf:.0%} CIs" if n_boot else "")
                                  + "; a CI crossing 0 means no clear difference."))
        cgroups, _ = top_groups(ev, attr, TOP_CURVE_GROUPS)
        note = _shown_note(len(cgroups), total)
        fig = _curve_panels(ev, attr, "roc", cgroups)
        if fig is not None:
            figs.append(sink.html(fig, f"{slug}_roc", alt=f"ROC curves by {attr}",
                                  caption=f"ROC curves by {attr} on the reported rows." + note))
        fig = _curve_panels(ev, attr, "calibration", cgroups)
        if fig is not None:
            figs.append(sink.html(
                fig, f"{slug}_calibration", alt=f"calibration curves by {attr}",
                caption=f"Reliability diagrams by {attr} ({ev.config.get('ece_bins')} equal-width "
                        "bins; a group's point is drawn where its bin has >= 5 rows, its area "
                        "grows with the bin's rows; grey bars: rows per bin over all groups, "
                        "right axis)." + note))
        attributes.append({"name": attr, "figures": figs, "n_groups": f"{total:,}"})

    main_label = "macro" if "macro" in per_label else (labels[0] if labels else per_label[0])
    tables = []
    for lab in [main_label, *[x for x in per_label if x not in (main_label, "any_finding")]]:
        tab = _by_group_table(ev, lab)
        if tab:
            tables.append({"label": lab, "table": tab, "open": lab == main_label,
                           "note": " (mean over labels)" if lab == "macro" else ""})
    config = ev.summary["config"]
    ctx = {
        "threshold_on_report_split": bool(ev.info.get("threshold_on_report_split")),
        "meta": _meta(ev), "findings": _findings_context(ev), "conf": f"{conf:.0%}",
        "thresholds": _thresholds_table(ev), "warnings": list(ev.warnings),
        "suppressed": (Markup(table_html(pd.DataFrame(ev.suppressed),
                                         left=tuple(pd.DataFrame(ev.suppressed).columns)))
                       if ev.suppressed else ""),
        "min_group_size": ev.config.get("min_group_size"),
        "summary": _summary_table(ev), "attributes": attributes, "tables": tables,
        "underdiagnosis": _underdiagnosis_table(ev) if "any_finding" in per_label else "",
        "config": Markup(table_html(pd.DataFrame({"option": list(config),
                                                  "value": [json.dumps(v) for v in
                                                            config.values()]}),
                                    left=("option", "value"))),
        "versions": ", ".join(f"{k} {v}" for k, v in ev.versions.items() if v),
        "figure_files": sink.files,
    }
    body = templates().get_template("evaluation.html.j2").render(**ctx)
    subtitle = (f"{len(labels)} label(s): {', '.join(labels[:6])}{', ...' if len(labels) > 6 else ''}"
                f" · attributes: {', '.join(ev.attributes)}")
    return render_page("Fairness evaluation", body, subtitle=subtitle)


def evaluation_summary_html(ev, *, max_rows: int = 40) -> str:
    """A compact HTML fragment of an evaluation (no figures): the findings in words, the summary
    of gaps and the main label's per-group table, cut at ``max_rows`` rows. This is what
    Jupyter shows for an :class:`~fairfoundry.Evaluation` (``_repr_html_``)."""
    from markupsafe import Markup

    labels = list(ev.labels)
    per_label = _per_label(ev)
    main_label = "macro" if "macro" in per_label else (labels[0] if labels else per_label[0])
    wide = by_group_wide(ev, main_label)
    ctx = {
        "meta": _meta(ev), "findings": _findings_context(ev),
        "conf": f"{float(ev.config.get('confidence', 0.95)):.0%}",
        "labels": labels, "attributes": ev.attributes, "main_label": main_label,
        "summary": _summary_table(ev),
        "table": (Markup(table_html(wide, left=("attribute", "group"), right=_TABLE_METRICS,
                                    max_rows=max_rows)) if not wide.empty else ""),
        "n_warnings": len(ev.warnings),
    }
    return templates().get_template("evaluation_summary.html.j2").render(**ctx)
