"""LoRA: base weights untouched, small trainable share, merged == unmerged outputs, peft path."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from fairfoundry._errors import FairfoundryError  # noqa: E402
from fairfoundry.adapt import (  # noqa: E402
    ArrayData,
    ImageClassifier,
    TrainConfig,
    Trainer,
    apply_lora,
    lora_parameters,
    merge_lora,
    trainable_share,
    unmerge_lora,
)


def _vit(seed=0):
    torch.manual_seed(seed)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                             num_classes=0)


def test_lora_trains_only_the_update_and_merge_equals_unmerged():
    model = ImageClassifier(_vit(), 1)
    base = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    _, names = apply_lora(model.backbone, r=4, alpha=8)
    assert "blocks.0.attn.qkv" in names and "blocks.1.mlp.fc2" in names
    assert 0 < trainable_share(model) < 0.05
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3, 32, 32)).astype(np.float32)
    y = (x[:, 0, :16].mean(axis=(1, 2)) > 0).astype(np.float32)
    Trainer(model, config=TrainConfig(epochs=2, batch_size=32, lr=1e-2)).fit(ArrayData(x=x, y=y))
    # base weights untouched, LoRA B moved away from its zero init
    for name, lin in [(n, model.backbone.get_submodule(n)) for n in names]:
        assert torch.equal(lin.base.weight, base[name + ".weight"]), name
    assert any(float(v.abs().sum()) > 0 for k, v in lora_parameters(model).items() if "lora_B" in k)
    model.eval()
    xt = torch.as_tensor(x[:8])
    with torch.no_grad():
        unmerged = model(xt)["logits"].clone()
        merge_lora(model)
        merged = model(xt)["logits"].clone()
        unmerge_lora(model)
        again = model(xt)["logits"].clone()
    assert torch.allclose(merged, unmerged, atol=1e-5)
    assert torch.allclose(again, unmerged, atol=1e-5)
    for n in names:  # unmerge restores the base weights
        assert torch.allclose(model.backbone.get_submodule(n).base.weight, base[n + ".weight"], atol=1e-6)


def test_lora_starts_as_the_base_model():
    vit = _vit(1)
    x = torch.randn(2, 3, 32, 32)
    vit.eval()
    with torch.no_grad():
        before = vit(x)
        apply_lora(vit, r=2)
        after = vit(x)
    assert torch.allclose(before, after, atol=1e-6)


def test_lora_on_open_clip_skips_multihead_attention_internals():
    open_clip = pytest.importorskip("open_clip")
    from open_clip.model import CLIP

    torch.manual_seed(0)
    clip = CLIP(embed_dim=16, vision_cfg={"layers": 1, "width": 32, "patch_size": 8, "image_size": 32, "head_width": 16},
                text_cfg={"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1})
    _, names = apply_lora(clip.visual, r=2)
    assert names and all(not n.endswith("attn.out_proj") for n in names)
    assert any(n.endswith("c_fc") for n in names)
    assert open_clip is not None


def test_peft_backend_and_bad_targets():
    pytest.importorskip("peft")
    wrapped, names = apply_lora(_vit(), r=2, target=("qkv",), backend="peft")
    share = sum(p.numel() for p in wrapped.parameters() if p.requires_grad) / sum(
        p.numel() for p in wrapped.parameters())
    assert len(names) == 2 and share < 0.05
    with pytest.raises(FairfoundryError, match="no linear layer"):
        apply_lora(_vit(), target=("nonexistent",))


def test_lora_on_a_hugging_face_vit_merges_exactly():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 image_size=32, patch_size=8)
    torch.manual_seed(0)
    vit = transformers.ViTModel(cfg, add_pooling_layer=False).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = vit(pixel_values=x).last_hidden_state
        _, names = apply_lora(vit, r=2, target=("query", "value", "q_proj", "v_proj"))
        same = vit(pixel_values=x).last_hidden_state
        for n, p in vit.named_parameters():
            if "lora_B" in n:
                p.normal_()
        moved = vit(pixel_values=x).last_hidden_state
        merge_lora(vit)
        merged = vit(pixel_values=x).last_hidden_state
    assert len(names) == 2 and all(n.endswith(("query", "value", "q_proj", "v_proj")) for n in names)
    assert torch.allclose(before, same, atol=1e-6) and not torch.allclose(before, moved, atol=1e-3)
    assert torch.allclose(moved, merged, atol=1e-4)
