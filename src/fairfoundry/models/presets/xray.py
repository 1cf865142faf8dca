"""Chest X-ray encoders: RAD-DINO and torchxrayvision."""

from .._spec import Preprocessing, Preset, register_preset

# torchxrayvision's documented convention (its README): img = xrv.datasets.normalize(img, 255), i.e.
# (2 x / maxval - 1) * 1024 in [-1024, 1024]; img.mean(2) (plain channel mean) for colour files;
# XRayCenterCrop (square centre crop of the shorter side) + XRayResizer(224) (skimage resize,
# order 1 = bilinear, anti-aliased when shrinking). No mean/std normalisation afterwards.
_XRV = Preprocessing(size=224, channels=1, mean=(0.0,), std=(1.0,), value_range=(-1024.0, 1024.0),
                     resize="shortest", interpolation="bilinear", gray="mean")
_XRV_VERIFIED = ("preprocessing: torchxrayvision README example (normalize(img, 255) -> [-1024, 1024], "
                 "img.mean(2), XRayCenterCrop + XRayResizer) and xrv.datasets.XRayResizer (skimage "
                 "resize, bilinear); we resize the shorter side then crop the centre, which equals "
                 "crop-then-resize up to border interpolation; licence: Apache-2.0 (repository LICENSE)")

register_preset(Preset(
    name="rad-dino",
    backend="hf",
    model="microsoft/rad-dino",
    preprocessing=Preprocessing(size=518, channels=3, mean=(0.5307,) * 3, std=(0.2583,) * 3,
                                resize="shortest", crop_pct=1.0, interpolation="bicubic"),
    licence="MIT (model card; revisions before 2025 said MSRLA); research use only, not clinical",
    source="https://huggingface.co/microsoft/rad-dino",
    get_weights="hf download microsoft/rad-dino",
    modality="chest X-ray",
    description="DINOv2 ViT-B/14 trained on 882k chest X-rays; [CLS] embedding (768-d). "
    "Grayscale images are repeated to 3 channels.",
    paper="Perez-Garcia et al., Exploring scalable medical image encoders beyond text "
    "supervision, Nature Machine Intelligence 2025",
    embed_dim=768,
    verified="input 518 px: the model card's example returns a 37 x 37 patch grid (37 x 14 = 518); "
    "mean 0.5307 / std 0.2583, shortest_edge 518 + crop 518, resample 3 (bicubic): the repo's "
    "preprocessor_config.json as recalled, NOT confirmed from a public copy in our check; "
    "loading the preset compares it with preprocessor_config.json in your snapshot and logs a "
    "warning naming any field that differs; licence: model card metadata "
    "(license_name: mit; older revisions msrla)",
))

register_preset(Preset(
    name="xrv-densenet121-all",
    backend="xrv",
    model="densenet121-res224-all",
    preprocessing=_XRV,
    licence="Apache-2.0",
    source="https://github.com/mlmed/torchxrayvision (release v1)",
    get_weights="python -c \"import torchxrayvision as xrv; xrv.models.get_model('densenet121-res224-all')\"  "
    "# the file is a pickled whole model: pass --trust-checkpoint, or convert it once with "
    "fairfoundry models convert xrv-densenet121-all --weights ~/.torchxrayvision/models_data/"
    "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt "
    "--trust-checkpoint --out densenet121-all.safetensors",
    modality="chest X-ray",
    description="DenseNet-121 trained on 8 public CXR datasets at 224 px; 1 channel in "
    "[-1024, 1024]; pooled features (1024-d)",
    paper="Cohen et al., TorchXRayVision: a library of chest X-ray datasets and models, MIDL 2022",
    embed_dim=1024,
    verified=_XRV_VERIFIED,
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
    verified=_XRV_VERIFIED,
))
