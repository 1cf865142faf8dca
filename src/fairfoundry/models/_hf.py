"""Hugging Face transformers backend: RAD-DINO, DINOv2, ViT, CLIP, SigLIP, ...

Model ids: a hub repo id (``microsoft/rad-dino``; resolved from the local HF cache only unless
``download=True``) or a local folder saved with ``save_pretrained``. Vision-only models give the
[CLS] token of the last (layer-normed) hidden state (``model_kwargs={"pool": "mean"}`` averages the
patch tokens instead); CLIP-style models give ``get_image_features`` / ``get_text_features``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .._errors import FairfoundryError
from ._checkpoint import load_state_dict_into, read_state_dict, unwrap_state_dict, weights_hash
from ._encoder import Encoder
from ._hub import cached_hub_snapshot
from ._registry import Backend, register_backend, weights_or_random
from ._spec import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, Preprocessing

log = logging.getLogger(__name__)

__all__ = ["HFEncoder"]

_RESAMPLE = {2: "bilinear", 3: "bicubic", 0: "nearest"}
_POOLS = ("cls", "mean")


def _tensor(out):
    import torch

    if isinstance(out, torch.Tensor):
        return out
    for attr in ("image_embeds", "text_embeds", "pooler_output"):
        val = getattr(out, attr, None)
        if isinstance(val, torch.Tensor):
            return val
    raise TypeError(f"unexpected model output {type(out).__name__}")


class HFEncoder(Encoder):
    """A transformers model; VLMs expose ``encode_text`` through their tokenizer."""

    def __init__(self, *, pool: str, tokenizer, dual: bool, config_dict: dict, **kw):
        super().__init__(**kw)
        self.pool = pool
        self._tokenizer = tokenizer
        self._dual = dual
        self._config = config_dict
        self.is_vlm = dual

    def image_features(self, x):
        if self._dual:
            return _tensor(self.module.get_image_features(pixel_values=x))
        out = self.module(pixel_values=x)
        h = out.last_hidden_state
        return h[:, 0] if self.pool == "cls" else h[:, 1:].mean(1)

    def text_features(self, texts):
        if not self._dual:
            return super().text_features(texts)
        if self._tokenizer is None:
            raise FairfoundryError(f"no tokenizer files found locally for {self.name}",
                                   hint="save the tokenizer next to the model (save_pretrained)")
        max_len = getattr(self._tokenizer, "model_max_length", None)
        max_len = max_len if max_len and max_len < 10**6 else 64  # unset -> 64 (SigLIP's length)
        tok = self._tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_len,
                              return_tensors="pt")
        tok = {k: v.to(self.device) for k, v in tok.items() if k in ("input_ids", "attention_mask")}
        return _tensor(self.module.get_text_features(**tok))

    def portable_spec(self):
        return self.model_id, {**self.model_kwargs, "config": self._config}


def _prep_from_folder(folder: Path | None, config) -> Preprocessing:
    vis = getattr(config, "vision_config", None) or config
    image_size = getattr(vis, "image_size", 224)
    if isinstance(image_size, (list, tuple)):
        image_size = image_size[0]
    clip_like = hasattr(config, "vision_config")
    mean, std = (CLIP_MEAN, CLIP_STD) if clip_like else (IMAGENET_MEAN, IMAGENET_STD)
    pp = {}
    if folder is not None and (folder / "preprocessor_config.json").is_file():
        pp = json.loads((folder / "preprocessor_config.json").read_text(encoding="utf-8"))
    if not pp:
        return Preprocessing(size=int(image_size), channels=3, mean=mean, std=std)
    size = pp.get("size", image_size)
    crop = pp.get("crop_size") if pp.get("do_center_crop") else None
    interp = _RESAMPLE.get(pp.get("resample", 3), "bicubic")
    mean = tuple(pp.get("image_mean", mean))
    std = tuple(pp.get("image_std", std))
    def side(s):
        if isinstance(s, dict):
            return s.get("shortest_edge") or s.get("height")
        return s
    if crop:
        c, short = int(side(crop)), int(side(size))
        return Preprocessing(size=c, mean=mean, std=std, resize="shortest",
                             crop_pct=min(1.0, c / short), interpolation=interp)
    if isinstance(size, dict) and "shortest_edge" in size:
        return Preprocessing(size=int(size["shortest_edge"]), mean=mean, std=std, interpolation=interp)
    return Preprocessing(size=int(side(size)), mean=mean, std=std, resize="squash", interpolation=interp)


def check_against_folder(prep: Preprocessing, folder: Path | None, config, *, name: str) -> list[str]:
    """Differences between a preset's preprocessing and the model folder's own
    ``preprocessor_config.json`` (logged as a warning; empty when they agree or there is none).

    Presets state their preprocessing explicitly (so a run is reproducible without the folder);
    this check catches a preset value that disagrees with what the authors published.
    """
    if folder is None or not (folder / "preprocessor_config.json").is_file():
        return []
    try:
        theirs = _prep_from_folder(folder, config)
    except (ValueError, TypeError, FairfoundryError):
        return []
    diffs = []
    for key in ("size", "resize", "interpolation"):
        if getattr(prep, key) != getattr(theirs, key):
            diffs.append(f"{key} {getattr(prep, key)!r} vs {getattr(theirs, key)!r}")
    for key in ("mean", "std"):
        a, b = getattr(prep, key), getattr(theirs, key)
        if len(a) != len(b) or any(abs(x - y) > 1e-3 for x, y in zip(a, b, strict=False)):
            diffs.append(f"{key} {a} vs {b}")
    if prep.resize == "shortest" and abs(prep.crop_pct - theirs.crop_pct) > 1e-3:
        diffs.append(f"crop_pct {prep.crop_pct:.4f} vs {theirs.crop_pct:.4f}")
    if diffs:
        log.warning("%s: preset preprocessing differs from %s/preprocessor_config.json (preset vs "
                    "folder): %s; the preset's values are used", name, folder, "; ".join(diffs))
    return diffs


def how_to_get(model_id: str) -> str:
    return (f"on a connected machine run: hf download {model_id} (then copy "
            "~/.cache/huggingface/hub to this machine), or save the model folder with "
            "save_pretrained and pass --model hf:<folder>, or pass --download")


@register_backend("hf")
class HFBackend(Backend):
    description = "Hugging Face transformers (RAD-DINO, DINOv2, ViT, CLIP, SigLIP); local folder or cached hub id"
    requires = "transformers"
    examples = ("hf:microsoft/rad-dino", "hf:facebook/dinov2-small", "hf:google/siglip-base-patch16-224")

    @classmethod
    def default_weights_location(cls, model_id, model_kwargs):
        p = Path(model_id).expanduser()
        if p.is_dir():
            return p
        return cached_hub_snapshot(model_id)

    @classmethod
    def build(cls, model_id, *, weights, model_kwargs, seed, trust_checkpoint, download,
              preprocessing, name):
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # library code does not print
        try:
            return cls._build(model_id, weights=weights, model_kwargs=model_kwargs, seed=seed,
                              trust_checkpoint=trust_checkpoint, download=download,
                              preprocessing=preprocessing, name=name)
        finally:
            if bars:
                hf_logging.enable_progress_bar()

    @classmethod
    def _build(cls, model_id, *, weights, model_kwargs, seed, trust_checkpoint, download,
               preprocessing, name):
        from transformers import AutoConfig, AutoModel

        kwargs = dict(model_kwargs)
        pool = kwargs.pop("pool", "cls")
        if pool not in _POOLS:
            raise FairfoundryError(f"unknown pool {pool!r} for hf models", hint=f"use one of {_POOLS}")
        cfg_dict = kwargs.pop("config", None)
        path, wid = weights_or_random(weights, seed=seed)
        folder = cls.default_weights_location(model_id, kwargs)
        if path is not None and Path(path).is_dir():
            folder, path = Path(path), None
        if folder is None and cfg_dict is None and download:
            from huggingface_hub import snapshot_download

            try:
                folder = Path(snapshot_download(model_id))
            except Exception as exc:
                raise FairfoundryError(f"could not download hf:{model_id}: {exc}".splitlines()[0],
                                       hint=how_to_get(model_id)) from exc
        if cfg_dict is not None:
            cfg_dict = dict(cfg_dict)
            config = AutoConfig.for_model(cfg_dict.pop("model_type"), **cfg_dict)
        elif folder is not None:
            try:
                config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
            except (OSError, ValueError) as exc:
                raise FairfoundryError(f"cannot read the Hugging Face config in {folder}: {exc}".splitlines()[0]) from exc
        else:
            raise FairfoundryError(f"no local copy of hf:{model_id} (offline: nothing is downloaded "
                                   "unless you pass --download)", hint=how_to_get(model_id))
        if wid is None and path is None:  # pretrained folder
            try:
                model = AutoModel.from_pretrained(str(folder), local_files_only=True,
                                                  use_safetensors=None)
            except (OSError, ValueError) as exc:
                raise FairfoundryError(f"cannot load Hugging Face model from {folder}: {exc}".splitlines()[0],
                                       hint=how_to_get(model_id)) from exc
            wid = "sha256:" + weights_hash(folder)
        else:
            model = AutoModel.from_config(config)
            if path is not None:
                sd = unwrap_state_dict(read_state_dict(path, trust_checkpoint=trust_checkpoint,
                                                 model_name=name))
                load_state_dict_into(model, sd, source=str(path), model_name=f"hf:{model_id}",
                                     ignore_missing=("pooler.", "position_ids"),
                                     ignore_unexpected=("pooler.", "position_ids"))
                wid = "sha256:" + weights_hash(path)
        model.eval()
        config = model.config
        dual = hasattr(model, "get_image_features") and hasattr(model, "get_text_features")
        if preprocessing is not None:
            check_against_folder(preprocessing, folder, config, name=name)
        prep = preprocessing or _prep_from_folder(folder, config)
        if dual:
            dim = getattr(config, "projection_dim", None) or config.vision_config.hidden_size
        else:
            dim = config.hidden_size
        tokenizer = None
        if dual and folder is not None:
            try:
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            except Exception:
                tokenizer = None
        return HFEncoder(name=name, backend="hf", model_id=model_id, module=model, preprocessing=prep,
                         embed_dim=int(dim), weights_id=wid, model_kwargs=model_kwargs, pool=pool,
                         tokenizer=tokenizer, dual=dual, config_dict=config.to_dict())

