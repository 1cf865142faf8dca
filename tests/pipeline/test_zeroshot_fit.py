"""``fairfoundry fit --adaptation zero-shot | clip-adapter`` end to end, with a tiny random CLIP
saved locally and loaded through the public loader (docs/adapt.md's commands run as written)."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "adapt.md"
SECTION = "### Zero-shot CLIP and CLIP-Adapter with `fairfoundry fit`"
HALLU = ("hallucination/evaluation.csv", "hallucination/summary.json", "hallucination/per_sample.csv",
         "hallucination/report.html")


def _section() -> str:
    text = DOC.read_text(encoding="utf-8")
    s = text[text.index(SECTION):]
    return s[: s.index("\n### ", 5)]


def _bash_lines() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", _section(), re.S).group(1)
    return [ln for ln in block.strip().splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def docs_runs(tmp_path_factory):
    """The docs' Python block (tiny CLIP + manifest + prompts file), then its three commands."""
    from fairfoundry.cli import main

    d = tmp_path_factory.mktemp("zs-docs")
    mp = pytest.MonkeyPatch()
    mp.chdir(d)
    mp.setenv("FAIRFOUNDRY_CACHE", str(d / "cache"))
    try:
        code = re.search(r"```python\n(.*?)```", _section(), re.S).group(1)
        exec(compile(code, str(DOC), "exec"), {})
        codes = []
        for line in _bash_lines():
            args = shlex.split(line)
            assert args[0] == "fairfoundry"
            codes.append(main(args[1:]))
    finally:
        mp.undo()
    assert codes == [0, 0, 0]
    return d


def test_every_run_writes_the_fit_outputs_and_the_hallucination_table(docs_runs):
    from fairfoundry.pipeline import RUN_FILES

    runs = [docs_runs / "runs/zero-shot/erm-seed0", docs_runs / "runs/zero-shot/group-threshold-seed0",
            docs_runs / "runs/clip-adapter", docs_runs / "runs/my-prompts"]
    for run in runs:
        for f in (*RUN_FILES, *HALLU):  # the commands pass --no-html: no evaluation/report.html
            assert (run / f).is_file() or f == "evaluation/report.html", (run, f)
        preds = pd.read_parquet(run / "predictions.parquet")
        assert len(preds) == 300 and set(preds["split"]) == {"train", "val", "test"}
        assert preds["y_score"].between(0, 1).all()
        summary = json.loads((run / "evaluation" / "summary.json").read_text())
        for t in summary["thresholds"]:  # Youden's J on val, or group-threshold's (fitted on val) at 0.5
            assert t["chosen_on_split"] == "val" if "group-threshold" not in str(run) else t["threshold"] == 0.5
            assert not t["on_report_split"]
        md = (run / "model_card.md").read_text()
        assert "## Zero-shot hallucination (test, 95% CI)" in md and "events / images" in md
    table = pd.read_csv(docs_runs / "runs/zero-shot/comparison.csv")  # one comparison row per run
    assert list(table["method"]) == ["erm", "group-threshold"] and table["auc"].between(0, 1).all()
    card = json.loads((runs[2] / "model_card.json").read_text())
    assert card["model_details"]["adaptation"] == "clip-adapter" and card["hallucination"]["threshold"] == 0.9


def test_the_adapter_learns_and_its_scores_are_not_the_zero_shot_scores(docs_runs):
    """The issue's bug (adapter scores = zero-shot scores), checked through the CLI."""
    from scipy.stats import spearmanr

    zs = pd.read_parquet(docs_runs / "runs/zero-shot/erm-seed0/predictions.parquet")
    ad = pd.read_parquet(docs_runs / "runs/clip-adapter/predictions.parquet")
    assert (zs["sample_id"] == ad["sample_id"]).all()
    test = (zs["split"] == "test").to_numpy()
    a, b = zs.loc[test, "y_score"].to_numpy(), ad.loc[test, "y_score"].to_numpy()
    rho = spearmanr(a, b).statistic
    assert rho < 0.999 or np.abs(a - b).max() > 1e-3, (rho, np.abs(a - b).max())
    assert np.abs(a - b).max() > 1e-3
    hist = pd.read_csv(docs_runs / "runs/clip-adapter/history.csv")
    assert hist["epoch"].iloc[0] == 0  # the zero-shot classifier the adapter starts from
    run = json.loads((docs_runs / "runs/clip-adapter/run.json").read_text())["run"]
    selected = run["selected"]
    assert selected["loss"] < hist["loss"].iloc[0]  # validation loss went down from zero-shot ...
    assert selected["loss"] < hist["loss"].iloc[1]  # ... and from the adapter's first epoch
    assert run["clip_adapter"]["active_fraction"] > 0.5
    cands = run["clip_adapter"]["candidates"]
    assert len(cands) == 4 and selected["loss"] == pytest.approx(min(c["loss"] for c in cands))
    head = json.loads((docs_runs / "runs/clip-adapter/head.json").read_text())
    assert head["head"] == "clip-adapter" and (head["ratio"], head["lr"]) == (selected["ratio"], selected["lr"])


