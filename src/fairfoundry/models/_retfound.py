"""RETFound backend: retinal foundation model (Zhou et al., Nature 2023), a timm ViT + MAE checkpoint.

RETFound checkpoints (``RETFound_mae_natureCFP.pth``, ``RETFound_mae_natureOCT.pth``, ...) are
MAE pre-training checkpoints: ``{"model": state_dict, ...}`` with the encoder's ``norm.*`` and,
in some releases, the MAE decoder (``decoder_*``, ``mask_token``). Like RETFound's own
feature extractor, the embedding is the mean of the patch tokens followed by a fresh ``fc_norm``
LayerNorm (unit weight, zero bias); the checkpoint's final ``norm`` and the decoder are dropped.

Model ids: ``vit_large_patch16`` (RETFound MAE, 1024-d) or ``vit_base_patch16``; any timm ViT id
also works (``vit_large_patch16_224``).
"""

from __future__ import annotations

from .._errors import FairfoundryError
from ._checkpoint import load_state_dict_into, read_state_dict, unwrap_state_dict, weights_hash
from ._encoder import Encoder
from ._registry import Backend, register_backend, weights_or_random
from ._spec import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from ._timm import create_timm_model

__all__ = ["RETFoundEncoder", "RETFOUND_PREPROCESSING"]

#: RETFound evaluation transform: resize 256 (bicubic), centre crop 224, ImageNet mean/std
RETFOUND_PREPROCESSING = Preprocessing(size=224, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                       resize="shortest", crop_pct=224 / 256, interpolation="bicubic")
_ALIASES = {"vit_large_patch16": "vit_large_patch16_224", "vit_base_patch16": "vit_base_patch16_224"}


class RETFoundEncoder(Encoder):
    def image_features(self, x):
        return self.module(x)


@register_backend("retfound")
class RETFoundBackend(Backend):
    description = "RETFound retinal ViT (MAE checkpoint {'model': ...}); needs --weights"
    requires = "timm"
    examples = ("retfound:vit_large_patch16",)

    @classmethod
    def build(cls, model_id, *, weights, model_kwargs, seed, trust_checkpoint, download,
              preprocessing, name):
        timm_id = _ALIASES.get(model_id, model_id)
        path, wid = weights_or_random(weights, seed=seed)
        kwargs = {"num_classes": 0, "global_pool": "avg", "fc_norm": True, **model_kwargs}
        if wid is None and path is None:
            raise FairfoundryError(
                f"RETFound model {name} needs its checkpoint file (it is not on a public hub "
                "without an access request)",
                hint="request access at https://huggingface.co/YukunZhou/RETFound_mae_natureCFP, "
                "run `hf download YukunZhou/RETFound_mae_natureCFP` on a connected "
                "machine and pass --weights /path/to/RETFound_mae_natureCFP.pth")
        model = create_timm_model(timm_id, pretrained=False, **kwargs)
        if path is not None:
            sd = unwrap_state_dict(read_state_dict(path, trust_checkpoint=trust_checkpoint,
                                                 model_name=name))
            load_state_dict_into(model, sd, source=str(path), model_name=f"retfound:{model_id}",
                                 ignore_missing=("fc_norm.", "head."),
                                 ignore_unexpected=("decoder_", "mask_token", "norm.", "head.",
                                                    ))
            wid = "sha256:" + weights_hash(path)
        prep = preprocessing or RETFOUND_PREPROCESSING
        if "img_size" in model_kwargs and prep.size != int(model_kwargs["img_size"]):
            prep = prep.replace(size=int(model_kwargs["img_size"]))
        return RETFoundEncoder(name=name, backend="retfound", model_id=model_id, module=model,
                               preprocessing=prep, embed_dim=int(model.num_features), weights_id=wid,
                               model_kwargs=model_kwargs)
