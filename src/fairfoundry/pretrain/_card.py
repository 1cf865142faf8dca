"""The model card of a pre-training or distillation run (``OUT/model_card.md`` + ``.json``).

Written through the one card renderer (:func:`fairfoundry.report._card.write_card`, shared with
the cards of ``fit``): the objective, the data and the composition actually seen, seed and steps,
and, with ``--probe-every``, the probe's settings, the selection rule, the selected step and its
validation probe numbers with CIs (overall AUC, worst-group AUC, per-attribute gap, leakage), and
which splits the probe read.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

__all__ = ["write_run_card", "split_counts"]

#: the papers of the objectives (what the card names)
PAPERS = {"mae": "He et al., CVPR 2022", "simclr": "Chen et al., ICML 2020", "dino": "Caron et al., ICCV 2021",
          "ijepa": "Assran et al., CVPR 2023", "clip": "Radford et al., ICML 2021",
          "siglip": "Zhai et al., ICCV 2023", "distill": "AM-RADIO, Ranzinger et al., CVPR 2024"}


def split_counts(frame: pd.DataFrame, column: str = "split") -> dict[str, int] | None:
    """Rows per value of the pre-training manifest's split column (None without one)."""
    if column not in frame.columns:
        return None
    s = frame[column].astype(str).str.strip().str.lower()
    return {str(k): int(v) for k, v in s.value_counts().sort_index().items()}


def write_run_card(out: Path, *, kind: str, config: dict, summary: dict) -> dict:
    """Write ``model_card.md`` / ``model_card.json`` of a finished run into ``out``; return the card."""
    from .. import __version__
    from .._io import md_escape
    from ..report._card import card_code, card_value, emissions_lines, write_card
    from ._probe import probe_card_lines

    objective = config.get("objective", "distill") if kind == "pretrain" else "distill"
    seed, steps = config.get("seed"), summary.get("steps", config.get("steps"))
    title = (f"{objective} pre-training, seed {seed}" if kind == "pretrain"
             else f"distillation of {len(summary.get('teachers', []))} teachers, seed {seed}")
    probe = summary.get("probe")
    selected = (probe or {}).get("selected")
    export = summary.get("export") or {}
    splits = summary.get("manifest_splits")
    arch = {k: config.get(k) for k in ("model", "image_size", "patch_size", "embed_dim", "depth", "num_heads")}
    caveats = [
        "A pre-trained encoder, not a classifier: adapt it (`fairfoundry fit`) and evaluate the adapted model on "
        "a test split before any use; nothing here is a clinical validation.",
        "The probe numbers are a cross-validated linear probe of the frozen encoder on validation images: they "
        "compare checkpoints and groups, they do not estimate a deployed model's performance.",
        "Small groups have wide confidence intervals; an interval that includes 0 does not show fairness.",
    ]
    if splits and splits.get("test"):
        caveats.append(f"The pre-training manifest holds {splits['test']} rows of split 'test' and is trained on "
                       "whole: evaluate on images the encoder never saw.")
    if export.get("warning"):
        caveats.append(md_escape(export["warning"]))
    card = {
        "model_details": {
            "name": title, "kind": kind, "objective": objective, "paper": PAPERS.get(objective),
            "architecture": arch, "encoder_parameters": summary.get("encoder_parameters"),
            "exported_network": export.get("network"), "options": config.get("options"),
            "seed": seed, "steps": steps, "batch_size": config.get("batch_size"), "lr": config.get("lr"),
            "weights": "encoder.safetensors (the last step)",
            "selected_weights": (f"encoder_selected.safetensors (step {selected['step']})" if selected else None),
            "fairfoundry_version": __version__, "date": datetime.now(timezone.utc).date().isoformat(),
        },
        "intended_use": ("Research: an image encoder to embed, probe and adapt (fairfoundry embed / fit); "
                         "not a medical device, not for clinical decisions."),
        "training_data": {"manifest": str(config.get("manifest")), "n_images": summary.get("n_images"),
                          "manifest_splits": splits, "sampling": summary.get("sampler"),
                          "balance_by": config.get("balance_by"), "composition": summary.get("composition", [])},
        "fairness_probe": probe,
        "caveats_and_recommendations": caveats,
        "emissions": summary.get("emissions"),
    }
    details = [
        f"- Objective: {card_code(objective)} ({PAPERS.get(objective, 'see docs/pretrain.md')}); exported network: "
        f"{md_escape(export.get('network', 'student' if kind == 'distill' else 'encoder'))}",
        f"- Architecture: {card_code(arch['model'])} at {arch['image_size']} px"
        + "".join(f", {k} {v}" for k, v in arch.items() if k not in ("model", "image_size") and v is not None)
        + f"; {summary.get('encoder_parameters', 'n/a')} parameters",
        f"- Seed {seed}; {steps} steps of {config.get('batch_size')} images; lr {config.get('lr')}; "
        f"fairfoundry {__version__}",
        "- Weights: `encoder.safetensors` (the last step)"
        + (f"; `encoder_selected.safetensors` (step {selected['step']}, chosen by the validation probe's "
           f"`{selected['criterion']}`)" if selected else ""),
    ]
    if kind == "distill":
        details.append("- Teachers: " + ", ".join(
            f"{card_code(t.get('teacher'))} (weight {card_value(t.get('weight'))}"
            + (", dropped" if t.get("dropped") else "") + ")" for t in summary.get("teachers", [])))
    sampler = summary.get("sampler") or {}
    data = [f"- Manifest {card_code(Path(str(config.get('manifest'))).name)}: {summary.get('n_images')} images"
            + (f"; split column: {', '.join(f'{v} {md_escape(k)}' for k, v in splits.items())}" if splits else ""),
            f"- Sampling: {card_code(sampler.get('mode', config.get('sampling')))}"
            + (f" by {', '.join(config.get('balance_by') or [])}" if config.get("balance_by") else ""), "",
            "| attribute | group | n in manifest | fraction in manifest | fraction seen |", "|---|---|---:|---:|---:|"]
    data += [f"| {md_escape(r['attribute'])} | {md_escape(r['group'])} | {r['n_in_manifest']} | "
             f"{card_value(r['fraction_in_manifest'])} | {card_value(r['fraction_seen'])} |"
             for r in summary.get("composition", [])]
    if probe:
        sel_note = ("`encoder_selected.safetensors` holds the weights of that step; `encoder.safetensors` "
                    "the last step." if selected else "")
        probe_md = probe_card_lines(probe, selection=sel_note)
    else:
        probe_md = ["No fairness probe in this run (`--probe-every`): no per-group numbers, no selection."]
    sections = [("Model details", details), ("Intended use", [card["intended_use"]]),
                ("Training data", data), ("Fairness probe during training (validation, 95% CI)", probe_md),
                ("Caveats and recommendations", [f"- {c}" for c in caveats]),
                ("Emissions", emissions_lines(summary.get("emissions")
                                              or {"note": "emissions tracking off (--track-emissions)"}))]
    write_card(out, title=title, card=card, sections=sections)
    return card
