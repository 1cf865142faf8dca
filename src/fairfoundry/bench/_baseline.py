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
BASELINE_FILES = ("manifest.csv", "attribute_probe.csv", "per_group.csv", "baseline_audit.html", "experiment.json")


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
        write_table_atomic(stage / "attribute_probe.csv", probe.table)
        per_group = _per_group_table(stage / "run" / "evaluation" / "evaluation.csv", stage / "run" / "evaluation" /
                                     "summary.json")
        write_table_atomic(stage / "per_group.csv", per_group)
        write_text_atomic(stage / "baseline_audit.html", _report(m, probe.table, per_group, cfg, labels, sensitive))
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
    cols = [c for c in ("label", "attribute", "group", "n", "positives", "auc", "auc_ci_low", "auc_ci_high", "tpr",
                        "tpr_ci_low", "tpr_ci_high", "fpr", "fpr_ci_low", "fpr_ci_high", "auc_gap_of_attribute")
            if c in table.columns]
    return table[cols]


def _report(m, probe_table, per_group, cfg, labels, sensitive) -> str:
    from ..report._html import esc, render_page, table_html

    counts = m.groupby(["split", "sex"] if "sex" in m.columns else ["split"]).size().reset_index(name="n")
    body = [
        "<p class='meta'>Baseline fairness audit before any intervention: what the encoder's features "
        f"encode about {esc(', '.join(sensitive))}, and how a linear probe on them performs per group. "
        f"Encoder <code>{esc(cfg.encoder)}</code>; labels {esc(', '.join(labels))}; patient-level split "
        "60/20/20 stratified by the first label and sex; checkpoint and thresholds chosen on validation; "
        f"test metrics with {cfg.bootstrap} bootstrap resamples (95% CIs).</p>",
        "<div class='warn'>Small test groups give wide intervals: an interval that includes 0 does not show "
        "the absence of a gap.</div>",
        "<h2>Data</h2>", table_html(counts, left=["split", "sex"]),
        "<h2>Attribute probe: can the features tell the groups apart?</h2>",
        "<p>Cross-validated linear probe AUC of each attribute from the embeddings (0.5 = not encoded).</p>",
        table_html(probe_table[[c for c in ("attribute", "n", "n_groups", "auc", "ci_low", "ci_high", "balanced_accuracy")
                                if c in probe_table.columns]], left=["attribute"]),
        "<h2>Linear probe per group (test)</h2>",
        table_html(per_group, left=["label", "attribute", "group"]),
        "<h2>Files</h2><ul class='reading'>"
        "<li><code>run/predictions.parquet</code>: per-sample scores, every split</li>"
        "<li><code>run/evaluation/report.html</code>: full evaluation with plots</li>"
        "<li><code>run/model_card.md</code>: model card with emissions</li>"
        "<li><code>attribute_probe.csv</code>, <code>per_group.csv</code>: the tables above</li></ul>",
    ]
    return render_page("Baseline fairness audit", "\n".join(body))

