"""Experiment ``synthetic-pilot``: does generating images for the smallest subgroup narrow a fairness gap?

The review's experiment 3 (after RoentGen-v2 and Ktena et al. 2024), on the bundled real NIH
X-rays (:func:`fairfoundry.datasets.nih_images`; 155 train / 75 val / 70 test patients) or any
manifest with images, a 0/1 label and one protected attribute:

1. train the conditional generator (:func:`train_generator`) on the train split, conditioned on
   label x attribute;
2. generate images for the smallest label x attribute cell(s) of the train split, enough to bring
   each to the size of the largest cell;
3. quality-control them (:func:`run_qc`) and keep only those that pass (attribute and label
   classifiers agree, not a copy);
4. embed every image with one zoo encoder, all at the generator's resolution (so that real and
   synthetic images are seen alike), and train the probe with the library function ``fairfoundry
   fit`` uses, for every seed, in four arms with the same optimizer steps: real only (ERM),
   oversampling (group x label resampling), reweighing, and real + accepted synthetic (ERM);
   checkpoints are chosen on validation;
5. evaluate each run on the real test split with :func:`fairfoundry.evaluate` (bootstrap CIs),
   and summarise the gap change against real only over seeds (paired mean with a t interval),
   with a verdict that says "too few to judge" when the test split cannot support one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError
from ..metrics import t_interval as _t_interval  # mean and Student-t interval over seeds

__all__ = ["PILOT_FILES", "synthetic_pilot"]

log = logging.getLogger(__name__)

#: files at the top of the pilot's output directory (plus generator/, samples/, qc/, runs/)
PILOT_FILES = ("arms.csv", "summary.csv", "delta.csv", "pilot.html", "pilot.json")

#: the comparison arms: name -> (manifest, mitigation)
ARMS = {"real-only": ("real", "erm"), "oversampling": ("real", "resample-group-label"),
        "reweighing": ("real", "reweigh"), "synthetic": ("augmented", "erm")}

#: fewest test positives in every group for a verdict on a gap of true-positive-based metrics
MIN_EVENTS = 10


def _fit(config: dict, out: Path) -> Path:
    """The one call site of the shared training pipeline (``fairfoundry fit``'s library function)."""
    from ..pipeline import FitConfig, fit_run

    return fit_run(FitConfig(**config), out)



def _targets(m, *, label: str, attribute: str, target_cells: int, where: str) -> list[tuple[str, str, int]]:
    """The smallest ``target_cells`` label x attribute cells of the train split and how many images
    bring each to the size of the largest cell: ``[(label value, group, n), ...]``."""
    from ..synth._conditions import _norm
    from ..synth._qc import _cell_groups

    tr = m[m["split"].astype(str) == "train"]
    tr = tr.assign(**{c: tr[c].map(_norm) for c in (label, attribute)})
    tr = tr[~tr[label].isin(["", "unknown"]) & ~tr[attribute].isin(["", "unknown"])]
    if len(tr) == 0:
        raise FairfoundryError(f"the train split of {where} has no row with {label} and {attribute} known")
    codes, _ = _cell_groups(tr, [label, attribute])
    counts = np.bincount(codes)
    order = [g for g in np.argsort(counts, kind="stable") if counts[g] > 0]
    if len(order) < 2:
        raise FairfoundryError(f"the train split of {where} has fewer than two known {label} x {attribute} cells")
    largest = int(counts.max())
    first = {g: tr.iloc[int(np.flatnonzero(codes == g)[0])] for g in order}
    targets = [(first[g][label], first[g][attribute], largest - int(counts[g])) for g in order[:target_cells]
               if largest > counts[g]]
    if not targets:
        raise FairfoundryError(f"every {label} x {attribute} cell of the train split of {where} has {largest} "
                               "images: there is no smaller subgroup to generate for")
    return targets


def synthetic_pilot(out: str | os.PathLike, *, manifest: str | os.PathLike | None = None, label: str = "Infiltration",
                    attribute: str = "sex", encoder: str = "fairfoundry-tiny", seeds: Sequence[int] = (0, 1, 2, 3, 4),
                    generator_settings: dict | None = None, target_cells: int = 1, guidance: float = 2.0,
                    sample_steps: int = 20, probe_epochs: int = 200, probe_lr: float = 3e-3, bootstrap: int = 200,
                    device: str = "cpu", overwrite: bool = False, progress=None) -> Path:
    """Run the synthetic-augmentation pilot and write ``out`` (see the module docstring).

    Parameters
    ----------
    out : output directory (new or empty unless ``overwrite``).
    manifest : manifest with ``sample_id``, ``path``, ``split`` (train/val/test), ``label`` and
        ``attribute`` (default: the bundled NIH X-rays).
    label, attribute : the 0/1 label and the protected attribute of the cells.
    encoder : zoo encoder of the probe's features and of the QC.
    seeds : one probe run per seed and arm (the generator is trained once, with seed 0 unless
        ``generator_settings`` says otherwise).
    generator_settings : :class:`DiffusionConfig` fields (default: 32 px, 300 steps).
    target_cells : how many of the smallest label x attribute cells get synthetic images.
    probe_epochs : full-batch AdamW steps of every probe (one step per epoch in every arm).

    Returns
    -------
    pathlib.Path of ``out``.
    """
    import pandas as pd

    from .._io import (
        file_fingerprint,
        prepare_out_dir,
        staged_dir,
        write_sidecar,
        write_table_atomic,
    )
    from ..data import read_manifest
    from ..models import load_encoder
    from ..synth._api import sample_generator, train_generator
    from ..synth._conditions import _norm
    from ..synth._images import resolve_paths
    from ..synth._qc import _cell_groups, embed_images, run_qc

    if len(seeds) < 1:
        raise FairfoundryError("the pilot needs at least one seed")
    if manifest is None:
        from ..datasets import nih_images

        manifest = nih_images()
    manifest = Path(manifest)
    m = read_manifest(manifest, required=("sample_id", "path", "split", label, attribute)).copy()
    m["path"] = [str(p.resolve()) for p in resolve_paths(m, manifest)]
    if "patient_id" not in m.columns:
        m["patient_id"] = m["sample_id"]
    splits = set(m["split"].astype(str))
    if not {"train", "val", "test"} <= splits:
        raise FairfoundryError(f"manifest {manifest} needs train, val and test splits; it has {sorted(splits)}")
    targets = _targets(m, label=label, attribute=attribute, target_cells=target_cells, where=str(manifest))
    spec = ";".join(f"{label}={lab},{attribute}={grp}:{n}" for lab, grp, n in targets)
    settings = {"image_size": 32, "steps": 300, **(generator_settings or {}), "device": device}
    out = prepare_out_dir(out, overwrite=overwrite, outputs=None)
    with staged_dir(out) as stage:
        write_table_atomic(stage / "manifest.csv", m)
        gen_dir = train_generator(stage / "manifest.csv", condition=[label, attribute], out=stage / "generator",
                                  settings=settings, split="train", progress=progress)
        sample_generator(gen_dir, cells=spec, out=stage / "samples", seed=0, guidance=guidance,
                         sample_steps=sample_steps, device=device)
        run_qc(stage / "manifest.csv", stage / "samples" / "manifest.csv", out=stage / "qc", conditions=[label, attribute],
               encoder=encoder, generator=gen_dir, device=device)
        qc = pd.read_csv(stage / "qc" / "qc.csv")
        acc = pd.read_csv(stage / "qc" / "accepted.csv")
        # features of every image at the generator's resolution, once
        enc = load_encoder(encoder, device=device)
        size = int(settings["image_size"])
        xr = embed_images(m["path"], enc, size=size, channels=1)
        syn = pd.DataFrame({"sample_id": acc["sample_id"].astype(str), "path": acc["path"], label: acc[label],
                            attribute: acc[attribute], "split": "train", "patient_id": acc["sample_id"].astype(str),
                            "synthetic": 1})
        xs = embed_images(syn["path"], enc, size=size, channels=1) if len(syn) else np.zeros((0, xr.shape[1]))
        real = m[["sample_id", "patient_id", "path", "split", label, attribute]].assign(synthetic=0)
        aug = pd.concat([real, syn[real.columns]], ignore_index=True)
        data = {"real": (real, xr), "augmented": (aug, np.concatenate([xr, xs]))}
        for name, (frame, x) in data.items():
            write_table_atomic(stage / "runs" / f"{name}_manifest.csv", frame)
            np.save(stage / "runs" / f"{name}_embeddings.npy", x.astype(np.float32))
        n_max = max(len(f) for f, _ in data.values())
        rows = []
        for data_name in ("real", "augmented"):
            methods = [mit for arm, (d, mit) in ARMS.items() if d == data_name]
            run_dir = stage / "runs" / data_name
            _fit({"manifest": str(stage / "runs" / f"{data_name}_manifest.csv"),
                  "embeddings": str(stage / "runs" / f"{data_name}_embeddings.npy"), "label": label,
                  "sensitive": [attribute], "head": "linear", "methods": methods, "seeds": list(seeds),
                  "epochs": probe_epochs, "batch_size": n_max, "lr": probe_lr, "optimizer": "adamw",
                  "patience": None, "select": "overall_auc", "bootstrap": bootstrap, "device": device,
                  "emissions": False, "html": False}, run_dir)
            comp = pd.read_csv(run_dir / "comparison.csv")
            for arm, (d, mit) in ARMS.items():
                if d == data_name:
                    rows.append(comp[comp["method"] == mit].assign(arm=arm))
        arms = pd.concat(rows, ignore_index=True)
        metrics = ["auc", f"{attribute}:auc_gap", f"{attribute}:auc_worst_group",
                   f"{attribute}:equal_opportunity_difference"]
        metrics = [c for c in metrics if c in arms.columns]
        summary = []
        for arm in ARMS:
            sub = arms[arms["arm"] == arm]
            row = {"arm": arm, "seeds": len(sub)}
            for c in metrics:
                mean, lo, hi = _t_interval(sub[c])
                row.update({c: mean, f"{c}_seed_ci_low": lo, f"{c}_seed_ci_high": hi})
                if f"{c}_ci_low" in sub.columns:
                    row[f"{c}_median_bootstrap_ci_width"] = float((sub[f"{c}_ci_high"] - sub[f"{c}_ci_low"]).median())
            summary.append(row)
        summary = pd.DataFrame(summary)
        base = arms[arms["arm"] == "real-only"].set_index("seed")
        delta = []
        for arm in ARMS:
            if arm == "real-only":
                continue
            sub = arms[arms["arm"] == arm].set_index("seed")
            for c in metrics:
                d = (sub[c] - base[c]).dropna()
                mean, lo, hi = _t_interval(d)
                delta.append({"arm": arm, "metric": c, "change_vs_real_only": mean, "ci_low": lo, "ci_high": hi,
                              "seeds": len(d)})
        delta = pd.DataFrame(delta)
        test = m[m["split"].astype(str) == "test"]
        tcodes, tnames = _cell_groups(test.assign(**{attribute: test[attribute].map(_norm)}), [attribute])
        pos = pd.to_numeric(test[label], errors="coerce").fillna(0).to_numpy()
        events = {tnames[g]: int(pos[tcodes == g].sum()) for g in range(len(tnames))}
        verdict = _verdict(delta, summary, events, attribute, label, qc, len(acc))
        write_table_atomic(stage / "arms.csv", arms, report=True)
        write_table_atomic(stage / "summary.csv", summary, report=True)
        write_table_atomic(stage / "delta.csv", delta, report=True)
        from ..synth._report import render_pilot_html

        qc_cols = [c for c in qc.columns if not c.endswith("_std")]
        render_pilot_html(stage / "pilot.html", context={
            "label": label, "attribute": attribute, "manifest": str(manifest), "encoder": encoder,
            "seeds": ", ".join(map(str, seeds)), "cells_spec": spec, "n_accepted": int(len(acc)),
            "n_generated": int(qc["n_synthetic"].sum()), "verdict": verdict, "events": events,
            "generator": {k: settings[k] for k in ("image_size", "steps")}, "probe_epochs": probe_epochs,
            "arms": summary, "delta": delta, "qc": qc[qc_cols]})
        write_sidecar(stage / "pilot.json", kind="fairfoundry.experiment.synthetic-pilot", seed=int(seeds[0]),
                      config={"label": label, "attribute": attribute, "encoder": encoder, "seeds": list(seeds),
                              "generator_settings": settings, "target_cells": target_cells, "guidance": guidance,
                              "sample_steps": sample_steps, "probe_epochs": probe_epochs, "probe_lr": probe_lr,
                              "bootstrap": bootstrap, "cells": spec},
                      inputs={"manifest": str(manifest), "manifest_sha256": file_fingerprint(manifest)},
                      verdict=verdict, test_positives_per_group=events)
    return out


def _verdict(delta, summary, events, attribute, label, qc, n_accepted) -> str:
    """One honest sentence per finding, backed by intervals and event counts."""
    parts = []
    if n_accepted == 0:
        parts.append("No synthetic image passed quality control, so the synthetic arm is real-only data: "
                     "nothing can be learned about augmentation from this run.")
    else:
        parts.append(f"{n_accepted} of {int(qc['n_synthetic'].sum())} synthetic images passed quality control "
                     f"(pass rate {qc['qc_pass_rate'].mean():.0%}).")
    fewest = min(events.values()) if events else 0
    gap = f"{attribute}:auc_gap"
    row = delta[(delta["arm"] == "synthetic") & (delta["metric"] == gap)]
    if fewest < MIN_EVENTS:
        parts.append(f"Too few to judge: the real test split has only {fewest} {label} positives in its smallest "
                     f"{attribute} group (at least {MIN_EVENTS} are needed for a verdict), and the per-run bootstrap "
                     "intervals of the gap are wide; the numbers below describe this run, not the method.")
    if len(row):
        r = row.iloc[0]
        if not np.isfinite(r["ci_low"]):
            parts.append("The gap change has no interval (fewer than two seeds).")
        elif r["ci_low"] > 0:
            parts.append(f"Over seeds the AUC gap widened with synthetic data by {r['change_vs_real_only']:.3f} "
                         f"(95 % t interval {r['ci_low']:.3f} to {r['ci_high']:.3f}); this interval reflects probe "
                         "training randomness on one test split only.")
        elif r["ci_high"] < 0:
            parts.append(f"Over seeds the AUC gap narrowed with synthetic data by {-r['change_vs_real_only']:.3f} "
                         f"(95 % t interval {r['ci_low']:.3f} to {r['ci_high']:.3f}); this interval reflects probe "
                         "training randomness on one test split only.")
        else:
            parts.append(f"Over seeds the AUC gap change with synthetic data is {r['change_vs_real_only']:.3f} "
                         f"(95 % t interval {r['ci_low']:.3f} to {r['ci_high']:.3f}): no detectable change.")
    return " ".join(parts)
