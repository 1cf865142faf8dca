"""The conditional diffusion generator: seeded, resumable, guided, registry-filled, safe checkpoints."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from fairfoundry._errors import FairfoundryError  # noqa: E402
from fairfoundry.synth import (  # noqa: E402
    GENERATORS,
    Conditions,
    DiffusionConfig,
    DiffusionGenerator,
    get_generator,
    list_generators,
    make_toy_shapes,
    parse_cells,
)

TINY = {"image_size": 16, "channel_mult": (1, 2), "base_channels": 8, "attention": False, "batch_size": 8,
        "checkpoint_every": 1}


@pytest.fixture(scope="module")
def toy():
    return make_toy_shapes(size=16, n_per_cell=4, seed=0)


def _weights(gen):
    return {k: v.clone() for k, v in gen.module.state_dict().items()}


def test_registry_is_filled_by_the_decorator():
    assert "ddpm" in list_generators() and get_generator("ddpm") is DiffusionGenerator
    assert GENERATORS["ddpm"].name == "ddpm"
    with pytest.raises(FairfoundryError, match="unknown generator"):
        get_generator("gan")


def test_same_seed_same_weights_and_samples_other_seed_differs(toy):
    a = DiffusionGenerator(DiffusionConfig(**TINY, steps=4, seed=1), toy.conditions).fit(toy.images, toy.codes)
    b = DiffusionGenerator(DiffusionConfig(**TINY, steps=4, seed=1), toy.conditions).fit(toy.images, toy.codes)
    c = DiffusionGenerator(DiffusionConfig(**TINY, steps=4, seed=2), toy.conditions).fit(toy.images, toy.codes)
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)
    codes = [[0, 1], [1, 0]]
    assert torch.equal(a.sample(codes, seed=3, sample_steps=3), b.sample(codes, seed=3, sample_steps=3))
    assert not torch.equal(a.sample(codes, seed=3, sample_steps=3), a.sample(codes, seed=4, sample_steps=3))
    # EMA weights differ from the raw ones after training (the average lags)
    assert any(not torch.equal(wa[f"ema.{k}"], wa[f"net.{k}"]) for k in a.module.net.state_dict()
               if k.endswith("weight"))


def test_resumed_training_equals_an_uninterrupted_run(toy, tmp_path):
    full = DiffusionGenerator(DiffusionConfig(**TINY, steps=6), toy.conditions)
    full.fit(toy.images, toy.codes)
    part = DiffusionGenerator(DiffusionConfig(**TINY, steps=2), toy.conditions)
    part.fit(toy.images, toy.codes, checkpoint_dir=tmp_path / "ck")
    assert (tmp_path / "ck" / "last" / "weights.safetensors").exists()
    rest = DiffusionGenerator(DiffusionConfig(**TINY, steps=6), toy.conditions)
    rest.fit(toy.images, toy.codes, checkpoint_dir=tmp_path / "ck", resume=True)
    wf, wr = _weights(full), _weights(rest)
    assert all(torch.allclose(wf[k], wr[k], atol=1e-6) for k in wf)


def test_extending_a_run_that_ended_mid_epoch_reaches_the_requested_steps(toy, tmp_path):
    part = DiffusionGenerator(DiffusionConfig(**TINY, steps=3), toy.conditions)  # 2 steps per epoch
    part.fit(toy.images, toy.codes, checkpoint_dir=tmp_path / "ck")
    more = DiffusionGenerator(DiffusionConfig(**TINY, steps=8), toy.conditions)
    more.fit(toy.images, toy.codes, checkpoint_dir=tmp_path / "ck", resume=True)
    assert more.train_info["steps"] == 8


def test_guidance_and_samplers(toy):
    gen = DiffusionGenerator(DiffusionConfig(**TINY, steps=3), toy.conditions).fit(toy.images, toy.codes)
    codes = [[0, 0]] * 3
    s1 = gen.sample(codes, seed=0, guidance=1.0, sample_steps=4)
    s3 = gen.sample(codes, seed=0, guidance=3.0, sample_steps=4)
    assert s1.shape == (3, 1, 16, 16) and float(s1.abs().max()) <= 1.0
    assert not torch.equal(s1, s3)  # the unconditional branch enters with s != 1
    assert gen.sample(codes, seed=0, sampler="ddpm", sample_steps=4).shape == (3, 1, 16, 16)
    with pytest.raises(FairfoundryError, match="sampler"):
        gen.sample(codes, sampler="euler")


def test_weights_round_trip_and_another_configs_checkpoint_is_refused(toy, tmp_path):
    gen = DiffusionGenerator(DiffusionConfig(**TINY, steps=2), toy.conditions).fit(toy.images, toy.codes)
    gen.save_weights(tmp_path / "w.safetensors")
    back = DiffusionGenerator(DiffusionConfig(**TINY, steps=2), toy.conditions)
    back.load_weights(tmp_path / "w.safetensors")
    assert torch.equal(back.sample([[1, 1]], seed=0, sample_steps=2), gen.sample([[1, 1]], seed=0, sample_steps=2))
    other = DiffusionGenerator(DiffusionConfig(**{**TINY, "base_channels": 16}, steps=2), toy.conditions)
    with pytest.raises(FairfoundryError, match="another config"):
        other.load_weights(tmp_path / "w.safetensors")


def test_config_validation_names_the_setting():
    with pytest.raises(FairfoundryError, match="divisible"):
        DiffusionConfig(image_size=30, channel_mult=(1, 2, 2))
    with pytest.raises(FairfoundryError, match="unknown generator setting"):
        DiffusionConfig.from_user(imagesize=32)


def test_cells_parse_against_the_training_vocabulary():
    import pandas as pd

    frame = pd.DataFrame({"y": [0, 1, 1, 0], "sex": ["female", "female", "male", "unknown"]})
    cond, keep = Conditions.from_frame(frame, ["y", "sex"], where="t")
    assert keep.tolist() == [True, True, True, False] and cond.values == (("0", "1"), ("female", "male"))
    cells = parse_cells("y=1,sex=female:5; sex=male,y=1:2", cond)
    assert [(c.name, c.n) for c in cells] == [("y=1,sex=female", 5), ("y=1,sex=male", 2)]
    with pytest.raises(FairfoundryError, match="no training images"):
        parse_cells("y=0,sex=male:3", cond)  # both values exist, the combination does not
    with pytest.raises(FairfoundryError, match="does not set sex"):
        parse_cells("y=1:3", cond)


def test_cell_balance_makes_every_condition_cell_equally_likely(toy):
    import numpy as np

    from fairfoundry.synth._diffusion import cell_balance_weights, config_hash

    codes = np.array([[0, 0]] * 20 + [[0, 1]] * 60 + [[1, 0]] * 60 + [[1, 1]] * 60)
    w = cell_balance_weights(codes)
    assert w.sum() == pytest.approx(1.0)
    for cell in ([0, 0], [0, 1], [1, 0], [1, 1]):
        assert w[(codes == cell).all(1)].sum() == pytest.approx(0.25)
    # drawn through the training loop: the 20-image cell is a quarter of the draws, not a tenth
    keep = np.r_[np.flatnonzero((toy.codes == toy.codes[0]).all(1))[:1], np.arange(len(toy.codes))]
    images, cond = toy.images[keep], toy.codes[keep]
    bal = DiffusionGenerator(DiffusionConfig(**TINY, steps=3, balance="cells"), toy.conditions).fit(images, cond)
    plain = DiffusionGenerator(DiffusionConfig(**TINY, steps=3), toy.conditions).fit(images, cond)
    assert any(not torch.equal(a, b) for a, b in zip(_weights(bal).values(), _weights(plain).values(), strict=True))
    # the default keeps the hash generators had before the setting existed; "cells" is another identity
    assert "balance" not in DiffusionConfig(**TINY).identity()
    assert config_hash(DiffusionConfig(**TINY), toy.conditions) != config_hash(
        DiffusionConfig(**TINY, balance="cells"), toy.conditions)
    with pytest.raises(FairfoundryError, match="unknown balance"):
        DiffusionConfig(balance="groups")


def test_joint_embedding_gives_each_cell_its_own_row_and_samples(toy):
    cfg = DiffusionConfig(**TINY, steps=2, joint_embedding=True)
    gen = DiffusionGenerator(cfg, toy.conditions).fit(toy.images, toy.codes)
    sizes = toy.conditions.sizes
    assert gen.module.ema.joint.num_embeddings == int(torch.prod(torch.as_tensor(sizes) + 1))
    out = gen.sample([[0, 1], [1, 0]], seed=0, sample_steps=2)  # guidance uses the all-"none" row
    assert out.shape[0] == 2 and torch.isfinite(out).all()
    assert "joint_embedding" in cfg.identity() and "joint_embedding" not in DiffusionConfig(**TINY).identity()


def test_resuming_a_finished_run_takes_no_further_step(toy, tmp_path):
    done = DiffusionGenerator(DiffusionConfig(**TINY, steps=4), toy.conditions)  # ends at an epoch end
    done.fit(toy.images, toy.codes, checkpoint_dir=tmp_path / "ck")
    again = DiffusionGenerator(DiffusionConfig(**TINY, steps=4), toy.conditions)
    again.fit(toy.images, toy.codes, checkpoint_dir=tmp_path / "ck", resume=True)
    assert again.train_info["steps"] == 4
    wd, wa = _weights(done), _weights(again)
    assert all(torch.equal(wd[k], wa[k]) for k in wd)


def test_min_snr_weights_follow_the_formula():
    from fairfoundry.synth._diffusion import _make_schedulers, min_snr_weights

    ddpm, _ = _make_schedulers(DiffusionConfig(**TINY))
    t = torch.tensor([0, 100, 500, 900, 999])
    abar = ddpm.alphas_cumprod.double()[t]
    snr = abar / (1 - abar)
    w = min_snr_weights(ddpm, t, 5.0)
    expected = torch.where(snr > 5, 5 / snr, torch.ones_like(snr)).float()
    assert torch.allclose(w, expected)
    assert w[0] < 1e-3 and w[-1] == 1.0  # nearly clean steps down-weighted, noisy steps kept


def test_scale_shift_and_snr_gamma_train_sample_and_change_the_hash(toy, tmp_path):
    plain = DiffusionGenerator(DiffusionConfig(**TINY, steps=2), toy.conditions)
    ada = DiffusionGenerator(DiffusionConfig(**TINY, steps=2, scale_shift=True, snr_gamma=5.0), toy.conditions)
    assert plain.hash != ada.hash
    # adaptive group norm: each block's time projection yields a scale and a shift (twice the width)
    proj = ada.module.net.unet.down_blocks[0].resnets[0].time_emb_proj
    assert proj.out_features == 2 * plain.module.net.unet.down_blocks[0].resnets[0].time_emb_proj.out_features
    ada.fit(toy.images, toy.codes)
    x = ada.sample([[0, 1], [1, 0]], seed=0, sample_steps=3)
    assert x.shape == (2, 1, 16, 16) and torch.isfinite(x).all()
    ada.save_weights(tmp_path / "w.safetensors")
    with pytest.raises(FairfoundryError, match="another config"):
        plain.load_weights(tmp_path / "w.safetensors")
    with pytest.raises(FairfoundryError, match="snr_gamma"):
        DiffusionConfig(**TINY, snr_gamma=0.0)
