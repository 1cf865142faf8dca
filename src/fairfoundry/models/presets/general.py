"""General-purpose self-supervised encoders used as baselines: DINOv2."""

from .._spec import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, Preset, register_preset

_DINOV2_PREP = Preprocessing(size=224, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                             resize="shortest", crop_pct=224 / 256, interpolation="bicubic")

for _size, _dim in (("small", 384), ("base", 768)):
    register_preset(Preset(
        name=f"dinov2-{_size}",
        backend="hf",
        model=f"facebook/dinov2-{_size}",
        preprocessing=_DINOV2_PREP,
        licence="Apache-2.0",
        source=f"https://huggingface.co/facebook/dinov2-{_size}",
        get_weights=f"hf download facebook/dinov2-{_size}",
        modality="natural images (general-domain baseline)",
        description=f"DINOv2 ViT-{_size[0].upper()}/14 (LVD-142M), [CLS] embedding ({_dim}-d)",
        paper="Oquab et al., DINOv2, TMLR 2024",
        embed_dim=_dim,
        verified=f"preprocessing: facebook/dinov2-{_size} preprocessor_config.json (BitImageProcessor: "
        "shortest_edge 256, crop 224, resample 3 = bicubic, ImageNet mean/std); licence: model card",
    ))
