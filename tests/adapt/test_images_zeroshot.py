"""Fine-tuning from images (full / frozen / LoRA), zero-shot CLIP with templates, CLIP-Adapter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from fairfoundry._errors import FairfoundryError  # noqa: E402
from fairfoundry.adapt import (  # noqa: E402
    CLIPAdapterClassifier,
    ImageClassifier,
    ImageDataset,
    TrainConfig,
    fit_images,
    predict_images,
    selection_scores,
    text_classifier,
    zero_shot_scores,
)


@pytest.fixture(scope="module")
def nih():
    from fairfoundry.datasets import nih_images

    mp = nih_images()
    m = pd.read_csv(mp).head(48)
    return ImageDataset(m["path"], y=m["No_Finding"], groups=(m["sex"] == "male").astype(int), root=mp.parent,
                        size=32, cache=True)


def _model(seed=0):
    torch.manual_seed(seed)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=1,
                            num_classes=0)
    return ImageClassifier(vit, 1)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_fine_tuning_on_real_xrays_is_deterministic_on_cpu(nih, mode):
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-3, seed=3)
    m1, r1 = fit_images(_model(), nih, mode=mode, lora_r=2, config=cfg)
    m2, _ = fit_images(_model(), nih, mode=mode, lora_r=2, config=cfg)
    s1, f1 = predict_images(m1, nih)
    s2, _ = predict_images(m2, nih)
    assert np.array_equal(s1, s2) and s1.shape == (48,) and f1.shape == (48, 192)
    assert r1.steps == 3


def test_frozen_mode_trains_only_the_head(nih):
    model = _model()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = model.out.weight.clone()
    model, _ = fit_images(model, nih, mode="frozen", config=TrainConfig(epochs=1, batch_size=16, lr=1e-2))
    assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in before.items())
    assert not torch.equal(head_before, model.out.weight)
    with pytest.raises(FairfoundryError, match="mode"):
        fit_images(_model(), nih, mode="half")


@pytest.fixture(scope="module")
def tiny_clip():
    open_clip = pytest.importorskip("open_clip")
    from open_clip.model import CLIP

    torch.manual_seed(0)
    model = CLIP(embed_dim=16, vision_cfg={"layers": 1, "width": 32, "patch_size": 8, "image_size": 32, "head_width": 16},
                 text_cfg={"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1})
    model.eval()
    return model, open_clip.get_tokenizer("ViT-B-32")


def test_zero_shot_matches_clip_logits(tiny_clip):
    model, tok = tiny_clip
    classes = ["no effusion", "pleural effusion"]
    T = text_classifier(model.encode_text, tok, classes, templates=["{}"])
    with torch.no_grad():
        ref_t = model.encode_text(tok(classes)).float()
        ref_t = (ref_t / ref_t.norm(dim=-1, keepdim=True)).numpy()
        imgs = torch.randn(5, 3, 32, 32)
        v = model.encode_image(imgs).float().numpy()
    assert np.allclose(T, ref_t, atol=1e-5)
    p = zero_shot_scores(v, T, logit_scale=10.0)
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    z = 10.0 * vn @ ref_t.T
    ref = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert np.allclose(p, ref, atol=1e-5) and np.allclose(p.sum(axis=1), 1)
    T2 = text_classifier(model.encode_text, tok, classes)  # default templates: averaged, unit norm
    assert T2.shape == (2, 16) and np.allclose(np.linalg.norm(T2, axis=1), 1, atol=1e-5)
    with pytest.raises(FairfoundryError, match="no '{}'"):
        text_classifier(model.encode_text, tok, classes, templates=["a photo"])


def test_clip_adapter_few_shot_beats_misspecified_zero_shot():
    rng = np.random.default_rng(0)
    d = 32
    true = np.linalg.qr(rng.normal(size=(d, 3)))[0].T  # class directions the images really follow
    text = np.stack([true[0], true[1] + 1.5 * true[2]])  # the positive prompt also matches a nuisance

    def images(n):
        y = rng.integers(0, 2, n)
        nuisance = rng.normal(size=(n, 1)) * true[2]
        return true[y] + nuisance + 0.5 * rng.normal(size=(n, d)) / np.sqrt(d), y

    X, y = images(64)  # few-shot: 32 per class
    Xt, yt = images(2000)
    zs = selection_scores(yt, zero_shot_scores(Xt, text)[:, 1])["overall_auc"]
    ad = CLIPAdapterClassifier(text, epochs=60, lr=1e-2, ratio=0.5, logit_scale=20.0).fit(X, y)
    ours = selection_scores(yt, ad.predict_score(Xt))["overall_auc"]
    assert ours > zs + 0.02
    assert ad.predict_proba(Xt[:3]).shape == (3, 2)


def test_fairclip_alignment_on_clip_adapter_similarities_narrows_the_group_gap():
    from fairfoundry.mitigate import DistributionAlignment

    rng = np.random.default_rng(1)
    d = 32
    dirs = np.linalg.qr(rng.normal(size=(d, 3)))[0].T
    text = np.stack([dirs[0], dirs[1]])
    n = 600
    y = rng.integers(0, 2, n)
    g = rng.integers(0, 2, n)
    X = dirs[y] + 0.8 * g[:, None] * dirs[1] + 0.4 * rng.normal(size=(n, d)) / np.sqrt(d)  # group 1 looks sicker

    def gap(model):
        s = model.predict_score(X)
        return abs(s[g == 1].mean() - s[g == 0].mean())

    plain = CLIPAdapterClassifier(text, epochs=30, lr=1e-2, logit_scale=20.0, seed=0).fit(X, y, groups=g)
    fair = CLIPAdapterClassifier(text, epochs=30, lr=1e-2, logit_scale=20.0, seed=0,
                                 hooks=[DistributionAlignment(weight=20.0)]).fit(X, y, groups=g)
    assert gap(fair) < gap(plain)
