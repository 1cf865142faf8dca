"""``fairfoundry fit`` end to end on tiny known-bias data: flags form, YAML form, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from fairfoundry.bench import make_knownbias_features

    d = tmp_path_factory.mktemp("fit")
    kb = make_knownbias_features(n=900, d=8, seed=3)
    m = kb.frame.rename(columns={"group": "sex"}).drop(columns=["y_clean"])
    m["sex"] = m["sex"].map({"majority": "female", "minority": "male"})
    m["age"] = np.random.default_rng(0).uniform(20, 90, len(m)).round()
    m.to_csv(d / "manifest.csv", index=False)
    np.save(d / "emb.npy", kb.X)
    pd.DataFrame({"sample_id": m["sample_id"], "embedding": list(kb.X[::-1][::-1])}).iloc[::-1].to_parquet(
        d / "emb.parquet")
    return d


FAST = ["--epochs", "4", "--batch-size", "128", "--bootstrap", "20", "--no-emissions", "--lr", "0.01"]


def test_fit_flags_single_run_writes_every_artifact(cli, tiny, tmp_path):
    out = tmp_path / "run"
    r = cli("fit", "--embeddings", tiny / "emb.npy", "--manifest", tiny / "manifest.csv", "--label", "y",
            "--sensitive", "sex", "--head", "linear", "--method", "groupdro", "--method-arg", "eta=0.2",
            "--select", "worst_group_auc", "--seed", "1", "--out", out, *FAST)
    assert r.code == 0, r
    from fairfoundry.pipeline import RUN_FILES

    for f in RUN_FILES:
        assert (out / f).exists(), f
    preds = pd.read_parquet(out / "predictions.parquet")
    assert set(preds["split"]) == {"train", "val", "test"} and len(preds) == 900
    assert {"sample_id", "split", "y_true", "y_score", "sex", "method", "seed"} <= set(preds.columns)
    assert (preds["method"] == "groupdro(eta=0.2)").all() and (preds["seed"] == 1).all()
    assert preds["y_score"].between(0, 1).all()
    card = json.loads((out / "model_card.json").read_text())
    assert card["model_details"]["method"] == "groupdro" and card["metrics"]["selection_split"] == "val"
    assert any(r["attribute"] == "sex" and r["metric"] == "auc" for r in card["quantitative_analyses"]["per_group"])
    md = (out / "model_card.md").read_text()
    for section in ("## Intended use", "## Quantitative analyses", "## Caveats and recommendations", "## Emissions"):
        assert section in md
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    assert summary["thresholds"][0]["chosen_on_split"] == "val"
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 1 and run["run"]["method"] == "groupdro"
    assert run["run"]["optimizer"] == "adamw"  # in-processing methods train with AdamW


def test_plain_linear_probe_uses_lbfgs_and_matches_adamw(cli, tiny, tmp_path):
    """optimizer auto: a grid of ERM + post-processing fits the convex probe with full-batch L-BFGS."""
    args = ["--embeddings", tiny / "emb.npy", "--manifest", tiny / "manifest.csv", "--label", "y",
            "--sensitive", "sex", "--no-html", "--bootstrap", "10", "--no-emissions"]
    r = cli("fit", *args, "--method", "erm,group-calibration", "--out", tmp_path / "lb")
    assert r.code == 0, r
    assert json.loads((tmp_path / "lb" / "erm-seed0" / "run.json").read_text())["run"]["optimizer"] == "lbfgs"
    # the same model as scikit-learn's logistic regression with the same L2 (C = 1 / (wd * n_train))
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    m, X = pd.read_csv(tiny / "manifest.csv"), np.load(tiny / "emb.npy")
    tr, te = (m["split"] == "train").to_numpy(), (m["split"] == "test").to_numpy()
    mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-6
    ref = LogisticRegression(C=1 / (1e-4 * tr.sum()), max_iter=5000).fit((X[tr] - mu) / sd, m["y"][tr])
    a = pd.read_parquet(tmp_path / "lb" / "erm-seed0" / "predictions.parquet").set_index("sample_id")
    ours = a.loc[m["sample_id"][te], "y_score"].to_numpy()
    theirs = ref.predict_proba((X[te] - mu) / sd)[:, 1]
    assert np.abs(ours - theirs).max() < 0.02
    assert roc_auc_score(m["y"][te], ours) == pytest.approx(roc_auc_score(m["y"][te], theirs), abs=0.005)
    r = cli("fit", *args, "--method", "groupdro", "--optimizer", "lbfgs", "--out", tmp_path / "bad")
    assert r.code == 2 and "lbfgs" in r.err and "Traceback" not in r.err


def test_fit_several_methods_and_seeds_compares_them(cli, tiny, tmp_path):
    out = tmp_path / "cmp"
    r = cli("fit", "--embeddings", tiny / "emb.parquet", "--manifest", tiny / "manifest.csv", "--label", "y",
            "--sensitive", "sex,age", "--method", "erm", "--method", "reweigh", "--method", "group-threshold",
            "--method-arg", "group-threshold:constraint=eopp", "--seed", "0", "--seed", "1", "--out", out, "--no-html",
            *FAST)
    assert r.code == 0, r
    table = pd.read_csv(out / "comparison.csv")
    assert len(table) == 6
    assert set(table["method"]) == {"erm", "reweigh", "group-threshold(constraint=eopp)"}
    assert "sex:equalized_odds_difference" in table.columns and "age:auc_gap" in table.columns
    assert (table["auc_ci_low"] <= table["auc"]).all() and (table["auc"] <= table["auc_ci_high"]).all()
    html = (out / "comparison.html").read_text()
    assert "Pareto" in html and "Verdict" in html
    diffs = pd.read_csv(out / "comparison_to_erm.csv")
    assert set(diffs["method"]) == {"reweigh", "group-threshold(constraint=eopp)"}
    assert (diffs["interval"] == "paired t over 2 seeds").all()
    assert set(diffs["status"]) <= {"differs", "no difference shown", "too few to judge"}
    verdict = json.loads((out / "comparison.json").read_text())["verdict"]
    assert verdict[0].startswith(("No method differs from ERM at 95 %", "reweigh", "group-threshold"))
    assert verdict[0] in html
    assert (out / "erm-seed1" / "predictions.parquet").exists()
    assert not (out / "erm-seed1" / "evaluation" / "report.html").exists()


def test_yaml_config_and_flag_override(cli, tiny, tmp_path):
    cfg = tmp_path / "fit.yaml"
    cfg.write_text(f"embeddings: {tiny / 'emb.npy'}\nmanifest: {tiny / 'manifest.csv'}\nlabel: y\n"
                   "sensitive: [sex]\nhead: mlp\nhidden: 16\nmethods:\n  - name: fair-penalty\n    args: {weight: 0.5}\n"
                   "epochs: 3\nbootstrap: 10\nhtml: false\ncountry_iso_code: GBR\n")
    r = cli("fit", cfg, "--out", tmp_path / "y", "--seed", "4")
    assert r.code == 0, r
    head = json.loads((tmp_path / "y" / "head.json").read_text())
    assert head["head"] == "mlp" and head["seed"] == 4 and head["hooks"] == ["fair-penalty"]
    if __import__("importlib").util.find_spec("codecarbon") is not None:
        em = json.loads((tmp_path / "y" / "emissions.json").read_text())
        assert em["tracker"].startswith("codecarbon") and em["emissions_kg_co2eq"] >= 0
        assert em["country_iso_code"] == "GBR"
        assert "kg CO2eq" in (tmp_path / "y" / "model_card.md").read_text()


def test_selection_uses_validation_only(cli, tiny, tmp_path):
    """Scrambling the test labels changes nothing about the chosen checkpoint or the scores."""
    m = pd.read_csv(tiny / "manifest.csv")
    test = m["split"] == "test"
    m.loc[test, "y"] = np.random.default_rng(9).permutation(m.loc[test, "y"].to_numpy())
    m.to_csv(tmp_path / "scrambled.csv", index=False)
    outs = []
    for name, man in (("a", tiny / "manifest.csv"), ("b", tmp_path / "scrambled.csv")):
        r = cli("fit", "--embeddings", tiny / "emb.npy", "--manifest", man, "--label", "y", "--sensitive", "sex",
                "--select", "dto", "--out", tmp_path / name, "--no-html", *FAST)
        assert r.code == 0, r
        outs.append(tmp_path / name)
    a, b = (json.loads((o / "head.json").read_text())["selected"] for o in outs)
    assert a == b
    pa, pb = (pd.read_parquet(o / "predictions.parquet")["y_score"].to_numpy() for o in outs)
    assert np.array_equal(pa, pb)
    assert (outs[0] / "head.safetensors").read_bytes() == (outs[1] / "head.safetensors").read_bytes()


@pytest.mark.parametrize(("args", "needle"), [
    (["--sensitive", "sexe"], "did you mean 'sex'"),
    (["--label", "yy"], "label column 'yy' not found"),
    (["--method", "groupdor"], "unknown mitigation"),
    (["--method", "groupdro", "--method-arg", "etta=1"], "its arguments are"),
    (["--select", "accuracy"], "select"),
])
def test_bad_flags_exit_2_without_output(cli, tiny, tmp_path, args, needle):
    base = {"--embeddings": str(tiny / "emb.npy"), "--manifest": str(tiny / "manifest.csv"), "--label": "y",
            "--sensitive": "sex"}
    for k in args[::2]:
        base.pop(k, None)
    flat = [x for kv in base.items() for x in kv]
    r = cli("fit", *flat, *args, "--out", tmp_path / "bad", *FAST)
    assert r.code == 2, r
    assert needle in r.err and "Traceback" not in r.err
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_bad_data_exit_2(cli, tiny, tmp_path):
    m = pd.read_csv(tiny / "manifest.csv")
    one = m.copy()
    one.loc[one["split"] == "val", "y"] = 0
    one.to_csv(tmp_path / "oneclass.csv", index=False)
    r = cli("fit", "--embeddings", tiny / "emb.npy", "--manifest", tmp_path / "oneclass.csv", "--label", "y",
            "--sensitive", "sex", "--out", tmp_path / "o1", *FAST)
    assert r.code == 2 and "val split has only one class" in r.err
    np.save(tmp_path / "short.npy", np.zeros((10, 8), dtype=np.float32))
    r = cli("fit", "--embeddings", tmp_path / "short.npy", "--manifest", tiny / "manifest.csv", "--label", "y",
            "--sensitive", "sex", "--out", tmp_path / "o2", *FAST)
    assert r.code == 2 and "10 rows but the manifest has 900" in r.err
    (tmp_path / "bad.yaml").write_text("embeddings: x\nmanifest: y\nlabel: y\nsensitive: [sex]\nheads: mlp\n")
    r = cli("fit", tmp_path / "bad.yaml", "--out", tmp_path / "o3")
    assert r.code == 2 and "unknown key 'heads'" in r.err and "head" in r.err
    (tmp_path / "broken.yaml").write_text("embeddings: [x\n")
    r = cli("fit", tmp_path / "broken.yaml", "--out", tmp_path / "o3")
    assert r.code == 2 and "not valid YAML" in r.err
    nosplit = m.drop(columns=["split"])
    nosplit.to_csv(tmp_path / "nosplit.csv", index=False)
    r = cli("fit", "--embeddings", tiny / "emb.npy", "--manifest", tmp_path / "nosplit.csv", "--label", "y",
            "--sensitive", "sex", "--out", tmp_path / "o4", *FAST)
    assert r.code == 2 and "split" in r.err
    nosex = m.assign(sex=np.nan)  # a mitigation needs an attribute the data lacks: no silent ERM
    nosex.to_csv(tmp_path / "nosex.csv", index=False)
    r = cli("fit", "--embeddings", tiny / "emb.npy", "--manifest", tmp_path / "nosex.csv", "--label", "y",
            "--sensitive", "sex", "--method", "groupdro", "--out", tmp_path / "o5", *FAST)
    assert r.code == 2 and "needs the sensitive attribute(s) sex" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "o5").exists()


def test_existing_output_needs_overwrite_and_list_methods(cli, tiny, tmp_path):
    out = tmp_path / "ex"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    r = cli("fit", "--embeddings", tiny / "emb.npy", "--manifest", tiny / "manifest.csv", "--label", "y",
            "--sensitive", "sex", "--out", out, *FAST)
    assert r.code == 2 and "--overwrite" in r.err
    r = cli("fit", "--list-methods")
    assert r.code == 0 and "groupdro" in r.out and "group-threshold" in r.out


def test_fit_from_images_with_an_encoder(cli, tmp_path, monkeypatch):
    """manifest + encoder: the bundled real NIH X-rays embedded by a tiny random timm ViT, then a probe."""
    monkeypatch.setenv("FAIRFOUNDRY_CACHE", str(tmp_path / "cache"))
    from fairfoundry.datasets import nih_images

    mp = nih_images()
    m = pd.read_csv(mp).head(60)
    m["path"] = [str(mp.parent / p) for p in m["path"]]
    m["split"] = np.array(["train", "val", "test"])[np.arange(60) % 3]
    m.to_csv(tmp_path / "m.csv", index=False)
    cfg = tmp_path / "enc.yaml"
    cfg.write_text(f"manifest: {tmp_path / 'm.csv'}\nencoder: timm:vit_tiny_patch16_224\nencoder_weights: random\n"
                   "encoder_kwargs: {img_size: 32, depth: 1}\nlabel: No_Finding\nsensitive: [sex]\nepochs: 2\n"
                   "bootstrap: 0\nemissions: false\nhtml: false\n")
    r = cli("fit", cfg, "--out", tmp_path / "enc")
    assert r.code == 0, r
    assert (tmp_path / "enc" / "embeddings" / "embeddings.npy").exists()
    assert len(pd.read_parquet(tmp_path / "enc" / "predictions.parquet")) == 60
    both = tmp_path / "both.yaml"
    both.write_text(cfg.read_text() + f"embeddings: {tmp_path / 'x.npy'}\n")
    r = cli("fit", both, "--out", tmp_path / "enc2")
    assert r.code == 2 and "exactly one of 'embeddings'" in r.err


def test_multilabel_and_a_group_absent_from_training(cli, tiny, tmp_path):
    m = pd.read_csv(tiny / "manifest.csv")
    m["y2"] = 1 - m["y"]
    m["site"] = np.where(np.arange(len(m)) % 2 == 0, "A", "C")
    m.loc[m.index[m["split"] == "test"][:40], "site"] = "B"  # site B never seen in training
    m.to_csv(tmp_path / "ml.csv", index=False)
    r = cli("fit", "--embeddings", tiny / "emb.npy", "--manifest", tmp_path / "ml.csv", "--label", "y,y2",
            "--sensitive", "site", "--method", "group-heads", "--out", tmp_path / "ml", "--no-html", *FAST)
    assert r.code == 0, r
    preds = pd.read_parquet(tmp_path / "ml" / "predictions.parquet")
    assert {"y_true_y", "y_score_y", "y_true_y2", "y_score_y2"} <= set(preds.columns)
    run = json.loads((tmp_path / "ml" / "run.json").read_text())
    assert any("absent from training: B" in w for w in run["run"]["warnings"])
    assert "absent from training: B" in (tmp_path / "ml" / "model_card.md").read_text()
    r = cli("fit", "--embeddings", tiny / "emb.npy", "--manifest", tmp_path / "ml.csv", "--label", "y,y2",
            "--sensitive", "site", "--method", "group-threshold", "--out", tmp_path / "ml2", *FAST)
    assert r.code == 2 and "works on one label" in r.err


def test_fit_lora_from_images(cli, tmp_path, monkeypatch):
    """LoRA fine-tuning of a (tiny, random) timm ViT on real NIH X-rays through `fairfoundry fit`."""
    from fairfoundry.datasets import nih_images

    mp = nih_images()
    m = pd.read_csv(mp).head(48)
    m["path"] = [str(mp.parent / p) for p in m["path"]]
    m["split"] = np.array(["train", "val", "test"])[np.arange(48) % 3]
    m.to_csv(tmp_path / "m.csv", index=False)
    r = cli("fit", "--manifest", tmp_path / "m.csv", "--encoder", "timm:vit_tiny_patch16_224", "--encoder-weights",
            "random", "--adaptation", "lora", "--lora-r", "2", "--label", "No_Finding", "--sensitive", "sex",
            "--method", "group-heads", "--select", "dto", "--out", tmp_path / "lora", "--no-html", "--epochs", "2",
            "--batch-size", "16", "--bootstrap", "0", "--no-emissions", "--lr", "0.001")
    assert r.code == 0, r
    out = tmp_path / "lora"
    head = json.loads((out / "head.json").read_text())
    assert head["adaptation"] == "lora" and 0 < head["trainable_share"] < 0.05
    from safetensors.torch import load_file

    adapter = load_file(str(out / "adapter.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)
    assert len(pd.read_parquet(out / "predictions.parquet")) == 48
    assert "Adaptation: `lora`" in (out / "model_card.md").read_text()
    r = cli("fit", "--embeddings", tmp_path / "x.npy", "--manifest", tmp_path / "m.csv", "--adaptation", "full",
            "--label", "No_Finding", "--sensitive", "sex", "--out", tmp_path / "bad")
    assert r.code == 2 and "needs 'encoder'" in r.err


def test_a_runs_config_yaml_reproduces_it(cli, tiny, tmp_path, monkeypatch):
    r = cli("fit", "--embeddings", tiny / "emb.npy", "--manifest", tiny / "manifest.csv", "--label", "y",
            "--sensitive", "sex", "--method", "adversarial", "--seed", "2", "--out", tmp_path / "a", "--no-html", *FAST)
    assert r.code == 0, r
    monkeypatch.chdir(tmp_path)  # the config holds absolute paths: it re-runs from anywhere
    r = cli("fit", tmp_path / "a" / "config.yaml", "--out", tmp_path / "b", "--no-html")
    assert r.code == 0, r
    pa, pb = (pd.read_parquet(tmp_path / d / "predictions.parquet") for d in ("a", "b"))
    assert np.array_equal(pa["y_score"].to_numpy(), pb["y_score"].to_numpy())
