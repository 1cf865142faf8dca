"""Each objective learns on tiny data, with the mechanics its paper describes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from fairfoundry._errors import FairfoundryError  # noqa: E402
from fairfoundry.pretrain import (  # noqa: E402
    OBJECTIVES,
    Augment,
    ImageBank,
    build_objective,
    build_vit,
    byte_tokenize,
    load_manifest,
)


@pytest.fixture(scope="module")
def batch(tiny_manifest):
    frame, _ = load_manifest(tiny_manifest)
    bank = ImageBank(frame["path"].tolist(), size=32)
    idx = list(range(16))
    return bank.batch(idx), byte_tokenize(frame["caption"].iloc[idx].tolist(), context_length=40)


@pytest.fixture
def make(tiny_vit, tiny_options):
    def _objective(name, seed=0):
        torch.manual_seed(seed)
        backbone = build_vit(**tiny_vit)
        aug = Augment.preset("xray", **OBJECTIVES[name].augment_overrides)
        return build_objective(name, backbone, augment=aug, **tiny_options[name])

    return _objective


@pytest.mark.parametrize("name", ["mae", "simclr", "dino", "ijepa", "clip", "siglip"])
def test_loss_decreases_over_20_steps(name, batch, make):
    images, text = batch
    obj = make(name)
    opt = torch.optim.AdamW([p for p in obj.parameters() if p.requires_grad], lr=2e-3)
    curve = []
    for step in range(20):
        loss, logs = obj.compute_loss(images, text=text,
                                      generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        obj.on_step_end(step, 20)
        # DINO's cross-entropy = teacher entropy (moved by centring) + KL(teacher || student);
        # the KL is what the student minimises
        curve.append(logs["kl"] if name == "dino" else float(loss.detach()))
    first, last = sum(curve[:3]) / 3, sum(curve[-3:]) / 3
    assert last < 0.9 * first, (name, curve)


def test_dino_teacher_is_an_ema_of_the_student(batch, make):
    images, _ = batch
    obj = make("dino")
    t0 = obj.teacher_backbone.net.patch_embed.proj.weight.detach().clone()
    opt = torch.optim.SGD([p for p in obj.parameters() if p.requires_grad], lr=0.5)
    loss, _ = obj.compute_loss(images, generator=torch.Generator().manual_seed(0))
    loss.backward()
    opt.step()
    s1 = obj.backbone.net.patch_embed.proj.weight.detach().clone()
    obj.on_step_end(0, 100)  # momentum 0.996 at the start of the cosine schedule
    t1 = obj.teacher_backbone.net.patch_embed.proj.weight
    assert torch.allclose(t1, 0.996 * t0 + 0.004 * s1, atol=1e-6)
    assert not any(p.requires_grad for p in obj.teacher_backbone.parameters())
    assert obj.export_encoder() is obj.teacher_backbone
    assert float(obj.center.abs().sum()) > 0  # centring ran


def test_mae_hides_three_quarters_and_encodes_only_the_rest(make):
    obj = make("mae")
    keep, mask = obj.random_mask(4, 16, generator=torch.Generator().manual_seed(0))
    assert keep.shape == (4, 4) and mask.sum(dim=1).tolist() == [12.0] * 4
    assert all(mask[b, keep[b]].sum() == 0 for b in range(4))


def test_ijepa_context_excludes_targets():
    from fairfoundry.pretrain._ijepa import sample_block_masks

    ctx, tgt = sample_block_masks(8, 8, 8, generator=torch.Generator().manual_seed(0))
    assert ctx.shape[0] == 8 and tgt.shape[:2] == (8, 4)
    for b in range(8):
        assert not set(ctx[b].tolist()) & set(tgt[b].reshape(-1).tolist())


def test_xray_augmentation_keeps_grayscale_unless_colour_is_asked():
    g = torch.Generator().manual_seed(0)
    gray = torch.rand(6, 1, 32, 32).expand(-1, 3, -1, -1).contiguous()
    out = Augment.preset("xray")(gray, size=32, generator=g)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert not torch.allclose(out, gray)  # it did augment
    coloured = Augment.preset("xray", color_jitter=0.3)(gray, size=32, generator=g)
    assert (coloured[:, 0] - coloured[:, 1]).abs().max() > 0.01
    # no horizontal flip on X-rays: a bright left half stays on the left
    left = torch.zeros(4, 3, 32, 32)
    left[..., :16] = 1.0
    plain = Augment.preset("xray", scale=(1.0, 1.0), ratio=(1.0, 1.0), rotation=0.0, brightness=0.0,
                           contrast=0.0, gamma=0.0, blur=0.0)
    assert torch.allclose(plain(left, size=32, generator=g), left, atol=1e-5)


def test_image_smaller_than_patch_grid_is_a_clear_error(tiny_vit):
    with pytest.raises(FairfoundryError, match="smaller than the patch size"):
        build_vit(**{**tiny_vit, "image_size": 4}).grid(torch.zeros(1, 3, 4, 4))
    backbone = build_vit(**tiny_vit)
    with pytest.raises(FairfoundryError, match="not a multiple"):
        backbone(torch.zeros(1, 3, 36, 36))
    with pytest.raises(FairfoundryError, match="unknown objective"):
        build_objective("mea", backbone)
    with pytest.raises(FairfoundryError, match="mask_ratio"):
        build_objective("mae", backbone, mask_rate=0.5)


def test_backbone_runs_on_other_resolutions(tiny_vit):
    backbone = build_vit(**tiny_vit)
    assert backbone(torch.zeros(2, 3, 16, 16)).shape == (2, 32)
    assert backbone(torch.zeros(2, 3, 48, 48)).shape == (2, 32)


def test_objective_names_for_the_cli_match_the_registry_without_importing_torch():
    import subprocess
    import sys

    from fairfoundry.pretrain import OBJECTIVES
    from fairfoundry.pretrain._names import objective_names

    assert sorted(objective_names()) == sorted(OBJECTIVES)
    assert {"mae", "simclr", "dino", "ijepa", "clip", "siglip"} <= set(OBJECTIVES)
    code = ("import sys; from fairfoundry.pretrain._names import objective_names; "
            "objective_names(); import fairfoundry.cli._pretrain; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_cnn_backbone_is_a_clear_error():
    from fairfoundry.pretrain import build_vit

    with pytest.raises(FairfoundryError, match="not a Vision Transformer") as err:
        build_vit("timm:resnet18", image_size=32)
    assert "vit_tiny_patch16_224" in err.value.hint


def test_weight_decay_spares_biases_norms_tokens_and_the_logit_scale_and_bias(make):
    import math

    from fairfoundry.pretrain._train import decay_parameters

    obj = make("siglip")
    decayed = {id(p) for p in decay_parameters(obj)}
    names = {n for n, p in obj.named_parameters() if id(p) in decayed}
    assert "backbone.net.blocks.0.attn.qkv.weight" in names
    spared = {"logit_scale", "logit_bias", "backbone.net.pos_embed", "backbone.net.cls_token",
              "backbone.net.blocks.0.norm1.weight", "backbone.net.blocks.0.attn.qkv.bias"}
    assert not spared & names

    clip = make("clip")  # open_clip clamps the log scale after each step, at log 100
    with torch.no_grad():
        clip.logit_scale.fill_(7.0)
    clip.on_step_end(0, 10)
    assert float(clip.logit_scale.detach()) == pytest.approx(math.log(100))