def test_prompts_flags_and_file(docs_runs):
    head = json.loads((docs_runs / "runs/my-prompts/head.json").read_text())
    assert head["templates"] == ["a chest x-ray with {label}"]  # --prompt wins over the file's templates
    assert head["classes"] == {"Effusion": ["no pleural effusion", "a pleural effusion"]}
    default = json.loads((docs_runs / "runs/zero-shot/erm-seed0/head.json").read_text())
    assert default["classes"] == {"Effusion": ["no effusion", "effusion"]} and len(default["templates"]) == 4
    a = pd.read_parquet(docs_runs / "runs/my-prompts/predictions.parquet")["y_score"]
    b = pd.read_parquet(docs_runs / "runs/zero-shot/erm-seed0/predictions.parquet")["y_score"]
    assert not np.allclose(a, b)  # other prompts, other class embeddings


def test_hallucination_table_matches_a_count_of_the_predictions(docs_runs):
    run = docs_runs / "runs/zero-shot/erm-seed0"
    preds = pd.read_parquet(run / "predictions.parquet")
    table = pd.read_csv(run / "hallucination" / "evaluation.csv")
    absent = preds[(preds["split"] == "test") & (preds["y_true"] == 0)]
    for g, sub in absent.groupby("sex"):
        row = table[(table["attribute"] == "sex") & (table["group"] == g)].iloc[0]
        assert row["metric"] == "confident_false_positive:Effusion"
        assert row["estimate"] == pytest.approx((sub["y_score"] >= 0.9).mean())
        assert row["n"] == len(sub) and row["events"] == (sub["y_score"] >= 0.9).sum()
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
        few = min(row["events"], row["n"] - row["events"]) < 10
        assert str(row["judgement"]).startswith("too few to judge") == few
    ev = pd.read_csv(run / "evaluation" / "evaluation.csv")  # one group model: the same age bins
    assert set(table.query("attribute == 'age'")["group"]) - {"overall"} == set(ev.query("attribute == 'age'")["group"])
    assert {"20-39", "40-59", "60-79"} <= set(table.query("attribute == 'age'")["group"])
    # what docs/adapt.md says of this random CLIP: no confident call, every group too few to judge
    assert (table["events"] == 0).all() and table["judgement"].str.startswith("too few to judge").all()


def test_readme_and_docs_show_the_commands_the_test_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Adapt and mitigate"):]
    section = section[: section.index("\n## ", 5)]
    lines = [ln.strip() for ln in re.search(r"```bash\n(.*?)```", section, re.S).group(1).splitlines()]
    zs = [ln for ln in lines if "--adaptation" in ln and ("zero-shot" in ln or "clip-adapter" in ln)]
    assert zs and all(ln in _bash_lines() for ln in zs)


# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from fairfoundry.models import load_encoder, save_encoder

    d = tmp_path_factory.mktemp("zs-clip")
    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    enc = load_encoder("open_clip:custom", weights="random", model_kwargs={"model_cfg": cfg}, seed=1)
    with torch.no_grad():
        enc.module.logit_scale.fill_(math.log(10.0))
    return save_encoder(enc, d / "clip.safetensors"), enc


