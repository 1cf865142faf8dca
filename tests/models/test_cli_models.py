"""CLI: models list/show, embed and probe-attributes on the real NIH and HAM10000 images."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from fairfoundry.models import read_embeddings


def test_models_list_and_show(cli):
    r = cli("models", "list")
    assert r.code == 0
    for name in ("rad-dino", "biomedclip", "dinov2-small", "retfound-cfp", "xrv-densenet121-all"):
        assert name in r.out
    r = cli("models", "list", "--json")
    presets = {p["name"]: p for p in json.loads(r.out)["presets"]}
    assert presets["xrv-densenet121-all"]["preprocessing"]["value_range"] == [-1024.0, 1024.0]
    assert presets["rad-dino"]["preprocessing"]["size"] == 518
    r = cli("models", "show", "retfound-cfp", "--json")
    info = json.loads(r.out)
    assert info["licence"].startswith("CC BY-NC") and "hf download" in info["get_weights"]
    assert info["weights_available_locally"] is False
    r = cli("models", "show", "fairfoundry-tiny-does-not-exist")
    assert r.code == 2 and "unknown model" in r.err
    r = cli("models", "show", "radd-ino")
    assert r.code == 2 and "did you mean 'rad-dino'" in r.err and "Traceback" not in r.err


def test_models_show_load_reports_the_loaded_encoder(cli, tiny_encoder_file):
    r = cli("models", "show", tiny_encoder_file, "--load", "--json")
    assert r.code == 0, r
    info = json.loads(r.out)
    assert info["backend"] == "timm" and info["weights_available_locally"] is True
    assert info["loaded"]["embed_dim"] == 32 and info["loaded"]["weights_id"] == info["weights_fingerprint"]


def test_embed_and_probe_on_real_nih_xrays(cli, tmp_path, tiny_encoder_file, nih_manifest):
    out, cache = tmp_path / "emb", tmp_path / "cache"
    r = cli("embed", "--model", tiny_encoder_file, "--manifest", nih_manifest, "--out", out,
            "--cache-dir", cache, "--workers", "0", "--shard-size", "100", "--parquet")
    assert r.code == 0, r
    assert "wrote 300 x 32 embeddings" in r.out and "3 shard(s) computed" in r.out
    ids, arr, meta = read_embeddings(out)
    man = pd.read_csv(nih_manifest, dtype={"sample_id": str})
    assert list(ids) == man["sample_id"].tolist() and arr.shape == (300, 32)
    pq = pd.read_parquet(out / "embeddings.parquet")
    np.testing.assert_array_equal(pq.drop(columns="sample_id").to_numpy(np.float32), arr)
    r = cli("embed", "--model", tiny_encoder_file, "--manifest", nih_manifest, "--out", out,
            "--cache-dir", cache, "--workers", "0", "--shard-size", "100", "--parquet")
    assert r.code == 0 and "up to date" in r.out

    r = cli("probe-attributes", "--embeddings", out, "--manifest", nih_manifest,
            "--sensitive", "sex,age", "--attributes", "view", "--out", tmp_path / "probe",
            "--n-boot", "50")
    assert r.code == 0, r
    t = pd.read_csv(tmp_path / "probe" / "probe.csv").set_index("attribute")
    assert set(t.index) == {"sex", "age", "view"}
    assert t.loc["sex", "n"] == 300 and t.loc["age", "n_groups"] == 5  # default edges 20, 40, 60, 80
    assert (t["ci_low"] <= t["auc"]).all() and (t["auc"] <= t["ci_high"]).all()
    assert (t["n_perm"] == 199).all() and ((t["p_value"] >= 1 / 200) & (t["p_value"] <= 1)).all()
    assert set(t["verdict"]) <= {"leakage", "no evidence of leakage"} and "permutation p=" in r.out
    side = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert side["config"]["attributes"] == ["sex", "age", "view"] and side["versions"]["python"]
    assert side["config"]["n_perm"] == 199


def test_embed_and_probe_on_real_ham10000_dermoscopy(cli, tmp_path, tiny_encoder_file, ham_manifest):
    out = tmp_path / "emb"
    r = cli("embed", "-m", tiny_encoder_file, "--manifest", ham_manifest, "--out", out,
            "--cache-dir", tmp_path / "cache", "--workers", "0", "--batch-size", "64")
    assert r.code == 0, r
    ids, arr, meta = read_embeddings(out)
    assert arr.shape == (486, 32) and np.isfinite(arr).all()
    assert meta["preprocessing"]["channels"] == 3
    r = cli("probe-attributes", "-e", out, "--manifest", ham_manifest, "-a", "sex,age,site",
            "--out", tmp_path / "probe", "--n-boot", "50", "--group-col", "patient_id")
    assert r.code == 0, r
    t = pd.read_csv(tmp_path / "probe" / "probe.csv").set_index("attribute")
    assert t.loc["sex", "n"] == 486
    assert (t.loc["age", "n"], t.loc["age", "n_missing"]) == (485, 1)  # one age is not recorded
    assert t.loc["site", "n_groups"] >= 3 and t.loc["sex", "grouped_by"] == "patient_id"


def test_cli_bad_input_exit_2_without_outputs(cli, tmp_path, tiny_encoder_file, nih_manifest):
    r = cli("embed", "--model", "biomedclipp", "--manifest", nih_manifest, "--out", tmp_path / "o")
    assert r.code == 2 and "did you mean 'biomedclip'" in r.err
    assert not (tmp_path / "o").exists()
    r = cli("embed", "--model", "rad-dino", "--manifest", nih_manifest, "--out", tmp_path / "o",
            "--workers", "0", "--cache-dir", tmp_path / "c")
    assert r.code == 2 and "hf download microsoft/rad-dino" in r.err
    assert not (tmp_path / "o").exists()
    r = cli("embed", "--model", tiny_encoder_file, "--manifest", tmp_path / "none.csv", "--out", tmp_path / "o")
    assert r.code == 2 and "none.csv" in r.err
    # probe with a manifest that does not match the embeddings
    emb = tmp_path / "emb"
    small = tmp_path / "small.csv"
    man = pd.read_csv(nih_manifest, dtype={"sample_id": str}).head(12)
    man["path"] = [str(nih_manifest.parent / p) for p in man["path"]]
    man.to_csv(small, index=False)
    assert cli("embed", "-m", tiny_encoder_file, "--manifest", small, "--out", emb, "--workers", "0",
               "--cache-dir", tmp_path / "c").code == 0
    other = tmp_path / "other.csv"
    man.assign(sample_id=[f"x{i}" for i in range(12)]).to_csv(other, index=False)
    r = cli("probe-attributes", "-e", emb, "--manifest", other, "-a", "sex", "--out", tmp_path / "p")
    assert r.code == 2 and "12 of 12 embedded sample_ids are not in manifest" in r.err
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())
    r = cli("embed", "-m", tiny_encoder_file, "--manifest", small, "--out", emb, "--workers", "0",
            "--cache-dir", tmp_path / "c", "--model-arg", "depth=2")
    assert r.code == 2 and "already holds" in r.err


def test_models_convert_turns_a_pickled_checkpoint_into_safetensors(cli, tmp_path):
    import torch

    from fairfoundry.models import load_encoder

    kw = ["--model-arg", "growth_rate=4", "--model-arg", "block_config=[1,1,1,1]",
          "--model-arg", "num_init_features=8"]
    enc = load_encoder("xrv:densenet121", weights="random",
                       model_kwargs={"growth_rate": 4, "block_config": [1, 1, 1, 1], "num_init_features": 8})
    torch.save(enc.module, tmp_path / "full.pt")  # a whole pickled model, as torchxrayvision ships
    out = tmp_path / "full.safetensors"
    r = cli("models", "convert", "xrv:densenet121", "--weights", str(tmp_path / "full.pt"), "--out", str(out), *kw)
    assert r.code == 2 and "--trust-checkpoint" in r.err and not out.exists()
    r = cli("models", "convert", "xrv:densenet121", "--weights", str(tmp_path / "full.pt"), "--out", str(out),
            "--trust-checkpoint", *kw)
    assert r.code == 0, r.err
    img = np.random.default_rng(0).integers(0, 256, (40, 50)).astype(np.uint8)
    torch.testing.assert_close(load_encoder(out).encode_image([img]), enc.encode_image([img]), rtol=0, atol=0)
    r = cli("models", "convert", "xrv:densenet121", "--weights", str(tmp_path / "full.pt"), "--out", str(out),
            "--trust-checkpoint", *kw)
    assert r.code == 2 and "exists" in r.err
