"""Partial fine-tuning: the trunk's last blocks (and what follows them) train, everything else stays put."""

from __future__ import annotations

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from fairfoundry._errors import FairfoundryError  # noqa: E402
from fairfoundry.adapt import (  # noqa: E402
    ImageClassifier,
    ImageDataset,
    TrainConfig,
    find_blocks,
    fit_images,
    freeze_all_but_last_blocks,
)


def _vit(depth=4, seed=0):
    torch.manual_seed(seed)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=depth,
                             num_classes=0)


def _trainable(module) -> set[str]:
    return {n for n, p in module.named_parameters() if p.requires_grad}


def test_vit_last_blocks_and_final_norm_train_the_rest_is_frozen():
    vit = _vit(depth=4)
    name, blocks = find_blocks(vit)
    assert name == "blocks" and len(blocks) == 4
    info = freeze_all_but_last_blocks(vit, 2)
    trained = _trainable(vit)
    assert {n.split(".")[0] for n in trained} == {"blocks", "norm"}
    assert {n.split(".")[1] for n in trained if n.startswith("blocks.")} == {"2", "3"}
    for frozen in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight",
                   "blocks.1.mlp.fc2.bias"):
        assert frozen not in trained
    share = sum(p.numel() for p in vit.parameters() if p.requires_grad) / sum(p.numel() for p in vit.parameters())
    assert info == {"container": "blocks", "n_blocks": 4, "trained_blocks": 2, "trainable_share": pytest.approx(share)}
    assert 0.4 < share < 0.55  # two of four equal blocks, plus a norm
    freeze_all_but_last_blocks(vit, 4)  # every block: all but the embeddings
    assert "blocks.0.attn.qkv.weight" in _trainable(vit) and "patch_embed.proj.weight" not in _trainable(vit)


def test_open_clip_resnet_and_hugging_face_trunks():
    from torch import nn

    open_clip = pytest.importorskip("open_clip")
    from open_clip.model import CLIP

    torch.manual_seed(0)
    clip = CLIP(embed_dim=16, vision_cfg={"layers": 3, "width": 32, "patch_size": 8, "image_size": 32, "head_width": 16},
                text_cfg={"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1})
    assert find_blocks(clip.visual)[0] == "transformer.resblocks"
    freeze_all_but_last_blocks(clip.visual, 1)
    trained = _trainable(clip.visual)
    assert any(n.startswith("transformer.resblocks.2.") for n in trained) and any(n.startswith("ln_post") for n in trained)
    assert not any(n.startswith(("transformer.resblocks.0.", "transformer.resblocks.1.", "conv1", "ln_pre"))
                   for n in trained)
    assert open_clip is not None
    # a ResNet: the last stage (most of the weights), not the longer third stage
    resnet = timm.create_model("resnet50", pretrained=False, num_classes=0)
    assert find_blocks(resnet)[0] == "layer4"
    # a Hugging Face ViT: encoder.layer (``layers`` in transformers 5)
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                                 image_size=32, patch_size=8)
    hf = transformers.ViTModel(cfg, add_pooling_layer=False)
    trunk = find_blocks(hf)[0]
    assert trunk in ("encoder.layer", "layers")
    freeze_all_but_last_blocks(hf, 1)
    assert {n.split(".")[0] for n in _trainable(hf)} == {trunk.split(".")[0], "layernorm"}
    assert all(n.startswith((f"{trunk}.2.", "layernorm")) for n in _trainable(hf))
    # no trunk of repeated blocks: a clear error, not a silent full fine-tune
    with pytest.raises(FairfoundryError, match="repeated blocks"):
        find_blocks(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 4)))
    with pytest.raises(FairfoundryError, match="between 1 and 4"):
        freeze_all_but_last_blocks(_vit(depth=4), 5)


def test_a_dual_clip_model_adapts_its_image_tower_never_its_text_tower():
    pytest.importorskip("open_clip")
    from open_clip.model import CLIP

    torch.manual_seed(0)  # a text tower larger than the image tower, registered after it
    clip = CLIP(embed_dim=16, vision_cfg={"layers": 2, "width": 32, "patch_size": 8, "image_size": 32, "head_width": 16},
                text_cfg={"context_length": 8, "vocab_size": 100, "width": 64, "heads": 2, "layers": 4})
    info = freeze_all_but_last_blocks(clip, 1)  # what EncoderClassifier passes: the whole CLIP
    trained = _trainable(clip)
    assert info["container"] == "visual.transformer.resblocks" and info["n_blocks"] == 2
    assert trained and all(n.startswith(("visual.transformer.resblocks.1.", "visual.ln_post")) for n in trained)
    transformers = pytest.importorskip("transformers")
    cfg = transformers.CLIPConfig(
        text_config={"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 64},
        vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                       "image_size": 32, "patch_size": 8}, projection_dim=16)
    hf = transformers.CLIPModel(cfg)
    freeze_all_but_last_blocks(hf, 1)
    assert _trainable(hf) and all(n.startswith("vision_model.") for n in _trainable(hf))


def test_frozen_batchnorm_keeps_its_running_statistics():
    resnet = timm.create_model("resnet18", pretrained=False, num_classes=0)
    freeze_all_but_last_blocks(resnet, 1)
    frozen_bn, trained_bn = resnet.bn1, resnet.layer4[1].bn1
    before = frozen_bn.running_mean.clone(), trained_bn.running_mean.clone()
    resnet.train()
    resnet(torch.randn(4, 3, 32, 32))
    assert torch.equal(frozen_bn.running_mean, before[0]) and not frozen_bn.training
    assert not torch.equal(trained_bn.running_mean, before[1])


def test_partial_fit_moves_only_the_last_blocks_on_real_xrays():
    from fairfoundry.datasets import nih_images

    mp = nih_images()
    m = pd.read_csv(mp).head(32)
    data = ImageDataset(m["path"], y=m["No_Finding"], root=mp.parent, size=32, cache=True)
    model = ImageClassifier(_vit(depth=3), 1)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model, res = fit_images(model, data, mode="partial", partial_blocks=1,
                            config=TrainConfig(epochs=1, batch_size=16, lr=1e-2, seed=0))
    after = model.backbone.state_dict()
    moved = {k for k, v in before.items() if not torch.equal(v, after[k])}
    assert moved and all(k.startswith(("blocks.2.", "norm.")) for k in moved), sorted(moved)
    assert "blocks.2.mlp.fc2.weight" in moved and res.steps == 2


def test_partial_blocks_is_only_accepted_and_recorded_for_partial():
    from fairfoundry.bench import AdaptationEntry
    from fairfoundry.pipeline import FitConfig

    assert "partial_blocks" not in AdaptationEntry(kind="lora").model_dump()  # old grids read as unchanged
    assert AdaptationEntry(kind="partial", partial_blocks=3).model_dump()["partial_blocks"] == 3
    assert AdaptationEntry(kind="partial", partial_blocks=3).label == "partial-last3"
    base = {"manifest": "m.csv", "label": "y", "sensitive": ["sex"], "encoder": "fairfoundry-tiny"}
    assert FitConfig(**base, adaptation="partial", partial_blocks=1).partial_blocks == 1
    with pytest.raises(ValueError, match="partial_blocks is for adaptation partial"):
        FitConfig(**base, adaptation="lora", partial_blocks=1)