def test_planted_group_difference_in_confident_false_positives_is_recovered(tiny_clip, tmp_path, monkeypatch):
    """Two image types: one the zero-shot classifier calls positive, one it does not. Among the
    test images without the finding, 36 % of men's and 12 % of women's are of the first type, so
    the planted rates (at a threshold between the two scores) are known exactly."""
    from PIL import Image

    from fairfoundry.adapt import text_classifier, zero_shot_scores
    from fairfoundry.cli import main
    from fairfoundry.pipeline._zeroshot import DEFAULT_PROMPTS, _template

    path, enc = tiny_clip
    monkeypatch.setenv("FAIRFOUNDRY_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    ims = [(rng.random((32, 32, 3)) * 255).astype(np.uint8) for _ in range(12)]
    T = text_classifier(lambda t: enc.encode_text(list(t)), lambda t: list(t), ["no effusion", "effusion"],
                        templates=[_template(t) for t in DEFAULT_PROMPTS])
    V = enc.encode_image(ims).numpy()
    s = zero_shot_scores(V, T, logit_scale=10.0)[:, 1]
    hi, lo = int(np.argmax(s)), int(np.argmin(s))
    assert s[hi] - s[lo] > 1e-3
    tau = float((s[hi] + s[lo]) / 2)
    for name, k in (("hi.png", hi), ("lo.png", lo)):
        Image.fromarray(ims[k]).save(tmp_path / name)
    rows = []

    def add(split, sex, y, n_hi, n):
        for i in range(n):
            rows.append({"split": split, "sex": sex, "Effusion": y, "path": "hi.png" if i < n_hi else "lo.png"})

    for sex, n_hi in (("male", 36), ("female", 12)):  # planted: 0.36 vs 0.12 of 100
        add("test", sex, 0, n_hi, 100)
        add("test", sex, 1, 10, 20)
        add("val", sex, 0, 10, 30)
        add("val", sex, 1, 10, 15)
        add("train", sex, 0, 5, 10)
        add("train", sex, 1, 5, 10)
    m = pd.DataFrame(rows)
    m.insert(0, "sample_id", [f"s{i}" for i in range(len(m))])
    m["patient_id"] = m["sample_id"]
    m.to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "cfg.yaml").write_text(
        f"encoder: {path}\nadaptation: zero-shot\nmanifest: m.csv\nlabel: Effusion\nsensitive: [sex]\n"
        f"hallucination_threshold: {tau}\nbootstrap: 200\nemissions: false\nhtml: false\n")
    assert main(["fit", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "run")]) == 0
    table = pd.read_csv(tmp_path / "run" / "hallucination" / "evaluation.csv").set_index("group")
    assert table.loc["male", "estimate"] == pytest.approx(0.36) and table.loc["male", "events"] == 36
    assert table.loc["female", "estimate"] == pytest.approx(0.12) and table.loc["female", "events"] == 12
    for g, rate in (("male", 0.36), ("female", 0.12)):
        assert table.loc[g, "ci_low"] <= rate <= table.loc[g, "ci_high"]
        assert table.loc[g, "judgement"] != table.loc[g, "judgement"]  # NaN in the CSV: enough events
    summary = json.loads((tmp_path / "run" / "hallucination" / "summary.json").read_text())
    assert any("differs by sex: male - female = 0.240" in h for h in summary["headlines"]), summary
    md = (tmp_path / "run" / "model_card.md").read_text()
    assert "| sex | male | Effusion | 0.360 [" in md and "36 / 100" in md


# ---------------------------------------------------------------------------------------------
def test_bad_input_exits_2_with_one_message_and_writes_nothing(cli, tiny_clip, tmp_path, monkeypatch):
    from fairfoundry.datasets import nih_images

    path, _ = tiny_clip
    monkeypatch.setenv("FAIRFOUNDRY_CACHE", str(tmp_path / "cache"))
    mp = nih_images()
    m = pd.read_csv(mp)
    m["path"] = [str(mp.parent / p) for p in m["path"]]
    m.to_csv(tmp_path / "m.csv", index=False)
    base = ["fit", "--manifest", tmp_path / "m.csv", "--label", "Effusion", "--sensitive", "sex", "--no-emissions"]
    (tmp_path / "bad_prompts.yaml").write_text("templates: ['{label}']\nclass: {}\n")
    (tmp_path / "empty_prompts.yaml").write_text("templates: []\n")
    cases = [
        (["--encoder", "fairfoundry-tiny", "--adaptation", "zero-shot"], "has no text tower"),
        (["--encoder", "open_clip:ViT-B-32", "--adaptation", "zero-shot"], "no local weights"),
        (["--encoder", path, "--adaptation", "zero-shot", "--prompt", ""], "empty prompt"),
        (["--encoder", path, "--adaptation", "zero-shot", "--prompts", tmp_path / "empty_prompts.yaml"], "empty prompt"),
        (["--encoder", path, "--adaptation", "zero-shot", "--prompt", "a chest x-ray"], "has no '{label}'"),
        (["--encoder", path, "--adaptation", "zero-shot", "--prompts", tmp_path / "bad_prompts.yaml"],
         "unknown key 'class'"),
        (["--encoder", path, "--adaptation", "zero-shot", "--method", "groupdro"], "zero-shot trains nothing"),
        (["--encoder", path, "--adaptation", "clip-adapter", "--method", "group-heads"], "replaces the model"),
        (["--encoder", path, "--adaptation", "clip-adapter", "--label", "Infiltration"], "works on one label"),
        (["--encoder", path, "--method", "zero-shot", "--method", "clip-adapter"], "is an adaptation"),
        (["--embeddings", tmp_path / "m.csv", "--adaptation", "zero-shot"], "text tower"),
    ]
    for extra, message in cases:
        out = tmp_path / "out"
        r = cli(*base, *extra, "--out", out)
        assert r.code == 2 and message in r.err, (extra, r)
        assert "Traceback" not in r.err and r.err.count("error:") == 1
        assert not out.exists() or not any(out.iterdir()), extra
    r = cli(*base, "--encoder", "open_clip:ViT-B-32", "--adaptation", "zero-shot", "--out", tmp_path / "o")
    assert "open_clip.create_model('ViT-B-32'" in r.err and "--encoder-weights" in r.err  # how to get them


