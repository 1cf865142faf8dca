"""timm backend: any ``timm.create_model`` id (ViT, DINOv2, ViT-MAE, ConvNeXt, ResNet, ...)."""

from __future__ import annotations

from .._errors import FairfoundryError
from ._checkpoint import load_state_dict_into, read_state_dict, unwrap_state_dict, weights_hash
from ._encoder import Encoder
from ._hub import cached_hub_file
from ._registry import Backend, register_backend, weights_or_random
from ._spec import Preprocessing

__all__ = ["TimmEncoder", "timm_preprocessing", "create_timm_model"]

_HUB_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


class TimmEncoder(Encoder):
    """A timm model with its classifier removed: ``forward`` returns pooled features."""

    def image_features(self, x):
        return self.module(x)


def timm_preprocessing(model) -> Preprocessing:
    """The model's pretrained data config as a :class:`Preprocessing`."""
    import timm.data

    cfg = timm.data.resolve_model_data_config(model)
    c, h, _w = cfg["input_size"]
    fixed = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if fixed and not getattr(model.patch_embed, "dynamic_img_size", False):
        h = fixed[0] if isinstance(fixed, (tuple, list)) else fixed  # img_size given at creation
    c = getattr(model, "in_chans", None) or getattr(getattr(model, "patch_embed", None), "in_chans", None) or c
    interp = cfg.get("interpolation", "bicubic")
    interp = interp if interp in ("bilinear", "bicubic", "nearest") else "bicubic"
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    if c == 1:
        mean, std = mean[:1], std[:1]
    return Preprocessing(size=int(h), channels=1 if c == 1 else 3, mean=mean, std=std,
                         crop_pct=float(cfg.get("crop_pct", 1.0) or 1.0), interpolation=interp)


def create_timm_model(model_id: str, **kwargs):
    """``timm.create_model`` with a clear error for unknown ids / bad kwargs."""
    import timm

    try:
        return timm.create_model(model_id, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc) or "Invalid pretrained tag" in str(exc):
            from .._errors import did_you_mean

            names = timm.list_models(f"*{model_id.split('.')[0][:6]}*") or timm.list_models()[:40]
            raise FairfoundryError(f"unknown timm model {model_id!r}",
                                   hint=did_you_mean(model_id, names, what="similar timm models")) from exc
        raise
    except TypeError as exc:
        raise FairfoundryError(f"timm model {model_id!r} does not accept these arguments "
                               f"{sorted(kwargs)}: {exc}") from exc


def _hub_id(model_id: str) -> str | None:
    import timm.models

    try:
        cfg = timm.models.get_pretrained_cfg(model_id)
    except Exception:
        return None
    if cfg is None:
        return None
    return getattr(cfg, "hf_hub_id", None) or f"timm/{model_id}"


def how_to_get(model_id: str) -> str:
    return (f"on a connected machine run: python -c \"import timm; timm.create_model('{model_id}', "
            f"pretrained=True)\" (fills ~/.cache/huggingface/hub; copy it to this machine), "
            f"or pass --weights PATH to a .safetensors/.pth file, or --download to fetch it now")


@register_backend("timm")
class TimmBackend(Backend):
    description = "any timm model id (ViT, DINOv2, ViT-MAE, ConvNeXt, ResNet, ...)"
    requires = "timm"
    examples = ("timm:vit_small_patch16_224.dino", "timm:vit_base_patch14_dinov2.lvd142m",
                "timm:resnet50.a1_in1k")

    @classmethod
    def default_weights_location(cls, model_id, model_kwargs):
        hub = _hub_id(model_id)
        return cached_hub_file(hub, _HUB_FILES) if hub else None

    @classmethod
    def build(cls, model_id, *, weights, model_kwargs, seed, trust_checkpoint, download,
              preprocessing, name):
        path, wid = weights_or_random(weights, seed=seed)
        kwargs = {"num_classes": 0, **model_kwargs}
        if wid is not None:  # random init
            model = create_timm_model(model_id, pretrained=False, **kwargs)
        elif path is not None:
            model = create_timm_model(model_id, pretrained=False, **kwargs)
            sd = unwrap_state_dict(read_state_dict(path, trust_checkpoint=trust_checkpoint,
                                                 model_name=name))
            head = model.pretrained_cfg.get("classifier") or "head"
            heads = tuple(f"{h}." for h in ([head] if isinstance(head, str) else head))
            load_state_dict_into(model, sd, source=str(path), model_name=f"timm:{model_id}",
                                 ignore_unexpected=heads + ("head.", "fc.", "classifier.", "head_dist."))
            wid = "sha256:" + weights_hash(path)
        else:
            model = cls._pretrained(model_id, kwargs, download)
            loc = cls.default_weights_location(model_id, model_kwargs)
            wid = "sha256:" + weights_hash(loc) if loc else f"hub:{model_id}"
        prep = preprocessing or timm_preprocessing(model)
        dim = getattr(model, "head_hidden_size", None) or model.num_features
        return TimmEncoder(name=name, backend="timm", model_id=model_id, module=model,
                           preprocessing=prep, embed_dim=int(dim), weights_id=wid,
                           model_kwargs=model_kwargs)

    @classmethod
    def _pretrained(cls, model_id, kwargs, download):
        if download:
            try:
                return create_timm_model(model_id, pretrained=True, **kwargs)
            except FairfoundryError:
                raise
            except Exception as exc:
                raise FairfoundryError(f"could not download weights of timm:{model_id}: {exc}".splitlines()[0],
                                       hint=how_to_get(model_id)) from exc
        loc = cls.default_weights_location(model_id, {})
        if loc is None:
            create_timm_model(model_id, pretrained=False, **kwargs)  # unknown ids fail here first
            raise FairfoundryError(f"no local weights for timm:{model_id} (offline: nothing is "
                                   "downloaded unless you pass --download)", hint=how_to_get(model_id))
        return create_timm_model(model_id, pretrained=True,
                                 pretrained_cfg_overlay={"file": str(loc)}, **kwargs)
