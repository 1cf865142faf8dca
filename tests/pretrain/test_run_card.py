"""The model card of a pre-training / distillation run, and the fairness probe on fit's card: the
objective, data, seed, steps, probe settings, the selection rule, the selected step (the argmax of
the validation probe) with its validation numbers and CIs, and that the test split was not read."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

import fairfoundry  # noqa: E402
from fairfoundry.report import card_ci  # noqa: E402

NIH = Path(fairfoundry.__file__).parent / "datasets" / "_data" / "nih_images_256" / "manifest.csv"
TINY = {"model": "vit_tiny_patch16_224", "image_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2,
        "num_heads": 2, "batch_size": 16}
MAE = {"decoder_dim": 32, "decoder_depth": 1, "decoder_heads": 2}


@pytest.fixture(scope="module")
def probed(nih_probe_dir):
    """A 4-step MAE run on the bundled train split, probed every 2 steps on the val split of a
    manifest whose test rows point at files that do not exist, selecting by worst-group AUC."""
    from fairfoundry.pretrain import pretrain

    d = nih_probe_dir
    cfg = {"objective": "mae", "manifest": str(d / "train.csv"), **TINY, "options": MAE, "steps": 4, "seed": 3,
           "probe_every": 2, "probe_manifest": str(d / "probe.csv"), "probe_label": "No_Finding",
           "probe_sensitive": ["sex"], "probe_bootstrap": 30, "probe_permutations": 19,
           "select": "worst_group_auc"}
    summary = pretrain(cfg, out=d / "card-run")
    return d / "card-run", summary


def test_the_pretraining_card_states_the_run_and_the_selected_steps_validation_probe(probed):
    out, summary = probed
    card = json.loads((out / "model_card.json").read_text())
    md = (out / "model_card.md").read_text()
    probe = pd.read_csv(out / "probe.csv", keep_default_na=False, na_values=[""])
    det = card["model_details"]
    assert det["objective"] == "mae" and det["seed"] == 3 and det["steps"] == 4
    assert det["architecture"]["image_size"] == 32 and det["paper"].startswith("He et al.")
    assert "- Objective: `mae` (He et al., CVPR 2022)" in md and "- Seed 3; 4 steps of 16 images" in md
    # data and the composition seen
    assert card["training_data"]["n_images"] == 155 and card["training_data"]["manifest_splits"] == {"train": 155}
    comp = {(r["attribute"], r["group"]): r for r in card["training_data"]["composition"]}
    assert comp[("sex", "female")]["n_in_manifest"] == 71 and comp[("sex", "male")]["n_in_manifest"] == 84
    assert "| sex | female | 71 | 0.458 |" in md
    # probe settings and selection: the argmax of the validation probe, recorded with its numbers
    wg = probe[probe["metric"] == "worst_group_auc"].set_index("step")
    step = int(wg["estimate"].idxmax())
    p = card["fairness_probe"]
    assert p["every"] == 2 and p["settings"]["bootstrap"] == 30 and p["settings"]["permutations"] == 19
    assert p["selected"] == summary["probe"]["selected"] and p["selected"]["step"] == step
    assert det["selected_weights"] == f"encoder_selected.safetensors (step {step})"
    assert (f"Selection rule: `worst_group_auc` (argmax over the probed steps of the validation probe, first of "
            f"ties). Selected step: **{step}**") in md
    at = p["at_selected"]
    assert at["step"] == step
    rows = probe[probe["step"] == step]

    def row(metric, attribute):
        return rows[(rows["metric"] == metric) & (rows["attribute"] == attribute)].iloc[0]

    o, w, g = row("auc", "overall"), row("worst_group_auc", "all"), row("auc_gap", "sex")
    assert at["overall_auc"]["estimate"] == pytest.approx(o["estimate"])
    assert at["overall_auc"]["ci_low"] == pytest.approx(o["ci_low"]) and at["overall_auc"]["n"] == 75
    assert at["worst_group_auc"]["group"] == w["group"] and at["worst_group_auc"]["ci_high"] == pytest.approx(
        w["ci_high"])
    assert at["attributes"]["sex"]["gap"]["groups"] == g["group"]
    leak, pval = row("leakage_auc", "sex"), row("leakage_p_value", "sex")
    assert at["leakage"]["sex"]["auc"] == pytest.approx(leak["estimate"])
    assert at["leakage"]["sex"]["p_value"] == pytest.approx(pval["estimate"])
    assert at["leakage"]["sex"]["verdict"] == pval["reason"].split(" (")[0]
    assert f"| AUC | overall | overall | {card_ci(o['estimate'], o['ci_low'], o['ci_high'])} | 75 |" in md
    assert f"| worst-group AUC | all | {w['group']} | {card_ci(w['estimate'], w['ci_low'], w['ci_high'])} |" in md
    gp = row("auc_gap_p_value", "sex")
    assert at["attributes"]["sex"]["gap"]["p_value"] == pytest.approx(gp["estimate"])
    assert gp["reason"].split(" (")[0] in ("groups differ", "no clear difference")
    assert (f"| AUC gap (max - min) | sex | {g['group']} | {card_ci(g['estimate'], g['ci_low'], g['ci_high'])}; "
            f"permutation p = {gp['estimate']:.3f}: {gp['reason'].split(' (')[0]} |") in md
    assert f"| attribute leakage AUC (chance 0.5; no CI) | sex | | {leak['estimate']:.3f}; permutation p =" in md
    # only validation rows were read: the 70 test rows (unreadable paths) were dropped, and the card says so
    assert p["source"] == {"manifest_rows": 300, "split_column": "split",
                           "rows_by_split": {"test": 70, "train": 155, "val": 75}, "val_rows": 75, "probe_rows": 75}
    assert p["test_split_read"] is False
    assert "the probe read the 75 rows of `split == val` of the probe manifest's 300 rows; 70 `test` rows" in md
    assert "**The test split was never read.**" in md
    assert card["fairness_probe"] == json.loads((out / "run.json").read_text())["summary"]["probe"]


def test_a_run_without_probe_says_so_and_a_manifest_with_test_rows_is_flagged(tmp_path):
    from fairfoundry.pretrain import pretrain

    m = pd.read_csv(NIH).head(40)
    m["path"] = [str(NIH.parent / p) for p in m["path"]]
    m.to_csv(tmp_path / "all.csv", index=False)
    pretrain({"objective": "mae", "manifest": str(tmp_path / "all.csv"), **TINY, "options": MAE, "steps": 2},
             out=tmp_path / "run")
    md = (tmp_path / "run" / "model_card.md").read_text()
    card = json.loads((tmp_path / "run" / "model_card.json").read_text())
    assert card["fairness_probe"] is None and card["model_details"]["selected_weights"] is None
    assert "No fairness probe in this run" in md and "Selected step" not in md
    n_test = int((m["split"] == "test").sum())
    assert n_test and f"holds {n_test} rows of split 'test' and is trained on whole" in md


def test_the_distillation_card_names_the_teachers_and_the_probe(tiny_manifest, tmp_path, tiny_vit,
                                                               write_textures_fn):
    from fairfoundry.pretrain import DistillConfig, TimmTeacher, build_vit, distill

    held = tmp_path / "held"
    frame = write_textures_fn(held, 40, seed=5)
    frame["split"] = "val"
    frame.to_csv(held / "manifest.csv", index=False)
    torch.manual_seed(1)
    cfg = DistillConfig(manifest=str(tiny_manifest), **tiny_vit, steps=2, batch_size=16, probe_every=1,
                        probe_manifest=str(held / "manifest.csv"), probe_label="label", probe_sensitive=["sex"],
                        probe_bootstrap=0, probe_permutations=0, select="overall_auc")
    summary = distill(cfg, out=tmp_path / "d", teachers=[TimmTeacher(build_vit(**tiny_vit), name="t")])
    md = (tmp_path / "d" / "model_card.md").read_text()
    assert md.startswith("# Model card: distillation of 1 teachers, seed 0")
    assert "- Teachers: `t` (weight 1.000)" in md
    step = summary["probe"]["selected"]["step"]
    assert "Selection rule: `overall_auc` (argmax" in md and f"Selected step: **{step}**" in md
    assert "40 rows; no other rows were dropped" in md and "The test split was never read." in md