def test_method_alias_runs_zero_shot(cli, tiny_clip, tmp_path, monkeypatch):
    """`--method zero_shot` alone is read as `--adaptation zero-shot` (what the issue wrote)."""
    from fairfoundry.datasets import nih_images

    path, _ = tiny_clip
    monkeypatch.setenv("FAIRFOUNDRY_CACHE", str(tmp_path / "cache"))
    mp = nih_images()
    m = pd.read_csv(mp).head(90)
    m["path"] = [str(mp.parent / p) for p in m["path"]]
    m["split"] = np.resize(["train", "val", "test"], len(m))
    m["y"] = 1 - m["No_Finding"]
    m.to_csv(tmp_path / "m.csv", index=False)
    r = cli("fit", "--encoder", path, "--method", "zero_shot", "--manifest", tmp_path / "m.csv", "--label", "y",
            "--label", "Infiltration", "--sensitive", "sex", "--bootstrap", "20", "--no-emissions", "--no-html",
            "--out", tmp_path / "run")
    assert r.code == 0, r
    run = json.loads((tmp_path / "run" / "run.json").read_text())["run"]
    assert run["adaptation"] == "zero-shot" and run["method"] == "erm"
    # multi-label: one score column per label, each with its prompts, and the any-finding rate
    preds = pd.read_parquet(tmp_path / "run" / "predictions.parquet")
    assert {"y_score_y", "y_score_Infiltration"} <= set(preds.columns)
    head = json.loads((tmp_path / "run" / "head.json").read_text())
    assert head["classes"]["Infiltration"] == ["no infiltration", "infiltration"]
    table = pd.read_csv(tmp_path / "run" / "hallucination" / "evaluation.csv")
    assert {"confident_false_positive:y", "confident_false_positive:Infiltration",
            "confident_false_positive_any"} == set(table["metric"])
    r = cli("fit", "--list-methods")
    assert "zero-shot" in r.out and "clip-adapter" in r.out


def test_a_grid_runs_a_zero_shot_cell(tiny_clip, tmp_path, monkeypatch):
    from fairfoundry.bench import ResultsStore, run_grid
    from fairfoundry.datasets import nih_images

    path, _ = tiny_clip
    monkeypatch.setenv("FAIRFOUNDRY_CACHE", str(tmp_path / "cache"))
    mp = nih_images()
    m = pd.read_csv(mp).head(120)
    m["path"] = [str(mp.parent / p) for p in m["path"]]
    m["split"] = np.resize(["train", "val", "test"], len(m))
    m["y"] = 1 - m["No_Finding"]
    m.to_csv(tmp_path / "m.csv", index=False)
    spec = {"name": "zs", "datasets": [{"name": "nih", "manifest": str(tmp_path / "m.csv"), "label": "y",
                                        "sensitive": ["sex"]}],
            "encoders": [str(path)], "adaptations": ["zero-shot"], "mitigations": ["erm"], "seeds": [0],
            "fit": {"bootstrap": 20, "prompts": ["a chest x-ray with {label}"],
                    "class_prompts": {"y": ["no finding", "an abnormal finding"]}}}
    from fairfoundry.bench import GridSpec, grid_cells

    mixed = grid_cells(GridSpec(**{**spec, "adaptations": ["probe", "zero-shot"]}))
    assert [c.adaptation for c in mixed] == ["linear-probe", "zero-shot"]
    assert "prompts" not in mixed[0].fit_config and mixed[1].fit_config["prompts"] == ["a chest x-ray with {label}"]
    summary = run_grid(spec, tmp_path / "grid")
    assert summary["done"] == 1 and not summary["failed"], summary
    cell = next((tmp_path / "grid" / "cells").iterdir())
    assert (cell / "run" / "hallucination" / "evaluation.csv").is_file()
    with ResultsStore(tmp_path / "grid" / "results.duckdb", read_only=True) as store:
        rows = store.query("select distinct adaptation from results")
    assert list(rows["adaptation"]) == ["zero-shot"]
