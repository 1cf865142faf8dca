"""Chest X-ray encoders: RAD-DINO and torchxrayvision."""

from .._spec import Preprocessing, Preset, register_preset

# torchxrayvision's convention: 1 channel, pixels mapped to [-1024, 1024] (xrv.datasets.normalize),
# centre crop to a square, resize (XRayCenterCrop + XRayResizer, bilinear)
_XRV = Preprocessing(size=224, channels=1, mean=(0.0,), std=(1.0,), value_range=(-1024.0, 1024.0),
                     resize="shortest", interpolation="bilinear")

register_preset(Preset(
    name="rad-dino",
    backend="hf",
    model="microsoft/rad-dino",
    preprocessing=Preprocessing(size=518, channels=3, mean=(0.5307,) * 3, std=(0.2583,) * 3,
                                resize="shortest", crop_pct=1.0, interpolation="bicubic"),
    licence="MSRLA (Microsoft Research License Agreement; research use)",
    source="https://huggingface.co/microsoft/rad-dino",
    get_weights="huggingface-cli download microsoft/rad-dino",
    modality="chest X-ray",
    description="DINOv2 ViT-B/14 trained on 882k chest X-rays; [CLS] embedding (768-d). "
    "Grayscale images are repeated to 3 channels.",
    paper="Perez-Garcia et al., Exploring scalable medical image encoders beyond text "
    "supervision, Nature Machine Intelligence 2025",
    embed_dim=768,
))

register_preset(Preset(
    name="xrv-densenet121-all",
    backend="xrv",
    model="densenet121-res224-all",
    preprocessing=_XRV,
    licence="Apache-2.0",
    source="https://github.com/mlmed/torchxrayvision (release v1)",
    get_weights="python -c \"import torchxrayvision as xrv; xrv.models.get_model('densenet121-res224-all')\"  "
    "# then use --trust-checkpoint: the file is a pickled model",
    modality="chest X-ray",
    description="DenseNet-121 trained on 8 public CXR datasets at 224 px; 1 channel in "
    "[-1024, 1024]; pooled features (1024-d)",
    paper="Cohen et al., TorchXRayVision: a library of chest X-ray datasets and models, MIDL 2022",
    embed_dim=1024,
))

register_preset(Preset(
    name="xrv-resnet50-all",
    backend="xrv",
    model="resnet50-res512-all",
    preprocessing=_XRV.replace(size=512),
    licence="Apache-2.0",
    source="https://github.com/mlmed/torchxrayvision (release v1)",
    get_weights="python -c \"import torchxrayvision as xrv; xrv.models.get_model('resnet50-res512-all')\"",
    modality="chest X-ray",
    description="ResNet-50 trained on 5 public CXR datasets at 512 px; 1 channel in "
    "[-1024, 1024]; pooled features (2048-d)",
    paper="Cohen et al., TorchXRayVision, MIDL 2022",
    embed_dim=2048,
))
