"""Exported encoders: plain timm ViT weights in safetensors (no pickle), with a rebuild spec.

(Resumable training states are the adapt loop's checkpoints.)

- ``encoder.safetensors`` -- the state dict of a timm ``VisionTransformer`` with string metadata
  ``format = fairfoundry-vit``, ``timm_spec`` (JSON of the ``timm.create_model`` arguments),
  ``pixel_mean`` / ``pixel_std`` and the training recipe. It loads without fairfoundry::

      spec = json.loads(safe_open(path, "pt").metadata()["timm_spec"])
      model = timm.create_model(spec.pop("architecture"), pretrained=False, **spec)
      model.load_state_dict(safetensors.torch.load_file(path))

  The header also carries the model zoo's ``fairfoundry.encoder`` entry (backend ``timm``,
  constructor kwargs, preprocessing: squash to the training size, normalise with 0.5 / 0.5),
  so ``fairfoundry.models.load_encoder(path)`` and ``fairfoundry embed --model path`` load it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._errors import FairfoundryError
from .._io import save_safetensors
from ._backbone import ViTBackbone

__all__ = ["save_vit", "load_pretrained_vit", "read_metadata"]


def save_vit(backbone: ViTBackbone, path: str | os.PathLike, *, dtype=None,
             **metadata: Any) -> Path:
    """Write a backbone's timm weights + rebuild spec to ``path`` (atomically).

    ``dtype`` (e.g. ``torch.float16``) stores the weights at a lower precision (half the size;
    ``load_state_dict`` casts them back to the model's float32).
    """

    state = {k: v.detach().to("cpu").contiguous() for k, v in backbone.net.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    meta = backbone.export_metadata(**metadata)
    meta.update(_zoo_header(backbone, metadata))
    return save_safetensors(path, state, metadata=meta)  # fixed header order (deterministic bytes)


def _zoo_header(backbone: ViTBackbone, metadata: dict) -> dict[str, str]:
    """The model zoo's header, so ``fairfoundry.models.load_encoder(path)`` loads the file."""
    from ..models import Preprocessing
    from ..models._checkpoint import SAFETENSORS_META_KEY

    spec = backbone.spec
    kwargs = {k: v for k, v in spec.items()
              if k not in ("architecture", "num_classes", "dynamic_img_size")}
    size = int(metadata.get("image_size", backbone.image_size))
    prep = Preprocessing(size=size, channels=3,
                         mean=tuple(metadata.get("pixel_mean", (0.5, 0.5, 0.5))),
                         std=tuple(metadata.get("pixel_std", (0.5, 0.5, 0.5))),
                         resize="squash", interpolation="bilinear")
    header = {"backend": "timm", "model": spec["architecture"], "model_kwargs": kwargs,
              "preprocessing": prep.to_dict(), "embed_dim": backbone.embed_dim,
              "source_name": "fairfoundry.pretrain"}
    return {SAFETENSORS_META_KEY: json.dumps(header)}


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """String metadata of a safetensors file (empty dict when it has none)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise FairfoundryError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:  # corrupt / not a safetensors file
        raise FairfoundryError(f"cannot read {path} as safetensors: {exc}".splitlines()[0]) from exc


def load_pretrained_vit(path: str | os.PathLike, *, device: str = "cpu") -> tuple[ViTBackbone, dict]:
    """Rebuild a ViT saved by :func:`save_vit`; returns ``(backbone, metadata)``.

    Raises
    ------
    FairfoundryError
        If the file is missing, not safetensors, or not a fairfoundry ViT export.
    """
    import timm
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta.get("format") != "fairfoundry-vit" or "timm_spec" not in meta:
        raise FairfoundryError(f"{path} is not a fairfoundry ViT export (no timm_spec metadata)",
                               hint="export encoders with fairfoundry pretrain / distill")
    spec = json.loads(meta["timm_spec"])
    args = {k: v for k, v in spec.items() if k != "architecture"}
    net = timm.create_model(spec["architecture"], pretrained=False, **args)
    net.load_state_dict(load_file(str(path), device=str(device)))
    return ViTBackbone(net.to(device), spec=spec), meta
