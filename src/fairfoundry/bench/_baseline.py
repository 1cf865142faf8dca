"""Experiment ``baseline-audit``: the first step of a fairness study, before any intervention.

On the bundled real NIH X-rays (:func:`fairfoundry.datasets.nih_images`, 300 patients) or any
manifest with images:

1. a seeded, patient-level split stratified by label x sex (:func:`fairfoundry.data.patient_split`);
2. embeddings from one encoder of the zoo (cached extraction);
3. **attribute probe**: how well each protected attribute can be read from the embeddings
   (cross-validated linear probe AUC with CIs, :func:`fairfoundry.models.probe_attributes`);
4. **linear probe** of each label (ERM, checkpoint chosen on validation) and its per-group
   evaluation on test with bootstrap CIs (:func:`fairfoundry.evaluate`), model card, emissions;
5. one HTML report tying them together.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["baseline_audit", "BASELINE_FILES"]

log = logging.getLogger(__name__)

#: files the experiment writes at the top of its output directory (the fit run is in ``run/``)
BASELINE_FILES = ("manifest.csv", "attribute_probe.csv", "per_group.csv", "baseline_audit.html", "experiment.json",
                  "figures/attribute_probe.png", "figures/attribute_probe.svg")

#: fewest events (positives for TPR, negatives for FPR, both for AUC) for a group's value to be shown
MIN_EVENTS = 10

#: readable names of the per-group table's columns in the report
_READABLE = {"label": "label", "attribute": "attribute", "group": "group", "n": "test images",
             "positives": "positives", "negatives": "negatives", "auc": "AUC [95% CI]", "tpr": "TPR [95% CI]",
             "fpr": "FPR [95% CI]", "auc_gap_of_attribute": "AUC gap (max - min) of the attribute",
             "note": "note"}


def baseline_audit(out: str | os.PathLike, *, manifest: str | os.PathLike | None = None, encoder: str = "fairfoundry-tiny",
                   encoder_weights: str | None = None, encoder_kwargs: dict | None = None,
                   labels: Sequence[str] = ("Infiltration", "Atelectasis", "No_Finding"),
                   sensitive: Sequence[str] = ("sex", "age"), seed: int = 0, bootstrap: int = 500,
                   epochs: int = 30, device: str = "cpu", emissions: bool = True, overwrite: bool = False,
                   progress=None, allow_outside_root: bool = False) -> Path:
    """Run the baseline audit and write ``out`` (see the module docstring).

    Parameters
    ----------
    out : output directory (must be new or empty unless ``overwrite``).
    manifest : manifest with ``sample_id``, ``patient_id``, ``path``, the labels and attributes
        (default: the bundled NIH X-rays). An existing ``split`` column is replaced.
    encoder, encoder_weights, encoder_kwargs : the zoo encoder whose features are audited.
    labels : 0/1 label columns, each probed separately (one multi-label head).
    sensitive : protected attributes (``age`` is binned with the default edges 20, 40, 60, 80).
    seed : split, probe and training seed.
    bootstrap : resamples for the test CIs.
    allow_outside_root : accept relative image paths that climb out of the manifest's folder
        (refused by default, naming the row: :func:`fairfoundry.data.resolve_paths`).

    Returns
    -------
    pathlib.Path of ``out``.
    """
    import pandas as pd

    from .._io import (
        prepare_out_dir,
        staged_dir,
        write_sidecar,
        write_table_atomic,
        write_text_atomic,
    )
    from ..data import patient_split, read_manifest, resolve_paths
    from ..pipeline import FitConfig, fit_run

    out = prepare_out_dir(out, overwrite=overwrite, outputs=None)
    if manifest is None:
        from ..datasets import nih_images

        manifest = nih_images()
    manifest = Path(manifest)
    m = read_manifest(manifest, required=("sample_id", "path", *labels, *sensitive))
    m = m.copy()
    m["path"] = resolve_paths(m["path"], root=manifest.parent, source=f"manifest {manifest}",
                              allow_outside_root=allow_outside_root)
    if "patient_id" not in m.columns:
        m["patient_id"] = m["sample_id"]
    strat = [labels[0], "sex"] if "sex" in m.columns else [labels[0]]
    m["split"] = patient_split(m, ratios={"train": 0.6, "val": 0.2, "test": 0.2}, seed=seed, stratify=strat).to_numpy()
    with staged_dir(out) as stage:
        write_table_atomic(stage / "manifest.csv", m)
        cfg = FitConfig(manifest=str(stage / "manifest.csv"), encoder=encoder, encoder_weights=encoder_weights,
                        encoder_kwargs=encoder_kwargs or {}, label=list(labels), sensitive=list(sensitive),
                        head="linear", methods=["erm"], select="overall_auc", seeds=[seed], epochs=epochs,
                        bootstrap=bootstrap, device=device, emissions=emissions, batch_size=64, lr=1e-3)
        fit_run(cfg, stage / "run", progress=progress)
        from ..models import probe_attributes, read_embeddings

        ids, X, _ = read_embeddings(stage / "run" / "embeddings")
        pos = pd.Series(range(len(ids)), index=ids)
        X = X[pos.loc[m["sample_id"].astype(str)].to_numpy()]
        probe = probe_attributes(X, m, attributes=list(sensitive), seed=seed, n_boot=bootstrap)
        write_table_atomic(stage / "attribute_probe.csv", probe.table, report=True)
        per_group = _per_group_table(stage / "run" / "evaluation" / "evaluation.csv", stage / "run" / "evaluation" /
                                     "summary.json")
        write_table_atomic(stage / "per_group.csv", per_group, report=True)
        figures = _figures(stage / "figures", probe.table, per_group)
        write_text_atomic(stage / "baseline_audit.html", _report(m, probe.table, per_group, cfg, labels, sensitive,
                                                                 figures))
        write_sidecar(stage / "experiment.json", kind="fairfoundry.experiment.baseline-audit",
                      config={**cfg.model_dump(), "manifest": str(manifest)}, seed=seed,
                      inputs={"manifest": str(manifest)})
    return out


def _per_group_table(evaluation_csv: Path, summary_json: Path):
    import json

    import pandas as pd

    ev = pd.read_csv(evaluation_csv)
    ev = ev[ev["label"].astype(str).str.startswith("y_true")].copy()  # per-label rows (not macro / any_finding)
    ev["label"] = ev["label"].str.removeprefix("y_true_").replace({"y_true": "label"})
    keep = ev[ev["metric"].isin(["auc", "tpr", "fpr", "n", "positives"])]
    table = keep.pivot_table(index=["label", "attribute", "group"], columns="metric",
                             values=["estimate", "ci_low", "ci_high"], aggfunc="first")
    table.columns = [f"{m}" if s == "estimate" else f"{m}_{s}" for s, m in table.columns]
    table = table.reset_index()
    summ = json.loads(summary_json.read_text())
    gaps = {(str(r["label"]).removeprefix("y_true_"), r["attribute"]): r for r in summ["summaries"]
            if r["metric"] == "auc_gap"}
    table["auc_gap_of_attribute"] = [gaps.get((r.label, r.attribute), {}).get("estimate")
                                     for r in table.itertuples(index=False)]
    table["negatives"] = table["n"] - table["positives"]
    table = _too_few(table)
    cols = [c for c in ("label", "attribute", "group", "n", "positives", "negatives", "auc", "auc_ci_low",
                        "auc_ci_high", "tpr", "tpr_ci_low", "tpr_ci_high", "fpr", "fpr_ci_low", "fpr_ci_high",
                        "auc_gap_of_attribute", "note")
            if c in table.columns]
    return table[cols]


def _too_few(table):
    """Blank (NaN) every value resting on fewer than :data:`MIN_EVENTS` of its own events, and say
    why in ``note``: AUC needs positives and negatives, TPR positives, FPR negatives. An AUC of
    0 [0, 0] from one positive and one negative is not data."""
    import numpy as np

    table = table.copy()
    notes = [[] for _ in range(len(table))]
    pos, neg = table["positives"].to_numpy(float), table["negatives"].to_numpy(float)
    rules = (("auc", np.fmin(pos, neg), "positives or negatives"), ("tpr", pos, "positives"),
             ("fpr", neg, "negatives"))
    for metric, events, what in rules:
        if metric not in table.columns:
            continue
        few = ~(events >= MIN_EVENTS)
        cols = [c for c in (metric, f"{metric}_ci_low", f"{metric}_ci_high") if c in table.columns]
        table.loc[few, cols] = np.nan
        for i in np.flatnonzero(few):
            notes[i].append(f"{metric.upper()}: too few to judge (fewer than {MIN_EVENTS} {what})")
    if "auc_gap_of_attribute" in table.columns:  # a gap over groups that include a blanked AUC
        bad = table.groupby(["label", "attribute"])["auc"].transform(lambda v: v.isna().any()).astype(bool)
        table.loc[bad & (table["attribute"] != "overall"), "auc_gap_of_attribute"] = np.nan
    table["note"] = ["; ".join(n) for n in notes]
    return table


def _ci_text(est, lo, hi) -> str:
    import math

    if est is None or not math.isfinite(float(est)):
        return "n/a"
    if lo is None or hi is None or not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        return f"{float(est):.3f}"
    return f"{float(est):.3f} [{float(lo):.3f}, {float(hi):.3f}]"


def _readable(per_group):
    """The per-group table as the report shows it: one "estimate [CI]" cell per metric, counts
    with thousand separators, readable column names."""
    import pandas as pd

    out = pd.DataFrame({k: per_group[k] for k in ("label", "attribute", "group") if k in per_group.columns})
    for k in ("n", "positives", "negatives"):
        if k in per_group.columns:
            out[k] = [f"{int(v):,}" if pd.notna(v) else "n/a" for v in per_group[k]]
    for m in ("auc", "tpr", "fpr"):
        if m in per_group.columns:
            out[m] = [_ci_text(*v) for v in zip(per_group[m], per_group.get(f"{m}_ci_low"),
                                                 per_group.get(f"{m}_ci_high"), strict=True)]
    if "auc_gap_of_attribute" in per_group.columns:
        out["auc_gap_of_attribute"] = [_ci_text(v, None, None) if r != "overall" else ""
                                       for v, r in zip(per_group["auc_gap_of_attribute"], per_group["attribute"],
                                                       strict=True)]
    out["note"] = per_group["note"]
    return out.rename(columns=_READABLE)


def _figures(directory: Path, probe_table, per_group) -> dict:
    """Attribute-probe AUCs and per-group AUCs (forest plots), as PNG + SVG files; returns the
    matplotlib figures' data URIs for the HTML report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .._io import write_atomic
    from ..report._html import figure_to_data_uri

    directory.mkdir(parents=True, exist_ok=True)
    uris = {}

    def save(fig, name):
        for ext in ("png", "svg"):
            write_atomic(directory / f"{name}.{ext}", lambda tmp, ext=ext: fig.savefig(tmp, format=ext,
                                                                                     bbox_inches="tight"))
        uris[name] = figure_to_data_uri(fig)
        plt.close(fig)

    pt = probe_table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(5.2, 0.5 + 0.45 * max(len(pt), 1)))
    y = np.arange(len(pt))
    est = pt["auc"].to_numpy(float)
    err = np.abs(np.vstack([est - pt["ci_low"].to_numpy(float), pt["ci_high"].to_numpy(float) - est]))
    ax.errorbar(est, y, xerr=err, fmt="o", color="C0", capsize=3)
    ax.axvline(0.5, color="grey", ls="--", lw=1)
    ax.set_yticks(y, [str(a) for a in pt["attribute"]])
    ax.set_xlim(0, 1)
    ax.set_xlabel("attribute probe AUC, 95% CI (0.5: not encoded)")
    ax.invert_yaxis()
    save(fig, "attribute_probe")
    pg = per_group[per_group["attribute"] != "overall"]
    for label, part in pg.groupby("label", sort=False):
        part = part.reset_index(drop=True)
        fig, ax = plt.subplots(figsize=(6.0, 0.6 + 0.32 * len(part)))
        yy = np.arange(len(part))
        est = part["auc"].to_numpy(float)
        ok = np.isfinite(est)
        err = np.abs(np.vstack([est - part["auc_ci_low"].to_numpy(float), part["auc_ci_high"].to_numpy(float) - est]))
        ax.errorbar(est[ok], yy[ok], xerr=err[:, ok], fmt="o", color="C1", capsize=3)
        for k in np.flatnonzero(~ok):
            ax.text(0.5, yy[k], "too few to judge", va="center", ha="center", fontsize=8, color="grey")
        overall = per_group[(per_group["attribute"] == "overall") & (per_group["label"] == label)]["auc"]
        if len(overall) and np.isfinite(overall.iloc[0]):
            ax.axvline(float(overall.iloc[0]), color="k", lw=1, label="overall")
            ax.legend(fontsize=7, loc="lower right")
        ax.axvline(0.5, color="grey", ls="--", lw=1)
        ax.set_yticks(yy, [f"{a}: {g}" for a, g in zip(part["attribute"], part["group"], strict=True)])
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"{label}: test AUC per group, 95% CI")
        ax.invert_yaxis()
        save(fig, f"per_group_auc_{_slug(label)}")
    return uris


