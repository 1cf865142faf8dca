"""Retinal encoders: RETFound (colour fundus and OCT)."""

from .._spec import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, Preset, register_preset

_RETFOUND_PREP = Preprocessing(size=224, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                               resize="shortest", crop_pct=224 / 256, interpolation="bicubic")

for _name, _repo, _what in (
    ("retfound-cfp", "YukunZhou/RETFound_mae_natureCFP", "colour fundus photographs (904k)"),
    ("retfound-oct", "YukunZhou/RETFound_mae_natureOCT", "OCT B-scans (736k)"),
):
    register_preset(Preset(
        name=_name,
        backend="retfound",
        model="vit_large_patch16",
        preprocessing=_RETFOUND_PREP,
        licence="CC BY-NC 4.0 (non-commercial)",
        source=f"https://huggingface.co/{_repo} (access request)",
        get_weights=f"hf auth login && hf download {_repo}  "
        f"# then --weights <snapshot>/{_repo.split('/')[1]}.pth",
        modality="ophthalmology",
        description=f"RETFound ViT-L/16 MAE pre-trained on {_what}; mean of patch tokens + "
        "fc_norm (1024-d)",
        paper="Zhou et al., A foundation model for generalizable disease detection from retinal "
        "images, Nature 2023",
        embed_dim=1024,
        verified="preprocessing: the authors' eval transform, github.com/rmaphoh/RETFound_MAE "
        "util/datasets.py build_transform (input 224, crop_pct 224/256 -> Resize(256, BICUBIC), "
        "CenterCrop(224), ImageNet mean/std); pooling: models_vit.py global_pool (mean of patch "
        "tokens + fc_norm); licence: the repository README (CC BY-NC 4.0), not re-checked on the "
        "gated Hugging Face pages",
    ))
