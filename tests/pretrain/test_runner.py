"""``fairfoundry pretrain``: outputs, balanced sampling report, resume, and bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")


def _args(manifest, out, tiny_vit, *extra):
    return ["pretrain", "--manifest", manifest, "--model", f"timm:{tiny_vit['model']}",
            "--image-size", "32", "--patch-size", "8", "--embed-dim", "32", "--depth", "2",
            "--num-heads", "2", "--batch-size", "8", "--out", out, *extra]


def test_cli_pretrain_writes_checkpoint_loss_log_and_composition(cli, skewed_manifest, tmp_path,
                                                                  tiny_vit):
    out = tmp_path / "mae"
    res = cli(*_args(skewed_manifest, out, tiny_vit, "--objective", "mae", "--steps", "10",
                     "--option", "decoder_dim=32", "--option", "decoder_depth=1",
                     "--option", "decoder_heads=2", "--sampling", "balanced",
                     "--balance-by", "sex"))
    assert res.code == 0, res
    assert json.loads(res.out)["steps"] == 10
    log = pd.read_csv(out / "loss_log.csv")
    assert log["step"].tolist() == list(range(10)) and log["loss"].notna().all()
    comp = pd.read_csv(out / "composition.csv").set_index(["attribute", "group"])
    # 10 % of the manifest is male; balanced sampling shows them in about half of the images
    assert comp.loc[("sex", "male"), "fraction_in_manifest"] == pytest.approx(0.1)
    assert 0.3 < comp.loc[("sex", "male"), "fraction_seen"] < 0.7
    assert comp.loc[("sex", "male"), "n_seen"] + comp.loc[("sex", "female"), "n_seen"] == 80
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["sampler"]["mode"] == "balanced" and run["seed"] == 0
    assert run["versions"]["torch"]

    # the encoder is a plain timm ViT: it loads without fairfoundry code, same outputs
    import timm
    from safetensors import safe_open
    from safetensors.torch import load_file

    from fairfoundry.pretrain import load_pretrained_vit

    with safe_open(str(out / "encoder.safetensors"), framework="pt") as fh:
        meta = fh.metadata()
    spec = json.loads(meta["timm_spec"])
    net = timm.create_model(spec.pop("architecture"), pretrained=False, **spec)
    net.load_state_dict(load_file(str(out / "encoder.safetensors")))
    backbone, meta2 = load_pretrained_vit(out / "encoder.safetensors")
    x = torch.rand(2, 3, 32, 32)
    net.eval()
    backbone.eval()
    assert torch.allclose(net(x), backbone(x), atol=1e-5)
    assert json.loads(meta2["pixel_mean"]) == [0.5, 0.5, 0.5]
    # and the model zoo loads the export as is (fairfoundry embed --model OUT/encoder.safetensors)
    from fairfoundry.models import load_encoder

    enc = load_encoder(out / "encoder.safetensors")
    assert enc.embed_dim == 32 and enc.preprocessing.size == 32
    assert torch.allclose(enc.encode_image((x - 0.5) / 0.5), backbone((x - 0.5) / 0.5), atol=1e-5)

    # the run directory is protected
    again = cli(*_args(skewed_manifest, out, tiny_vit, "--objective", "mae", "--steps", "2"))
    assert again.code == 2 and "--overwrite" in again.err


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_resumed_run_matches_the_uninterrupted_run(tiny_manifest, tmp_path, tiny_vit, tiny_options):
    from fairfoundry.pretrain import pretrain

    # DINO with a teacher-temperature warm-up: a schedule that must resume at the right step
    options = {**tiny_options["dino"], "warmup_teacher_temp": 0.02, "teacher_temp": 0.05}
    cfg = {"objective": "dino", "manifest": str(tiny_manifest), **tiny_vit, "steps": 9,
           "batch_size": 16, "options": options, "sampling": "stratified",
           "balance_by": ["sex"]}
    full = pretrain(cfg, out=tmp_path / "full")
    temps = pd.read_csv(tmp_path / "full" / "loss_log.csv")["teacher_temp"]
    # 30 % of 9 steps = 2.7 warm-up steps: 0.02 at step 0, then linear, then constant 0.05
    assert temps.iloc[0] == pytest.approx(0.02) and temps.iloc[3:].eq(0.05).all()
    assert temps.iloc[1] == pytest.approx(0.02 + 0.03 / 2.7)
    cfg["checkpoint_every"] = 2  # may change on resume; a mid-epoch checkpoint at step 4

    class Crash(Exception):
        pass

    def crash_at_step_5(_n, count=[0]):  # noqa: B006 (a counter)
        count[0] += 1
        if count[0] == 5:
            raise Crash

    # 48 rows / 16 = 3 steps per epoch: checkpoints after steps 2 (every 2), 3 (epoch), 4
    with pytest.raises(Crash):
        pretrain(cfg, out=tmp_path / "cut", progress=crash_at_step_5)
    assert not (tmp_path / "cut" / "run.json").exists()  # an interrupted run is not "complete"
    assert json.loads((tmp_path / "cut" / "checkpoint" / "last" / "state.json").read_text())[
        "step"] == 4
    resumed = pretrain({**cfg, "checkpoint_every": None}, out=tmp_path / "cut", resume=True)
    assert resumed["resumed_from_step"] == 4
    a = _weights(tmp_path / "full" / "encoder.safetensors")
    b = _weights(tmp_path / "cut" / "encoder.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = pd.read_csv(tmp_path / "cut" / "loss_log.csv")
    assert log["step"].tolist() == list(range(9))
    assert resumed["final_loss"] == pytest.approx(full["final_loss"], abs=1e-6)
    comp_full = pd.read_csv(tmp_path / "full" / "composition.csv")
    comp_cut = pd.read_csv(tmp_path / "cut" / "composition.csv")
    assert comp_full["n_seen"].tolist() == comp_cut["n_seen"].tolist()


def test_resumed_run_whose_config_changed_is_refused(cli, tiny_manifest, tmp_path, tiny_vit):
    out = tmp_path / "run"
    base = ("--objective", "simclr", "--option", "proj_hidden=32", "--option", "proj_dim=16")
    assert cli(*_args(tiny_manifest, out, tiny_vit, *base, "--steps", "3")).code == 0
    changed = cli(*_args(tiny_manifest, out, tiny_vit, *base, "--steps", "6", "--lr", "0.01",
                         "--resume"))
    assert changed.code == 2
    assert "config changed" in changed.err and "lr" in changed.err and "Traceback" not in changed.err
    # a longer run would change the schedules' length: refused, saying why
    longer = cli(*_args(tiny_manifest, out, tiny_vit, *base, "--steps", "6", "--resume"))
    assert longer.code == 2 and "schedules run over 3 steps" in longer.err and "--schedule-steps" in longer.err
    # started with the final schedule length, the run trains in chunks
    out2 = tmp_path / "chunks"
    assert cli(*_args(tiny_manifest, out2, tiny_vit, *base, "--steps", "3", "--schedule-steps", "6")).code == 0
    more = cli(*_args(tiny_manifest, out2, tiny_vit, *base, "--steps", "6", "--schedule-steps", "6", "--resume"))
    assert more.code == 0, more
    assert pd.read_csv(out2 / "loss_log.csv")["step"].tolist() == list(range(6))


def test_resume_after_the_manifest_was_edited_is_refused(cli, tiny_manifest, tmp_path, tiny_vit):
    frame = pd.read_csv(tiny_manifest)
    frame["path"] = [str((tiny_manifest.parent / p).resolve()) for p in frame["path"]]
    manifest = tmp_path / "m.csv"
    frame.to_csv(manifest, index=False)
    out = tmp_path / "run"
    base = ("--objective", "simclr", "--option", "proj_hidden=32", "--option", "proj_dim=16")
    assert cli(*_args(manifest, out, tiny_vit, *base, "--steps", "2")).code == 0
    frame.iloc[:-5].to_csv(manifest, index=False)  # same path, other rows: not the same run
    res = cli(*_args(manifest, out, tiny_vit, *base, "--steps", "4", "--resume"))
    assert res.code == 2 and "manifest_sha256" in res.err and "Traceback" not in res.err


def test_clip_trains_on_a_text_column(cli, tiny_manifest, tmp_path, tiny_vit):
    out = tmp_path / "clip"
    res = cli(*_args(tiny_manifest, out, tiny_vit, "--objective", "clip", "--steps", "3",
                     "--text-column", "caption", "--option", "embed_dim=16",
                     "--option", "text_width=16", "--option", "text_depth=1",
                     "--option", "text_heads=2"))
    assert res.code == 0, res
    assert "logit_scale" in pd.read_csv(out / "loss_log.csv").columns


@pytest.mark.parametrize("extra,message", [
    (("--objective", "clip", "--steps", "2"), "needs captions"),
    (("--objective", "clip", "--steps", "2", "--text-column", "captoin"), "did you mean 'caption'"),
    (("--objective", "mea", "--steps", "2"), "unknown objective"),
    (("--objective", "mae", "--steps", "2", "--image-size", "4"), "smaller than the patch size"),
    (("--objective", "mae", "--steps", "2", "--sampling", "balanced"), "needs --balance-by"),
    (("--objective", "mae", "--steps", "2", "--sampling", "balanced", "--balance-by", "sex",
      "--target", "female=1", "--target", "other=1"), "no rows"),
    (("--objective", "mae", "--steps", "2", "--option", "mask_rate=0.5"), "unknown option"),
    (("--objective", "mae", "--steps", "2", "--modality", "xrays"), "did you mean 'xray'"),
    (("--objective", "mae", "--steps", "2", "--target", "female=0.5"), "needs --sampling"),
    (("--objective", "mae", "--steps", "2", "--checkpoint-every", "0"), "checkpoint_every"),
])
def test_bad_input_is_one_clear_error_and_no_output(cli, tiny_manifest, tmp_path, tiny_vit,
                                                    extra, message):
    out = tmp_path / "bad"
    res = cli(*_args(tiny_manifest, out, tiny_vit, *extra))
    assert res.code == 2, res
    assert message in res.err and "Traceback" not in res.err
    assert not out.exists() or not any(out.iterdir())


def test_config_file_round_trip(cli, tiny_manifest, tmp_path, tiny_vit):
    import yaml

    out = tmp_path / "a"
    assert cli(*_args(tiny_manifest, out, tiny_vit, "--objective", "ijepa", "--steps", "2",
                      "--option", "predictor_dim=16", "--option", "predictor_depth=1",
                      "--option", "predictor_heads=2")).code == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["objective"] == "ijepa" and cfg["options"]["predictor_dim"] == 16
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    res = cli("pretrain", tmp_path / "cfg.yaml", "--out", tmp_path / "b")
    assert res.code == 0, res
    a = pd.read_csv(out / "loss_log.csv")["loss"]
    b = pd.read_csv(tmp_path / "b" / "loss_log.csv")["loss"]
    assert a.tolist() == b.tolist()  # same config and seed, same run
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**cfg, "stepz": 3}))
    bad = cli("pretrain", tmp_path / "bad.yaml", "--out", tmp_path / "c")
    assert bad.code == 2 and "stepz" in bad.err


def test_curated_subset_of_real_dermoscopy_images(cli, data_dir, tmp_path, tiny_vit):
    """HAM10000 (CC BY-NC, tests only): sample only the curated rows, stratified by sex."""
    meta = pd.read_csv(data_dir / "ham10000_images_224" / "metadata.csv")
    meta["keep"] = meta["dx"].isin(["mel", "nv"]).astype(int)
    manifest = tmp_path / "curated.csv"
    meta.to_csv(manifest, index=False)
    out = tmp_path / "derm"
    res = cli(*_args(manifest, out, tiny_vit, "--objective", "simclr", "--steps", "3",
                     "--option", "proj_hidden=32", "--option", "proj_dim=16",
                     "--path-column", "file", "--root", data_dir / "ham10000_images_224",
                     "--modality", "derm", "--keep-column", "keep",
                     "--sampling", "stratified", "--balance-by", "sex"))
    assert res.code == 0, res
    comp = pd.read_csv(out / "composition.csv")
    sex = comp[comp["attribute"] == "sex"].set_index("group")
    assert sex["n_in_manifest"].sum() == int(meta["keep"].sum()) == 140
    assert sex["n_seen"].sum() == 24
    # every batch of 8 holds the curated subset's sex mix (71 of 140 female -> 4 of 8)
    assert sex.loc["female", "n_seen"] == 12
