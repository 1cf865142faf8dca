"""The report of a pre-training or distillation run: ``report.html`` (jinja2, autoescaped) and
``curves.svg`` (loss, and with a probe: overall AUC, worst-group AUC and attribute leakage over
the steps, each with its bootstrap CI band; the selected step marked)."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["write_run_report", "curves_figure"]


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, (float, np.floating)):
        return "—" if math.isnan(float(v)) else f"{float(v):.{digits}g}"
    return str(v)


def _ci(est, lo, hi) -> str:
    if est is None or (isinstance(est, float) and math.isnan(est)):
        return "—"
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):
        return f"{est:.3f}"
    return f"{est:.3f} [{lo:.3f}, {hi:.3f}]"


def curves_figure(loss_log: pd.DataFrame, probe: pd.DataFrame | None = None, *, selected_step: int | None = None):
    """A matplotlib figure: loss; overall AUC; worst-group AUC; leakage AUC (CI bands)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = 1 if probe is None or probe.empty else 4
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.3), squeeze=False)
    axes = axes[0]
    ax = axes[0]
    ax.plot(loss_log["step"], loss_log["loss"], color="#3a78d8", lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("loss")
    if panels == 1:
        fig.tight_layout()
        return fig

    def band(ax, part, label, color):
        part = part.sort_values("step")
        x = part["step"].to_numpy()
        ax.plot(x, part["estimate"], marker="o", ms=3, lw=1.3, label=label, color=color)
        lo, hi = part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float)
        if np.isfinite(lo).any():
            ax.fill_between(x, lo, hi, alpha=0.2, color=color, lw=0)

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    o = probe[(probe["metric"] == "auc") & (probe["attribute"] == "overall")]
    band(axes[1], o, "overall", colors[0])
    axes[1].set_title("probe AUC, overall (95% CI)")
    w = probe[(probe["metric"] == "worst_group_auc")]
    band(axes[2], w, "worst group (any attribute)", colors[3])
    for k, (attr, part) in enumerate(probe[probe["metric"] == "auc_worst_group"].groupby("attribute", sort=False)):
        if "&" in attr:
            continue
        axes[2].plot(part["step"], part["estimate"], lw=0.8, ls="--", color=colors[(k + 4) % len(colors)],
                     label=f"worst {attr}")
    axes[2].set_title("probe AUC, worst group (95% CI)")
    for k, (attr, part) in enumerate(probe[probe["metric"] == "leakage_auc"].groupby("attribute", sort=False)):
        band(axes[3], part, attr, colors[(k + 1) % len(colors)])
    axes[3].axhline(0.5, color="#888", lw=0.8, ls=":")
    axes[3].set_title("attribute leakage AUC (chance 0.5)")
    for ax in axes[1:]:
        ax.set_xlabel("step")
        ax.set_ylim(0.0, 1.02)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes:
        if selected_step is not None:
            ax.axvline(selected_step, color="#c22", lw=0.9, ls="--")
    fig.tight_layout()
    return fig


def _table(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    return [str(c) for c in frame.columns], [[_fmt(v) for v in r] for r in frame.itertuples(index=False)]


def write_run_report(out: str | Path, *, kind: str, config: dict, summary: dict) -> Path:
    """Write ``out/curves.svg`` and ``out/report.html`` from the run's files and summary."""
    import jinja2

    from .. import __version__
    from .._io import write_atomic, write_text_atomic
    from ..report import figure_to_data_uri

    out = Path(out)
    loss = pd.read_csv(out / "loss_log.csv")
    probe_path = out / "probe.csv"
    probe = pd.read_csv(probe_path, keep_default_na=False, na_values=[""]) if probe_path.exists() else None
    psum = summary.get("probe") or {}
    selected = psum.get("selected")
    sel_step = selected["step"] if selected else None
    fig = curves_figure(loss, probe, selected_step=sel_step)
    write_atomic(out / "curves.svg", lambda p: fig.savefig(p, format="svg", bbox_inches="tight"))
    uri = figure_to_data_uri(fig)
    notes = [f"{kind}: {summary.get('steps')} steps, loss {_fmt(summary.get('first_loss'))} -> "
             f"{_fmt(summary.get('final_loss'))}, {_fmt(summary.get('images_per_s'))} images/s on "
             f"{summary.get('device')}."]
    tables = []
    warnings = list(psum.get("warnings", []))
    if probe is not None and len(probe):
        notes.append(
            f"Fairness probe every {psum.get('every')} steps on {psum.get('n')} validation images of "
            f"{psum.get('manifest')} (label {psum.get('label')!r}): cross-validated logistic regression on the "
            "embeddings; AUC overall and per group with bootstrap 95% CIs; leakage = how well the attribute "
            f"itself is predicted (verdict: a permutation test across patients). {_fmt(psum.get('probe_seconds'), 3)} s spent probing.")
        if selected:
            notes.append(f"Selected checkpoint (encoder_selected.safetensors): step {selected['step']}, the best "
                         f"{selected['criterion']} on the validation probe ({selected['value']:.4f}).")
        last = int(probe["step"].max())
        lp = probe[probe["step"] == last]
        auc = lp[lp["metric"] == "auc"]
        tables.append({"title": f"Probe AUC by group at step {last}", "caption": "NaN cells give their reason.",
                       "columns": ["attribute", "group", "AUC [95% CI]", "n", "reason"],
                       "rows": [[r.attribute, r.group, _ci(r.estimate, r.ci_low, r.ci_high), str(r.n), r.reason]
                                for r in auc.itertuples(index=False)]})
        leak = lp[lp["metric"] == "leakage_auc"]
        pv = lp[lp["metric"] == "leakage_p_value"].set_index("attribute")
        tables.append({"title": f"Attribute leakage at step {last}",
                       "caption": "chance AUC 0.5; p: permutation test across patients (the verdict)",
                       "columns": ["attribute", "groups", "AUC", "p", "verdict", "n"],
                       "rows": [[r.attribute, r.group, _fmt(r.estimate, 3),
                                 _fmt(pv.loc[r.attribute, "estimate"], 3) if r.attribute in pv.index else "",
                                 str(pv.loc[r.attribute, "reason"]).split(" (")[0] if r.attribute in pv.index else "",
                                 str(r.n)] for r in leak.itertuples(index=False)]})
        if psum.get("history"):
            hist = pd.DataFrame(psum["history"])
            cols, rows = _table(hist)
            tables.append({"title": "Selection criteria by step", "caption": "dto: lower is better",
                           "columns": cols, "rows": rows})
    comp = summary.get("composition")
    if comp:
        cols, rows = _table(pd.DataFrame(comp))
        tables.append({"title": "Groups seen in training", "caption": "", "columns": cols, "rows": rows})
    env = jinja2.Environment(loader=jinja2.PackageLoader("fairfoundry.pretrain", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    files = [f for f in ("encoder.safetensors", "encoder_selected.safetensors", "loss_log.csv", "probe.csv",
                         "composition.csv", "curves.svg", "config.yaml", "run.json")
             if (out / f).exists() or f in ("encoder.safetensors", "run.json")]
    html = env.get_template("run_report.html.j2").render(
        title=f"fairfoundry {kind} run", version=__version__,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), seed=config.get("seed"),
        manifest=config.get("manifest"), notes=notes, warnings=warnings, figure=uri,
        caption="Loss, probe AUC overall and worst group, and attribute leakage by step (bands: 95% bootstrap "
                "CIs; dashed red line: the selected step)", tables=tables, files=files)
    return write_text_atomic(out / "report.html", html)
