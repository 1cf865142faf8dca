"""open_clip backend: CLIP, BiomedCLIP, SigLIP, PubMedCLIP, ... (image and text encoders).

Model ids: a built-in architecture with an optional pretrained tag (``ViT-B-16``,
``ViT-B-16@laion2b_s34b_b88k``; default tag: the first one open_clip lists), ``hf-hub:org/repo``,
``local-dir:/path`` (a folder with ``open_clip_config.json`` and weights), or ``custom`` with
``model_kwargs={"model_cfg": {...}}`` (an open_clip model config dict, e.g. a tiny test model).
"""

from __future__ import annotations

import json
from pathlib import Path

from .._errors import FairfoundryError, did_you_mean
from ._checkpoint import load_state_dict_into, read_state_dict, unwrap_state_dict, weights_hash
from ._encoder import Encoder
from ._hub import cached_hub_file, cached_hub_snapshot
from ._registry import Backend, register_backend, weights_or_random
from ._spec import CLIP_MEAN, CLIP_STD, Preprocessing

__all__ = ["OpenClipEncoder"]

_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class OpenClipEncoder(Encoder):
    """An open_clip model; ``encode_image`` / ``encode_text`` return un-normalised projections."""

    is_vlm = True

    def __init__(self, *, tokenizer, portable, **kw):
        super().__init__(**kw)
        self._tokenizer = tokenizer
        self._portable = portable

    def image_features(self, x):
        return self.module.encode_image(x)

    def text_features(self, texts):
        if self._tokenizer is None:
            raise FairfoundryError(f"no tokenizer available offline for {self.name}",
                                   hint="load it once on a connected machine (--download) to cache it")
        tokens = self._tokenizer(list(texts)).to(self.device)
        return self.module.encode_text(tokens)

    def portable_spec(self):
        return self._portable


def _prep_from_cfg(cfg: dict | None, image_size) -> Preprocessing:
    cfg = dict(cfg or {})
    size = cfg.get("size", image_size)
    if isinstance(size, (list, tuple)):
        size = size[0]
    mode = cfg.get("resize_mode", "shortest")
    interp = cfg.get("interpolation", "bicubic")
    return Preprocessing(size=int(size), channels=3, mean=tuple(cfg.get("mean", CLIP_MEAN)),
                         std=tuple(cfg.get("std", CLIP_STD)),
                         resize="squash" if mode == "squash" else "shortest",
                         interpolation=interp if interp in ("bilinear", "bicubic") else "bicubic")


def _build_custom(model_cfg: dict):
    from open_clip.model import CLIP, CustomTextCLIP

    cfg = dict(model_cfg)
    text = cfg.get("text_cfg", {})
    if isinstance(text, dict) and "hf_model_name" in text:
        # the full checkpoint replaces the text tower: do not fetch the base language model
        cfg["text_cfg"] = text = {**text, "hf_model_pretrained": False}
    cls = CustomTextCLIP if isinstance(text, dict) and ("hf_model_name" in text or cfg.pop("custom_text", False)) else CLIP
    try:
        return cls(**cfg)
    except TypeError as exc:
        raise FairfoundryError(f"bad open_clip model_cfg: {exc}") from exc


def _tokenizer_for(model_cfg: dict):
    import open_clip

    text = model_cfg.get("text_cfg", {}) or {}
    ctx = int(text.get("context_length", 77))
    if text.get("hf_tokenizer_name"):
        try:
            return open_clip.tokenizer.HFTokenizer(text["hf_tokenizer_name"], context_length=ctx)
        except Exception:
            return None
    return open_clip.tokenizer.SimpleTokenizer(context_length=ctx)


def _split_tag(model_id: str) -> tuple[str, str | None]:
    if model_id.startswith(("hf-hub:", "local-dir:")) or "@" not in model_id:
        return model_id, None
    arch, tag = model_id.rsplit("@", 1)
    return arch, tag


def _default_tag(arch: str) -> str | None:
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(arch)
    return tags[0] if tags else None


def how_to_get(model_id: str) -> str:
    if model_id.startswith("hf-hub:"):
        repo = model_id[len("hf-hub:"):]
        return (f"on a connected machine run: hf download {repo} (then copy "
                "~/.cache/huggingface/hub), or pass --weights PATH, or --download")
    arch, tag = _split_tag(model_id)
    return (f"on a connected machine run: python -c \"import open_clip; open_clip.create_model("
            f"'{arch}', pretrained='{tag or _default_tag(arch)}')\" (fills ~/.cache/huggingface), "
            "or pass --weights PATH, or --download")


