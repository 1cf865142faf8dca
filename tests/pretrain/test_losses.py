"""The losses as plain functions: open_clip as the oracle for CLIP/SigLIP, definitions for the rest."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
open_clip_loss = pytest.importorskip("open_clip.loss")

from fairfoundry.pretrain import losses  # noqa: E402


def _features(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(img + 0.5 * torch.randn(n, d, generator=g), dim=-1)
    return img.double(), txt.double()


@pytest.mark.parametrize("n,d,scale,seed", [(8, 16, 1 / 0.07, 0), (32, 64, 100.0, 1), (5, 3, 2.5, 2)])
def test_clip_loss_equals_open_clip(n, d, scale, seed):
    img, txt = _features(n, d, seed)
    s = torch.tensor(scale, dtype=torch.float64)
    ours = losses.clip_loss(img, txt, s)
    ref = open_clip_loss.ClipLoss()(img, txt, s)
    assert abs(float(ours) - float(ref)) < 1e-5


@pytest.mark.parametrize("n,d,scale,bias,seed", [(8, 16, 10.0, -10.0, 0), (32, 64, 3.0, 0.5, 1),
                                                 (4, 8, 20.0, -3.0, 2)])
def test_siglip_loss_equals_open_clip(n, d, scale, bias, seed):
    img, txt = _features(n, d, seed)
    s, b = torch.tensor(scale, dtype=torch.float64), torch.tensor(bias, dtype=torch.float64)
    ours = losses.siglip_loss(img, txt, s, b)
    ref = open_clip_loss.SigLipLoss()(img, txt, s, b)
    assert abs(float(ours) - float(ref)) < 1e-5


def test_clip_loss_gradients_match_open_clip():
    img, txt = _features(16, 8, 3)
    a = img.clone().requires_grad_(True)
    b = img.clone().requires_grad_(True)
    s = torch.tensor(14.0, dtype=torch.float64)
    losses.clip_loss(a, txt, s).backward()
    open_clip_loss.ClipLoss()(b, txt, s).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-10)


def test_mae_loss_ignores_visible_patches():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 16, 12, generator=g)
    target = torch.randn(2, 16, 12, generator=g)
    mask = (torch.rand(2, 16, generator=g) < 0.75).float()
    mask[:, 0], mask[:, 1] = 1.0, 0.0
    for norm in (False, True):
        base = losses.mae_loss(pred, target, mask, norm_pix_loss=norm)
        changed = target.clone()
        changed[mask == 0] = torch.randn(int((mask == 0).sum()), 12, generator=g) * 100
        assert float(losses.mae_loss(pred, changed, mask, norm_pix_loss=norm)) == pytest.approx(
            float(base), abs=1e-6)
        changed[mask == 0] = float("inf")  # even non-finite visible targets do not leak in
        assert float(losses.mae_loss(pred, changed, mask, norm_pix_loss=norm)) == pytest.approx(
            float(base), abs=1e-6)
        hidden = target.clone()
        hidden[:, 0] = torch.randn(2, 12, generator=g) * 3  # patch 0 is hidden in both images
        assert abs(float(losses.mae_loss(pred, hidden, mask, norm_pix_loss=norm)) - float(base)) > 1e-3


def test_mae_loss_is_mean_squared_error_over_hidden_patches():
    pred = torch.zeros(1, 4, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]]])
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    assert float(losses.mae_loss(pred, target, mask)) == pytest.approx((1 + 9) / 2)


def test_nt_xent_matches_a_direct_implementation():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    tau = 0.2
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=-1)
    total = 0.0
    for i in range(12):
        pos = (i + 6) % 12
        num = math.exp(float(z[i] @ z[pos]) / tau)
        den = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(12) if k != i)
        total += -math.log(num / den)
    assert float(losses.nt_xent_loss(z1, z2, temperature=tau)) == pytest.approx(total / 12, rel=1e-5)
    # two identical views score better than unrelated ones
    assert losses.nt_xent_loss(z1, z1) < losses.nt_xent_loss(z1, z2)


def test_dino_loss_is_cross_entropy_over_crop_pairs():
    g = torch.Generator().manual_seed(0)
    s = [torch.randn(4, 10, generator=g) for _ in range(3)]
    t = [torch.randn(4, 10, generator=g) for _ in range(2)]
    c = torch.randn(1, 10, generator=g)

    def ce(tt, ss):
        q = torch.softmax((tt - c) / 0.04, dim=-1)
        return float((-q * torch.log_softmax(ss / 0.1, dim=-1)).sum(-1).mean())

    expected = (ce(t[0], s[1]) + ce(t[0], s[2]) + ce(t[1], s[0]) + ce(t[1], s[2])) / 4
    assert float(losses.dino_loss(s, t, c)) == pytest.approx(expected, rel=1e-5)


def test_distillation_losses():
    a = torch.randn(3, 5)
    assert float(losses.cosine_loss(a, 2 * a)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.cosine_loss(a, -a)) == pytest.approx(2.0, abs=1e-6)
    assert float(losses.smooth_l1_feature_loss(a, a)) == 0.0
    # ijepa targets are layer-normalised: a rescaled target gives the same loss
    p = torch.randn(2, 3, 8)
    h = torch.randn(2, 3, 8)
    assert float(losses.ijepa_loss(p, h)) == pytest.approx(float(losses.ijepa_loss(p, 7 * h + 2)), rel=1e-4)