def _slug(text) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(text)).strip("_") or "label"


def _report(m, probe_table, per_group, cfg, labels, sensitive, figures: dict | None = None) -> str:
    from ..report._html import esc, render_page, table_html

    figures = figures or {}

    def fig(name, caption):
        if name not in figures:
            return ""
        return (f'<figure><img alt="{esc(caption)}" src="{figures[name]}"><figcaption>{esc(caption)} '
                f'(also <code>figures/{esc(name)}.png</code> / <code>.svg</code>)</figcaption></figure>')

    counts = m.groupby(["split", "sex"] if "sex" in m.columns else ["split"]).size().reset_index(name="images")
    probe_cols = {"attribute": "attribute", "n": "images", "n_groups": "groups", "auc": "probe AUC",
                  "ci_low": "95% CI low", "ci_high": "95% CI high", "balanced_accuracy": "balanced accuracy",
                  "p_value": "permutation p", "verdict": "verdict (permutation test)"}
    probe_shown = probe_table[[c for c in probe_cols if c in probe_table.columns]].rename(columns=probe_cols)
    per_label_figs = "".join(fig(f"per_group_auc_{_slug(lab)}", f"{lab}: test AUC per group with 95% CIs")
                             for lab in dict.fromkeys(per_group["label"]))
    body = [
        "<p class='meta'>Baseline fairness audit before any intervention: what the encoder's features "
        f"encode about {esc(', '.join(sensitive))}, and how a linear probe on them performs per group. "
        f"Encoder <code>{esc(cfg.encoder)}</code>; labels {esc(', '.join(labels))}; patient-level split "
        "60/20/20 stratified by the first label and sex; checkpoint and thresholds chosen on validation; "
        f"test metrics with {cfg.bootstrap} bootstrap resamples (95% CIs).</p>",
        "<div class='warn'>Small test groups give wide intervals: an interval that includes 0 does not show "
        f"the absence of a gap. A group with fewer than {MIN_EVENTS} positives (TPR), negatives (FPR) or "
        "either (AUC) in the test split is shown as “too few to judge”, not as a number.</div>",
        "<h2>Data</h2>", table_html(counts, left=["split", "sex"]),
        "<h2>Attribute probe: can the features tell the groups apart?</h2>",
        "<p>Cross-validated linear probe AUC of each attribute from the embeddings (0.5 = not encoded).</p>",
        fig("attribute_probe", "Attribute probe AUC with 95% CIs"),
        table_html(probe_shown, left=["attribute"]),
        "<h2>Linear probe per group (test)</h2>",
        per_label_figs,
        table_html(_readable(per_group), left=["label", "attribute", "group", "note"],
                   right=["test images", "positives", "negatives"]),
        "<h2>Files</h2><ul class='reading'>"
        "<li><code>run/predictions.parquet</code>: per-sample scores, every split</li>"
        "<li><code>run/evaluation/report.html</code>: full evaluation with plots</li>"
        "<li><code>run/model_card.md</code>: model card with emissions</li>"
        "<li><code>attribute_probe.csv</code>, <code>per_group.csv</code>: the tables above (values resting on "
        f"fewer than {MIN_EVENTS} events are empty, with the reason in <code>note</code>)</li>"
        "<li><code>figures/</code>: the plots as PNG and SVG</li></ul>",
    ]
    return render_page("Baseline fairness audit", "\n".join(body))
