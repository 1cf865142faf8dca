"""The bundled encoder: ``fairfoundry-tiny``, trained by fairfoundry.pretrain (works offline)."""

from .._spec import Preprocessing, Preset, register_preset

register_preset(Preset(
    name="fairfoundry-tiny",
    backend="timm",
    model="vit_tiny_patch16_224",
    model_kwargs={"img_size": 64, "patch_size": 8, "embed_dim": 192, "depth": 4, "num_heads": 3},
    weights="package:fairfoundry.pretrain/_weights/fairfoundry-tiny.safetensors",
    preprocessing=Preprocessing(size=64, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3,
                                resize="squash", interpolation="bilinear"),
    licence="Apache-2.0 (trained on NIH ChestX-ray14 images, which NIH releases without restriction)",
    source="bundled: scripts/train_tiny_encoder.py (SimCLR on the 300 bundled NIH X-rays)",
    get_weights="bundled with fairfoundry (no download)",
    modality="chest X-ray (demo / tests; not a clinical model)",
    description="ViT (64 px, patch 8, width 192, depth 4) pre-trained with SimCLR (600 steps "
    "of 64, ~14 min on a shared 2-core CPU) on 300 NIH chest X-rays; [CLS] embedding (192-d). "
    "For offline pipelines and tests, not for results; it encodes patient sex strongly. See "
    "docs/pretrain.md for its training record, probe AUCs and limits.",
    paper="Chen et al., SimCLR, ICML 2020 (objective); fairfoundry docs/pretrain.md",
    embed_dim=192,
))
