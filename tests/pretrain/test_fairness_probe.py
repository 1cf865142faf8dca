"""The fairness probe of pre-training / distillation: curves on the bundled NIH X-rays, selection
equal to the argmax of the validation probe, test rows never read, a planted effect seen with
CIs, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

import fairfoundry  # noqa: E402

NIH = Path(fairfoundry.__file__).parent / "datasets" / "_data" / "nih_images_256" / "manifest.csv"
TINY = {"model": "vit_tiny_patch16_224", "image_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2,
        "num_heads": 2, "batch_size": 16}
MAE = {"decoder_dim": 32, "decoder_depth": 1, "decoder_heads": 2}


@pytest.fixture(scope="module")
def nih(nih_probe_dir):
    """The bundled NIH X-rays: ``train.csv`` and ``probe.csv`` (see ``nih_probe_dir``)."""
    return nih_probe_dir


def _cfg(d, **kw):
    return {"objective": "mae", "manifest": str(d / "train.csv"), **TINY, "options": MAE, "steps": 4,
            "probe_every": 2, "probe_manifest": str(d / "probe.csv"), "probe_label": "No_Finding",
            "probe_sensitive": ["sex", "age"], "probe_bootstrap": 30, **kw}


def test_nih_pretraining_run_reports_probe_curves_and_keeps_the_argmax_checkpoint(nih, tmp_path):
    from fairfoundry.pretrain import load_pretrained_vit, pretrain
    from fairfoundry.pretrain._probe import ProbeOptions, load_probe_data, probe_embeddings

    out = tmp_path / "run"
    summary = pretrain(_cfg(nih, select="worst_group_auc"), out=out)
    probe = pd.read_csv(out / "probe.csv", keep_default_na=False, na_values=[""])
    assert list(probe.columns[:8]) == ["step", "metric", "attribute", "group", "estimate", "ci_low", "ci_high", "n"]
    assert sorted(probe["step"].unique()) == [0, 2, 4]  # start, every 2 steps, end
    # 75 validation rows only: the 70 test rows (unreadable paths) were never opened
    overall = probe[(probe["metric"] == "auc") & (probe["attribute"] == "overall")]
    assert (overall["n"] == 75).all() and (overall["ci_low"] <= overall["estimate"]).all()
    assert set(probe.loc[probe["metric"] == "auc", "attribute"]) == {"overall", "sex", "age", "sex&age"}
    assert set(probe.loc[probe["metric"] == "leakage_auc", "attribute"]) == {"sex", "age"}
    assert {"female", "male"} <= set(probe.loc[(probe["metric"] == "auc") & (probe["attribute"] == "sex"), "group"])
    # the report draws the curves (loss, overall, worst group, leakage) from a jinja2 template
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "worst group" in html and "leakage" in html.lower()
    assert (out / "curves.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    # the selected checkpoint is the argmax of the validation probe's worst-group AUC ...
    wg = probe[probe["metric"] == "worst_group_auc"].set_index("step")["estimate"]
    sel = summary["probe"]["selected"]
    assert sel["criterion"] == "worst_group_auc" and sel["step"] == int(wg.idxmax())
    assert sel["value"] == pytest.approx(wg.max())
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["probe"]["selected"]["step"] == sel["step"]
    assert run["config"]["select"] == "worst_group_auc"
    # ... and it is that step's encoder: re-probing the saved file gives the recorded value
    backbone, meta = load_pretrained_vit(out / "encoder_selected.safetensors")
    assert json.loads(meta["recipe"])["step"] == sel["step"]
    opts = ProbeOptions(manifest=str(nih / "probe.csv"), label="No_Finding", sensitive=("sex", "age"), every=2,
                        bootstrap=30)
    data = load_probe_data(opts)
    from fairfoundry.pretrain._data import ImageBank

    bank = ImageBank(data.frame["path"].tolist(), size=32)
    backbone.eval()
    with torch.inference_mode():
        emb = backbone((bank.batch(np.arange(len(bank))) - 0.5) / 0.5).numpy()
    again = probe_embeddings(emb, data, step=sel["step"])
    got = again.loc[again["metric"] == "worst_group_auc", "estimate"].iloc[0]
    assert got == pytest.approx(wg.loc[sel["step"]], abs=1e-6)


def test_the_probe_does_not_change_what_is_learned(tiny_manifest, tmp_path, tiny_vit, tiny_options):
    """Probing draws no random numbers of the run: the weights equal a run without probe."""
    from safetensors.torch import load_file

    from fairfoundry.pretrain import pretrain

    base = {"objective": "simclr", "manifest": str(tiny_manifest), **tiny_vit, "batch_size": 8, "steps": 3,
            "options": tiny_options["simclr"]}
    pretrain(base, out=tmp_path / "plain")
    pretrain({**base, "probe_every": 2, "probe_manifest": str(tiny_manifest), "probe_label": "label",
              "probe_sensitive": ["sex"], "probe_bootstrap": 0}, out=tmp_path / "probed")
    a = load_file(str(tmp_path / "plain" / "encoder.safetensors"))
    b = load_file(str(tmp_path / "probed" / "encoder.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the probe set was the pre-training set: a leakage warning in the run summary and report
    run = json.loads((tmp_path / "probed" / "run.json").read_text())
    assert any("leakage" in w for w in run["summary"]["probe"]["warnings"])
    assert "leakage: 48 of 48 probe images" in (tmp_path / "probed" / "report.html").read_text()


def _planted(n=400, seed=0, *, weak_group="male", leak=False, weak_signal=0.15):
    """Embeddings where the label is strongly encoded for women and barely for men (the pattern of
    an encoder pre-trained on women only); optionally one dimension encodes sex itself."""
    rng = np.random.default_rng(seed)
    sex = np.where(np.arange(n) % 2 == 0, "female", "male")
    y = (rng.random(n) < 0.4).astype(int)
    signal = np.where(sex == weak_group, weak_signal, 2.0)
    emb = rng.normal(size=(n, 8))
    emb[:, 0] += signal * y
    if leak:
        emb[:, 1] += 3.0 * (sex == "female")
    frame = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "patient_id": [f"p{i // 2}" for i in range(n)],
                          "path": [f"x{i}.png" for i in range(n)], "sex": sex, "y": y,
                          "age": rng.integers(20, 90, n).astype(float)})
    return emb, frame


def _data(frame, tmp_path, sensitive=("sex",)):
    from fairfoundry.pretrain._probe import ProbeOptions, load_probe_data

    frame.to_csv(tmp_path / "probe.csv", index=False)
    return load_probe_data(ProbeOptions(manifest=str(tmp_path / "probe.csv"), label="y", sensitive=sensitive,
                                        every=1, bootstrap=200))


@pytest.mark.parametrize("weak", ["male", "female"])
def test_planted_effect_the_weak_groups_probe_auc_lags_with_separated_cis(tmp_path, weak):
    from fairfoundry.pretrain._probe import probe_embeddings

    emb, frame = _planted(weak_group=weak)
    rows = probe_embeddings(emb, _data(frame, tmp_path), step=0)
    auc = rows[(rows["metric"] == "auc") & (rows["attribute"] == "sex")].set_index("group")
    strong = "female" if weak == "male" else "male"
    assert auc.loc[weak, "ci_high"] < auc.loc[strong, "ci_low"]  # CIs separate: the direction is real
    assert auc.loc[strong, "estimate"] > 0.85 and auc.loc[weak, "estimate"] < 0.7
    worst = rows[rows["metric"] == "worst_group_auc"].iloc[0]
    assert worst["group"] == f"sex={weak}"
    gap = rows[(rows["metric"] == "auc_gap") & (rows["attribute"] == "sex")].iloc[0]
    assert gap["ci_low"] > 0


def test_leakage_probe_sees_a_planted_attribute_and_not_an_absent_one(tmp_path):
    from fairfoundry.pretrain._probe import probe_embeddings

    for leak in (True, False):
        emb, frame = _planted(leak=leak, seed=3, weak_signal=2.0)  # same label signal in both sexes
        rows = probe_embeddings(emb, _data(frame, tmp_path), step=0)
        la = rows[(rows["metric"] == "leakage_auc") & (rows["attribute"] == "sex")].iloc[0]
        pv = rows[(rows["metric"] == "leakage_p_value") & (rows["attribute"] == "sex")].iloc[0]
        assert np.isnan(la["ci_low"]) and "leakage_p_value" in la["reason"]  # no CI that undercovers
        if leak:
            assert la["estimate"] > 0.9 and pv["estimate"] == 0.01 and pv["reason"].startswith("leakage")
        else:
            assert pv["estimate"] > 0.05 and pv["reason"].startswith("no evidence of leakage")


def _null_leak(seed: int, *, shift: float = 0.0, n: int = 200):
    """Embeddings of ``n`` rows (two per patient, sex constant per patient) with a label signal and
    ``shift`` of sex signal in one dimension (0: the null)."""
    rng = np.random.default_rng(seed)
    sex = np.repeat(np.where(rng.random(n // 2) < 0.5, "female", "male"), 2)
    emb = rng.normal(size=(n, 8))
    emb[:, 1] += shift * (sex == "male")
    return emb, sex, np.repeat([f"p{i}" for i in range(n // 2)], 2)


def test_leakage_permutation_test_null_false_positive_rate_and_planted_power():
    from fairfoundry.models import leakage_permutation_test

    # 150 seeded null runs: P(p < 0.05) <= 0.05 exactly; allow binomial noise (sd 0.018)
    null = [leakage_permutation_test(*_null_leak(k)[:2], classes=["female", "male"], cluster=_null_leak(k)[2],
                                     n_perm=39, seed=k)[1] for k in range(150)]
    assert np.mean(np.asarray(null) < 0.05) <= 0.07
    assert 0.3 < np.mean(null) < 0.7  # p-values spread over (0, 1], not piled at one end
    power = [leakage_permutation_test(*_null_leak(k, shift=0.8)[:2], classes=["female", "male"],
                                      cluster=_null_leak(k)[2], n_perm=39, seed=k)[1] for k in range(20)]
    assert np.mean(np.asarray(power) < 0.05) >= 0.9


def test_leakage_permutations_keep_patients_whole():
    from fairfoundry.models._probe import _cluster_permutations

    cluster = np.array(["a", "a", "b", "b", "c", "d", "d", "e"])
    perm = _cluster_permutations(cluster, 50, np.random.default_rng(0))
    for row in perm:
        assert sorted(row) == list(range(8))
        for c in ("a", "b", "d"):  # a size-2 patient's rows all come from one size-2 patient
            src = row[cluster == c]
            assert len(set(cluster[src])) == 1 and (cluster[src] != "c").all()
    assert len({tuple(r) for r in perm}) > 10


def test_a_group_with_one_class_is_nan_with_a_reason_and_a_warning(tmp_path, caplog):
    from fairfoundry.pretrain._probe import probe_embeddings

    emb, frame = _planted(n=200)
    frame["site"] = np.where(np.arange(200) < 20, "tiny", "big")
    frame.loc[frame["site"] == "tiny", "y"] = 1
    with caplog.at_level("WARNING", logger="fairfoundry.pretrain._probe"):
        data = _data(frame, tmp_path, sensitive=("site",))
    assert "site=tiny has only one class" in caplog.text
    rows = probe_embeddings(emb, data, step=0)
    tiny = rows[(rows["metric"] == "auc") & (rows["group"] == "tiny")].iloc[0]
    assert np.isnan(tiny["estimate"]) and "no negatives" in tiny["reason"]
    assert rows[rows["metric"] == "worst_group_auc"].iloc[0]["group"] == "site=big"


def _cli_args(manifest, out, *extra):
    return ["pretrain", "--objective", "mae", "--manifest", manifest, "--model", "timm:vit_tiny_patch16_224",
            "--image-size", "32", "--patch-size", "8", "--embed-dim", "32", "--depth", "2", "--num-heads", "2",
            "--batch-size", "8", "--steps", "2", "--option", "decoder_dim=32", "--option", "decoder_depth=1",
            "--option", "decoder_heads=2", "--out", out, *extra]


@pytest.mark.parametrize(("extra", "message"), [
    (["--select", "worst_group_auc"], "--select 'worst_group_auc' picks a checkpoint by the fairness probe"),
    (["--probe-every", "1", "--probe-label", "nope", "--probe-sensitive", "sex"],
     "label column 'nope' not found in probe manifest"),
    (["--probe-every", "1", "--probe-label", "label", "--probe-sensitive", "race"],
     "sensitive attribute column 'race' not found in probe manifest"),
    (["--probe-every", "1", "--probe-sensitive", "sex"], "needs probe_label"),
    (["--probe-label", "label"], "probe_label is set but probe_every is not"),
])
def test_bad_probe_input_exits_2_with_one_message_and_writes_nothing(cli, tiny_manifest, tmp_path, extra, message):
    out = tmp_path / "o"
    args = _cli_args(tiny_manifest, out, *extra)
    if "--probe-every" in extra:
        args += ["--probe-manifest", str(tiny_manifest)]
    res = cli(*args)
    assert res.code == 2, res
    assert message in res.err and "Traceback" not in res.err
    assert not (out / "run.json").exists() and not (out / "probe.csv").exists()
    assert not (out / "checkpoint" / "run_config.json").exists()


def test_cli_probe_and_select_dto(cli, tiny_manifest, tmp_path):
    out = tmp_path / "dto"
    res = cli(*_cli_args(tiny_manifest, out, "--probe-every", "1", "--probe-manifest", str(tiny_manifest),
                         "--probe-label", "label", "--probe-sensitive", "sex", "--probe-bootstrap", "0",
                         "--probe-permutations", "19", "--select", "dto"))
    assert res.code == 0, res
    echo = json.loads(res.out.strip().splitlines()[-1])
    probe = pd.read_csv(out / "probe.csv")
    from fairfoundry.adapt._selection import dto

    g = probe[(probe["metric"] == "auc") & (probe["attribute"] == "sex")].pivot(index="step", columns="group",
                                                                                 values="estimate")
    assert echo["probes"] == 3 and echo["selected"]["step"] == int(g.index[np.argmin(dto(g.to_numpy()))])
    assert (out / "encoder_selected.safetensors").exists()
    p = probe.loc[probe["metric"] == "leakage_p_value", "estimate"].to_numpy()
    assert len(p) and np.allclose(p * 20, np.round(p * 20))  # (1 + k) / (1 + 19): --probe-permutations 19


@pytest.mark.parametrize("adaptation", ["full", "lora"])
def test_fit_from_images_writes_the_same_probe_curves(cli, tmp_path, adaptation):
    """``fit --adaptation full|lora --probe-every N`` probes the fine-tuned backbone on the
    validation split with the probe of pre-training (same probe.csv format), and its model card
    reports the probe."""
    from fairfoundry.pretrain import build_vit, save_vit

    torch.manual_seed(0)
    enc = tmp_path / "tiny.safetensors"
    save_vit(build_vit(**{k: v for k, v in TINY.items() if k != "batch_size"}), enc, image_size=32,
             pixel_mean=[0.5] * 3, pixel_std=[0.5] * 3)
    m = pd.read_csv(NIH).head(100)
    m["path"] = [str(NIH.parent / p) for p in m["path"]]
    m["split"] = np.array(["train", "train", "val", "test"])[np.arange(100) % 4]
    m.to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "fit"
    r = cli("fit", "--manifest", tmp_path / "m.csv", "--encoder", enc, "--adaptation", adaptation, "--label",
            "No_Finding", "--sensitive", "sex", "--out", out, "--no-html", "--epochs", "2", "--batch-size", "20",
            "--bootstrap", "0", "--no-emissions", "--probe-every", "2", "--probe-bootstrap", "20",
            "--probe-permutations", "0", "--select", "overall_auc")
    assert r.code == 0, r
    probe = pd.read_csv(out / "probe.csv")
    assert set(probe["step"]) >= {0, 2, 4}  # 50 train rows, 20 a batch: 3 steps an epoch
    assert set(probe["metric"]) >= {"auc", "worst_group_auc", "leakage_auc"}
    assert probe.loc[probe["metric"] == "leakage_p_value", "estimate"].isna().all()  # --probe-permutations 0
    assert (probe.loc[probe["attribute"] == "overall", "n"] == 25).all()  # the 25 validation rows only
    run = json.loads((out / "run.json").read_text())
    assert run["run"]["probe"]["probes"] == probe["step"].nunique()
    assert json.loads((out / "head.json").read_text())["adaptation"] == adaptation
    # the model card reports the probe and its best step by fit's criterion (the argmax of the
    # validation probe), and says the weights come from fit's own selection
    o = probe[(probe["metric"] == "auc") & (probe["attribute"] == "overall")].set_index("step")["estimate"]
    card = json.loads((out / "model_card.json").read_text())
    sel = card["fairness_probe"]["selected"]
    assert sel["criterion"] == "overall_auc" and sel["step"] == int(o.idxmax())
    assert sel["value"] == pytest.approx(o.max())
    md = (out / "model_card.md").read_text()
    assert "## Fairness probe during fine-tuning (validation, 95% CI)" in md
    assert f"Selected step: **{sel['step']}**" in md and "Reported, not applied" in md
    assert "the probe read the 25 rows of `split == val`" in md and "25 `test` rows" in md
    at = card["fairness_probe"]["at_selected"]
    assert at["overall_auc"]["estimate"] == pytest.approx(o.max()) and at["overall_auc"]["n"] == 25
    assert not (out / "encoder_selected.safetensors").exists()  # fit reports the probe; it chooses nothing by it


def test_grid_cells_that_fine_tune_from_images_carry_the_probe(tmp_path):
    from fairfoundry.bench import grid_cells, load_grid

    pd.read_csv(NIH).head(4).to_csv(tmp_path / "m.csv", index=False)
    spec = load_grid({"datasets": [{"name": "nih", "manifest": str(tmp_path / "m.csv"), "label": "No_Finding",
                                    "sensitive": ["sex"]}],
                      "encoders": ["fairfoundry-tiny"], "adaptations": ["probe", "lora", "full"],
                      "fit": {"probe_every": 5, "probe_bootstrap": 50}})
    cfg = {c.adaptation: c.fit_config for c in grid_cells(spec)}
    assert "probe_every" not in cfg["linear-probe"]  # frozen encoder: nothing to probe during training
    assert cfg["lora-r8"]["probe_every"] == 5 and cfg["full"]["probe_bootstrap"] == 50
    from fairfoundry.pipeline import load_fit_config

    assert load_fit_config(cfg["full"]).probe_every == 5


def test_distill_probes_the_student(tiny_manifest, tmp_path, tiny_vit, write_textures_fn):
    from fairfoundry.pretrain import DistillConfig, TimmTeacher, build_vit, distill

    held = tmp_path / "held"
    frame = write_textures_fn(held, 40, seed=5)
    frame["split"] = "val"
    frame.to_csv(held / "manifest.csv", index=False)
    torch.manual_seed(1)
    teacher = TimmTeacher(build_vit(**tiny_vit), name="t")
    cfg = DistillConfig(manifest=str(tiny_manifest), **tiny_vit, steps=4, batch_size=16, probe_every=2,
                        probe_manifest=str(held / "manifest.csv"), probe_label="label", probe_sensitive=["sex"],
                        probe_bootstrap=0, select="overall_auc")
    summary = distill(cfg, out=tmp_path / "d", teachers=[teacher])
    probe = pd.read_csv(tmp_path / "d" / "probe.csv")
    assert sorted(probe["step"].unique()) == [0, 2, 4] and not summary["probe"]["warnings"]
    o = probe[(probe["metric"] == "auc") & (probe["attribute"] == "overall")].set_index("step")["estimate"]
    assert summary["probe"]["selected"]["step"] == int(o.idxmax())
    assert (tmp_path / "d" / "encoder_selected.safetensors").exists()


def test_a_resumed_probed_run_has_the_probes_and_selection_of_the_uninterrupted_run(tiny_manifest, tmp_path,
                                                                                     tiny_vit, tiny_options):
    from fairfoundry.pretrain import pretrain

    base = {"objective": "mae", "manifest": str(tiny_manifest), **tiny_vit, "options": tiny_options["mae"],
            "batch_size": 16, "schedule_steps": 4, "probe_every": 1, "probe_manifest": str(tiny_manifest),
            "probe_label": "label", "probe_sensitive": ["sex"], "probe_bootstrap": 0, "select": "dto"}
    pretrain({**base, "steps": 4}, out=tmp_path / "full")
    pretrain({**base, "steps": 2}, out=tmp_path / "part")
    pretrain({**base, "steps": 4}, out=tmp_path / "part", resume=True)
    a, b = (pd.read_csv(tmp_path / r / "probe.csv") for r in ("full", "part"))
    pd.testing.assert_frame_equal(a, b)
    sel = [json.loads((tmp_path / r / "run.json").read_text())["summary"]["probe"]["selected"] for r in ("full", "part")]
    assert sel[0] == sel[1]
    from safetensors.torch import load_file

    wa, wb = (load_file(str(tmp_path / r / "encoder_selected.safetensors")) for r in ("full", "part"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # the same weights (CPU: bit-identical)


def test_leakage_permutation_test_more_dimensions_than_rows_and_three_groups():
    from fairfoundry.models import leakage_permutation_test

    rng = np.random.default_rng(5)
    g = np.repeat(["a", "b", "c"], 30)
    emb = rng.normal(size=(90, 200))  # d > n: the dual form of the ridge solve
    t0, p0 = leakage_permutation_test(emb, g, classes=["a", "b", "c"], n_perm=49, seed=1)
    emb[:, :5] += 1.5 * (g == "c")[:, None]
    t1, p1 = leakage_permutation_test(emb, g, classes=["a", "b", "c"], n_perm=49, seed=1)
    assert p0 > 0.05 and p1 == 1 / 50 and t1 > 0.65 and t1 > t0 + 0.1
    assert np.isnan(leakage_permutation_test(emb, g, classes=["a", "b", "c"], n_perm=0)[1])


def _gap_rows(tmp_path, seed: int, *, label_gap: float):
    """The probe's rows on 300 synthetic embeddings (two per patient, sex constant per patient),
    label signal 1 sd in women and ``1 + label_gap`` sd in men."""
    from fairfoundry.pretrain._probe import ProbeOptions, load_probe_data, probe_embeddings

    rng = np.random.default_rng(seed)
    n = 300
    sex = np.repeat(np.where(rng.random(n // 2) < 0.5, "female", "male"), 2)
    y = (rng.random(n) < 0.4).astype(int)
    emb = rng.normal(size=(n, 6))
    emb[:, 0] += (1.0 + label_gap * (sex == "male")) * y
    frame = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "patient_id": [f"p{i // 2}" for i in range(n)],
                          "path": [f"x{i}.png" for i in range(n)], "sex": sex, "y": y})
    frame.to_csv(tmp_path / "m.csv", index=False)
    data = load_probe_data(ProbeOptions(manifest=str(tmp_path / "m.csv"), label="y", sensitive=("sex",), every=1,
                                        bootstrap=0, permutations=39, seed=seed))
    rows = probe_embeddings(emb, data, step=0)
    return rows[(rows["metric"] == "auc_gap_p_value") & (rows["attribute"] == "sex")].iloc[0]


def test_the_auc_gap_permutation_test_is_calibrated_and_finds_a_planted_gap(tmp_path):
    null = [_gap_rows(tmp_path, k, label_gap=0.0) for k in range(60)]
    p = np.array([r["estimate"] for r in null])
    assert np.mean(p < 0.05) <= 0.12  # nominal 0.05 (exact); binomial sd 0.028 at 60 runs
    assert 0.3 < p.mean() < 0.7
    assert all(r["reason"].split(" (")[0] in ("groups differ", "no clear difference") for r in null)
    planted = [_gap_rows(tmp_path, 1000 + k, label_gap=2.0) for k in range(8)]
    assert np.mean([r["estimate"] < 0.05 for r in planted]) >= 0.75
    assert all(r["reason"].startswith("groups differ") for r in planted if r["estimate"] < 0.05)