@register_backend("open_clip")
class OpenClipBackend(Backend):
    description = "open_clip models (CLIP, BiomedCLIP, SigLIP, PubMedCLIP); image + text"
    requires = "open_clip_torch"
    examples = ("open_clip:ViT-B-16", "open_clip:ViT-B-16@laion2b_s34b_b88k",
                "open_clip:hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")

    @classmethod
    def default_weights_location(cls, model_id, model_kwargs):
        import open_clip

        if model_id == "custom":
            return None
        if model_id.startswith("local-dir:"):
            return Path(model_id[len("local-dir:"):])
        if model_id.startswith("hf-hub:"):
            return cached_hub_file(model_id[len("hf-hub:"):], _HUB_FILES)
        arch, tag = _split_tag(model_id)
        if arch not in open_clip.list_models():
            return None
        tag = tag or _default_tag(arch)
        cfg = open_clip.get_pretrained_cfg(arch, tag) if tag else {}
        hub = (cfg or {}).get("hf_hub", "")
        if not hub:
            return None
        repo = hub.rstrip("/")
        parts = repo.split("/")
        if len(parts) > 2:  # org/repo/filename
            return cached_hub_file("/".join(parts[:2]), ("/".join(parts[2:]),))
        return cached_hub_file(repo, _HUB_FILES)

    @classmethod
    def build(cls, model_id, *, weights, model_kwargs, seed, trust_checkpoint, download,
              preprocessing, name):
        import open_clip

        path, wid = weights_or_random(weights, seed=seed)
        model_cfg = model_kwargs.get("model_cfg")
        pre_cfg = model_kwargs.get("preprocess_cfg")
        if model_id == "custom":
            if not isinstance(model_cfg, dict):
                raise FairfoundryError("open_clip:custom needs model_kwargs={'model_cfg': {...}}")
            model = _build_custom(model_cfg)
        elif model_id.startswith(("hf-hub:", "local-dir:")):
            folder = (Path(model_id[len("local-dir:"):]) if model_id.startswith("local-dir:")
                      else None)
            if folder is None:
                repo = model_id[len("hf-hub:"):]
                folder = cached_hub_snapshot(repo)
                if folder is None and (download and wid is None and path is None):
                    from huggingface_hub import snapshot_download

                    folder = Path(snapshot_download(repo))
                if folder is None:
                    raise FairfoundryError(f"no local copy of open_clip:{model_id}", hint=how_to_get(model_id))
            cfg_file = folder / "open_clip_config.json"
            if not cfg_file.is_file():
                raise FairfoundryError(f"{folder} has no open_clip_config.json")
            conf = json.loads(cfg_file.read_text(encoding="utf-8"))
            model_cfg, pre_cfg = conf["model_cfg"], conf.get("preprocess_cfg", {})
            model = _build_custom(model_cfg)
            if wid is None and path is None:
                files = [folder / f for f in _HUB_FILES if (folder / f).is_file()]
                if not files:
                    raise FairfoundryError(f"no open_clip weights in {folder}", hint=how_to_get(model_id))
                path = files[0]
        else:
            arch, tag = _split_tag(model_id)
            if arch not in open_clip.list_models():
                raise FairfoundryError(f"unknown open_clip architecture {arch!r}",
                                       hint=did_you_mean(arch, open_clip.list_models(), what="architectures"))
            model_cfg = open_clip.get_model_config(arch)
            ptag = None
            if wid is None and path is None:
                ptag = tag or _default_tag(arch)
                loc = cls.default_weights_location(model_id, model_kwargs)
                if loc is None and not download:
                    raise FairfoundryError(f"no local weights for open_clip:{model_id} (offline: "
                                           "nothing is downloaded unless you pass --download)",
                                           hint=how_to_get(model_id))
                pcfg = open_clip.get_pretrained_cfg(arch, ptag) or {}
                model = open_clip.create_model(arch, pretrained=str(loc) if loc else ptag,
                                               force_quick_gelu=bool(pcfg.get("quick_gelu", False)))
                wid = "sha256:" + weights_hash(loc) if loc else f"hub:{model_id}"
                pre_cfg = {k: pcfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in pcfg}
            else:
                model = open_clip.create_model(arch, pretrained=None)
        if path is not None:
            sd = unwrap_state_dict(read_state_dict(path, trust_checkpoint=trust_checkpoint,
                                                 model_name=name))
            load_state_dict_into(model, sd, source=str(path), model_name=f"open_clip:{model_id}",
                                 ignore_missing=("attn_mask",))
            wid = "sha256:" + weights_hash(path)
        model.eval()
        vis_size = (model_cfg or {}).get("vision_cfg", {}).get("image_size", 224)
        base_pre = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
        base_pre.update(pre_cfg or {})
        prep = preprocessing or _prep_from_cfg(base_pre, vis_size)
        dim = getattr(model.visual, "output_dim", None) or (model_cfg or {}).get("embed_dim")
        if model_id in ("custom",) or model_id.startswith(("hf-hub:", "local-dir:")):
            tok = _tokenizer_for(model_cfg)
        else:
            try:
                tok = open_clip.get_tokenizer(_split_tag(model_id)[0])
            except Exception:
                tok = None
        portable = ("custom", {"model_cfg": model_cfg, "preprocess_cfg": prep_to_open_clip(prep)})
        return OpenClipEncoder(name=name, backend="open_clip", model_id=model_id, module=model,
                               preprocessing=prep, embed_dim=int(dim), weights_id=wid,
                               model_kwargs=model_kwargs, tokenizer=tok, portable=portable)


def prep_to_open_clip(prep: Preprocessing) -> dict:
    return {"size": prep.size, "mean": list(prep.mean), "std": list(prep.std),
            "interpolation": prep.interpolation,
            "resize_mode": "squash" if prep.resize == "squash" else "shortest"}
