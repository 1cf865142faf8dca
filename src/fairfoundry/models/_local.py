"""Local checkpoints whose architecture is not recorded in the file itself.

``load_encoder(path)`` first reads the architecture stored with the file (the safetensors header
written by :func:`~fairfoundry.models.save_encoder`, or a ``<stem>.json`` / ``fairfoundry_encoder.json``
description). Otherwise this backend recognises:

* a Hugging Face model folder (``config.json``) -> the ``hf`` backend;
* an open_clip folder (``open_clip_config.json``) -> the ``open_clip`` backend (``local-dir:``).

A bare weights file cannot say which network it belongs to: pass ``--model backend:id --weights FILE``.
"""

from __future__ import annotations

from pathlib import Path

from .._errors import FairfoundryError
from ._registry import BACKENDS, Backend, register_backend


@register_backend("local")
class LocalBackend(Backend):
    description = "a local folder (Hugging Face or open_clip) or a .safetensors saved by save_encoder"
    requires = ""
    examples = ("./my-encoder.safetensors", "./rad-dino-folder/")

    @classmethod
    def build(cls, model_id, *, weights, model_kwargs, seed, trust_checkpoint, download,
              preprocessing, name):
        path = Path(model_id)
        common = {"weights": weights, "model_kwargs": model_kwargs, "seed": seed,
                  "trust_checkpoint": trust_checkpoint, "download": False,
                  "preprocessing": preprocessing, "name": name}
        if path.is_dir() and (path / "open_clip_config.json").is_file():
            return BACKENDS["open_clip"].build(f"local-dir:{path}", **common)
        if path.is_dir() and (path / "config.json").is_file():
            return BACKENDS["hf"].build(str(path), **common)
        if path.is_dir():
            raise FairfoundryError(f"{path} is a folder without config.json or open_clip_config.json",
                                   hint="pass a Hugging Face / open_clip model folder or a weights file")
        raise FairfoundryError(
            f"cannot tell which architecture the weights file {path} belongs to",
            hint=f"pass --model backend:id --weights {path} (e.g. --model timm:vit_small_patch16_224 "
            "--weights ...), or save it with fairfoundry.models.save_encoder so it carries its config")
