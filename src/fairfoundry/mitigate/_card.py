"""The model card of a fit run: Markdown + JSON, sections after Mitchell et al. (FAT* 2019).

Sections: model details, intended use, factors, metrics, evaluation data, training data,
quantitative analyses (the per-group fairness table with CIs and the gaps), ethical
considerations, caveats and recommendations, and the training emissions estimate.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..report._card import card_ci as _ci
from ..report._card import card_value as _fmt

__all__ = ["write_model_card"]

_TABLE_METRICS = ("auc", "tpr", "fpr", "ece")
_GAP_METRICS = ("auc_gap", "auc_worst_group", "equalized_odds_difference", "equal_opportunity_difference",
                "demographic_parity_difference", "ece_gap")




def _data_summary(manifest, groups, y, split_col) -> list[dict]:
    rows = []
    split = manifest[split_col].astype(str).to_numpy()
    for s in ("train", "val", "test"):
        m = split == s
        for g in sorted(set(groups[m].tolist())):
            mg = m & (groups == g)
            yy = y[mg, 0]
            rows.append({"split": s, "group": g, "n": int(mg.sum()),
                         "positives": int(np.nansum(yy)), "prevalence": float(np.nanmean(yy)) if mg.any() else float("nan")})
    return rows


def chance_sentences(by_group) -> list[str]:
    """One sentence per label whose overall test AUC 95 % CI includes 0.5 (the model is at chance
    there), and per label whose whole interval lies below 0.5."""
    o = by_group[(by_group["metric"] == "auc") & (by_group["attribute"] == "overall")]
    out = []
    for r in o.itertuples(index=False):
        if not (np.isfinite(r.ci_low) and np.isfinite(r.ci_high)):
            continue
        what = f"test AUC {_ci(r.estimate, r.ci_low, r.ci_high)}" + (f" for {r.label}" if o["label"].nunique() > 1 else "")
        if r.ci_low <= 0.5 <= r.ci_high:
            out.append(f"At chance: {what}; the 95% CI includes 0.5, so this model is not shown to rank patients "
                       "better than a coin, and its fairness gaps say nothing about the model.")
        elif r.ci_high < 0.5:
            out.append(f"Below chance: {what}; the whole 95% CI is under 0.5 (the scores rank the classes the "
                       "wrong way round), so its fairness gaps are not a fairness finding.")
    return out


def write_model_card(directory: Path, *, cfg, spec, seed: int, info: dict, evaluation, manifest, groups, y,
                     extra_md: list[str] | None = None, extra: dict | None = None,
                     emissions: dict) -> None:
    """Write ``model_card.md`` and ``model_card.json`` into ``directory``."""
    from .. import __version__
    from ._registry import MITIGATIONS

    doc = (MITIGATIONS[spec.name].__doc__ or "").strip()
    summary_line = doc.splitlines()[0] if doc else spec.name
    per_group, gaps, thresholds = [], [], []
    if evaluation is not None:
        bg, st = evaluation.by_group, evaluation.summary_table
        lab0 = evaluation.labels[0]
        sel = bg[bg["metric"].isin(_TABLE_METRICS) & (bg["label"] == lab0)]
        for r in sel.itertuples(index=False):
            per_group.append({"attribute": r.attribute, "group": r.group, "metric": r.metric, "estimate": r.estimate,
                              "ci_low": r.ci_low, "ci_high": r.ci_high, "n": int(r.n), "reason": r.reason})
        selg = st[st["metric"].isin(_GAP_METRICS) & (st["label"] == lab0)]
        for r in selg.itertuples(index=False):
            gaps.append({"attribute": r.attribute, "metric": r.metric, "estimate": r.estimate,
                         "ci_low": r.ci_low, "ci_high": r.ci_high, "detail": r.detail})
        thresholds = evaluation.thresholds.to_dict(orient="records")
    chance = chance_sentences(evaluation.by_group) if evaluation is not None else []
    data_rows = _data_summary(manifest, groups, y, cfg.split_col)
    card = {
        "model_details": {
            "name": (f"{cfg.adaptation}, {spec.label}, seed {seed}"
                     if cfg.adaptation in ("zero-shot", "clip-adapter") else
                     f"{cfg.head} head, {spec.label}, seed {seed}"),
            "head": cfg.head, "adaptation": cfg.adaptation, "encoder": cfg.encoder,
            "trainable_share": info.get("trainable_share"), "method": spec.name, "method_args": spec.args, "method_summary": summary_line,
            "method_stage": info["stage"], "seed": seed, "fairfoundry_version": __version__,
            "date": datetime.now(timezone.utc).date().isoformat(), "embeddings": cfg.embeddings,
            "weights": "head.safetensors", "selected_checkpoint": info.get("selected"),
        },
        "intended_use": cfg.intended_use,
        "factors": {"sensitive_attributes": cfg.sensitive,
                    "training_groups": "intersection of " + " x ".join(cfg.sensitive)},
        "metrics": {"selection_criterion": cfg.select, "selection_split": "val",
                    "thresholds": thresholds,
                    "reported_on": "test split, once; bootstrap CIs with "
                                   f"{cfg.bootstrap} resamples"},
        "training_data": [r for r in data_rows if r["split"] == "train"],
        "evaluation_data": [r for r in data_rows if r["split"] == "test"],
        "quantitative_analyses": {"at_chance": bool(chance), "chance": chance, "per_group": per_group, "gaps": gaps},
        "ethical_considerations": (
            "Group labels come from the data's recorded attributes; unrecorded groups cannot be audited. "
            "A smaller gap can come from worse performance for the better-served group: read the per-group "
            "values, not only the gaps."),
        "caveats_and_recommendations": [
            "Small groups have wide confidence intervals; an interval that includes 0 does not show fairness.",
            "Validate on local patients before any use; label noise in the evaluation data biases every metric.",
            "MEDFAIR (Zong et al., 2023) found few mitigations beat ERM consistently; compare with the ERM run.",
            *chance,
            *info.get("warnings", []),
        ],
        "emissions": emissions,
    }
    card.update(extra or {})
    from .._io import md_escape  # user-supplied text (names, groups, intended use) is escaped
    from ..report._card import emissions_lines, write_card

    details = [
        (f"- Head: `{cfg.head}` on embeddings `{cfg.embeddings or cfg.encoder}`" if cfg.adaptation == "probe" else
         f"- Adaptation: zero-shot CLIP with encoder `{cfg.encoder}` (class prompts; nothing trained)"
         if cfg.adaptation == "zero-shot" else
         f"- Adaptation: CLIP-Adapter on the frozen image embeddings of encoder `{cfg.encoder}`, classified "
         "against its class-prompt text embeddings (hyper-parameters chosen on validation)"
         if cfg.adaptation == "clip-adapter" else
         f"- Adaptation: `{cfg.adaptation}` of encoder `{cfg.encoder}` with a linear head"
         + (f" (LoRA r={cfg.lora_r}, alpha={cfg.lora_alpha})" if cfg.adaptation == "lora" else
            f" (the last {cfg.partial_blocks or 2} blocks of its image trunk and the layers after them trained, "
            "the rest frozen)" if cfg.adaptation == "partial" else "")
         + f"; trainable share {100 * (info.get('trainable_share') or 0):.2f}%"),
        f"- Mitigation: `{spec.label}` ({info['stage']}-processing): {summary_line}",
        f"- Seed: {seed}; fairfoundry {__version__}; weights `head.safetensors`",
        f"- Checkpoint chosen on validation by `{cfg.select}`: epoch "
        f"{(info.get('selected') or {}).get('epoch', 'last')}"]
    data_md = ["| split | group | n | positives | prevalence |", "|---|---|---:|---:|---:|"]
    data_md += [f"| {r['split']} | {md_escape(r['group'])} | {r['n']} | {r['positives']} | {_fmt(r['prevalence'])} |"
                for r in data_rows]
    quant = [f"**{c}**" for c in chance] + ([""] if chance else [])
    if per_group:
        quant += ["| attribute | group | metric | estimate [CI] | n |", "|---|---|---|---|---:|"]
        quant += [f"| {r['attribute']} | {md_escape(r['group'])} | {r['metric']} | "
                  f"{_ci(r['estimate'], r['ci_low'], r['ci_high'])} | {r['n']} |" for r in per_group]
        quant += ["", "| attribute | gap / summary | estimate [CI] | detail |", "|---|---|---|---|"]
        quant += [f"| {r['attribute']} | {r['metric']} | {_ci(r['estimate'], r['ci_low'], r['ci_high'])} | {r['detail']} |"
                  for r in gaps]
    else:
        quant += ["No test split: not evaluated."]
    sections = [
        ("Model details", details),
        ("Intended use", [md_escape(cfg.intended_use)]),
        ("Factors", [f"Sensitive attributes: {', '.join(cfg.sensitive)}. Mitigations act on the "
                     f"intersection {' x '.join(cfg.sensitive)}."]),
        ("Metrics", [f"Model selection: `{cfg.select}` on the validation split. Decision thresholds: chosen on "
                     f"validation ({', '.join(str(t.get('rule', '')) for t in thresholds) or 'n/a'}). Test is "
                     f"reported once, with {cfg.bootstrap} bootstrap resamples for 95% CIs."]),
        ("Training and evaluation data", data_md),
        ("Quantitative analyses (test, 95% CI)", quant),
        *([(None, extra_md)] if extra_md else []),
        ("Ethical considerations", [card["ethical_considerations"]]),
        ("Caveats and recommendations", [f"- {c}" for c in card["caveats_and_recommendations"]]),
        ("Emissions", emissions_lines(emissions)),
    ]
    write_card(directory, title=card["model_details"]["name"], card=card, sections=sections)
