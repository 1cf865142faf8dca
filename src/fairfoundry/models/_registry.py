"""Backend registry and :func:`load_encoder`, the one entry point for every model."""

from __future__ import annotations

import abc
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import FairfoundryError, did_you_mean
from ._checkpoint import (
    SAFETENSORS_META_KEY,
    read_safetensors_metadata,
    resolve_weights_path,
    weights_hash,
)
from ._spec import Preprocessing, Preset, get_preset, list_presets

__all__ = ["Backend", "BACKENDS", "list_backends", "register_backend", "load_encoder", "save_encoder", "resolve_model",
           "ModelRef", "RANDOM"]

log = logging.getLogger(__name__)

#: ``weights=RANDOM`` builds the architecture with seeded random weights (tests, smoke runs).
RANDOM = "random"

#: backend name -> :class:`Backend` subclass; filled by :func:`register_backend`.
BACKENDS: dict[str, type[Backend]] = {}


def register_backend(name: str):
    """Class decorator adding a :class:`Backend` to :data:`BACKENDS` under ``name``."""

    def deco(cls):
        if name in BACKENDS:
            raise ValueError(f"encoder backend {name!r} registered twice")
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return deco


class Backend(abc.ABC):
    """A family of models (timm, open_clip, ...): builds an :class:`Encoder` from a model id.

    ``weights`` passed to :meth:`build` is ``None`` (resolve the model id's published weights from
    the local caches only, or download them when ``download=True``), :data:`RANDOM` (seeded
    random init) or a local :class:`~pathlib.Path` (file, or folder for Hugging Face models).
    """

    name: str = ""
    #: one line for ``fairfoundry models list``
    description: str = ""
    #: the pip package(s) it needs
    requires: str = ""
    #: example model ids
    examples: tuple[str, ...] = ()

    @classmethod
    @abc.abstractmethod
    def build(cls, model_id: str, *, weights, model_kwargs: dict, seed: int, trust_checkpoint: bool,
              download: bool, preprocessing: Preprocessing | None, name: str):
        """Return an :class:`~fairfoundry.models.Encoder` (on CPU)."""

    @classmethod
    def default_weights_location(cls, model_id: str, model_kwargs: dict) -> Path | None:
        """Local path of the published weights of ``model_id`` if already cached, else ``None``.

        Used to fingerprint the weights for the embedding cache without building the model.
        """
        return None


@dataclass
class ModelRef:
    """What a model name resolves to, before anything heavy is imported."""

    name: str
    backend: str
    model_id: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    weights: Any = None  # None | RANDOM | Path
    preprocessing: Preprocessing | None = None
    preset: Preset | None = None

    def weights_fingerprint(self) -> str:
        """``sha256:...`` of the weights file(s), ``random:seed=...`` is added by the caller."""
        if isinstance(self.weights, Path):
            return "sha256:" + weights_hash(self.weights)
        if self.weights == RANDOM:
            return RANDOM
        loc = _backend(self.backend).default_weights_location(self.model_id, self.model_kwargs)
        if loc is not None and Path(loc).exists():
            return "sha256:" + weights_hash(loc)
        return f"default:{self.backend}:{self.model_id}"


def _backend(name: str) -> type[Backend]:
    _load_backends()
    if name not in BACKENDS:
        raise FairfoundryError(f"unknown model backend {name!r}",
                               hint=did_you_mean(name, sorted(BACKENDS), what="backends"))
    return BACKENDS[name]


def list_backends() -> dict[str, type[Backend]]:
    """All registered backends, by name."""
    _load_backends()
    return dict(sorted(BACKENDS.items()))


def _load_backends() -> None:
    """Import every backend module (found by :func:`fairfoundry._plugins.discover`: the
    modules of this package using ``@register_backend(``, and ``fairfoundry.backends`` entry
    points); they import torch lazily."""
    from .._plugins import ENTRY_POINT_GROUPS, discover

    discover(__package__, marker="@register_backend(", group=ENTRY_POINT_GROUPS["backends"])


def _encoder_meta_for_path(path: Path) -> dict | None:
    """The encoder description stored with a local checkpoint, if any."""
    if path.is_file() and path.name.lower().endswith(".safetensors"):
        meta = read_safetensors_metadata(path)
        if SAFETENSORS_META_KEY in meta:
            return json.loads(meta[SAFETENSORS_META_KEY])
    side = path.with_suffix(".json") if path.is_file() else path / "fairfoundry_encoder.json"
    if side.is_file():
        try:
            d = json.loads(side.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise FairfoundryError(f"cannot parse encoder description {side}: {exc}") from exc
        if isinstance(d, dict) and "backend" in d:
            return d
    return None


def _all_names() -> list[str]:
    return [p.name for p in list_presets()]


def _parse_weights(weights) -> Any:
    if weights is None:
        return None
    if str(weights) == RANDOM:
        return RANDOM
    path = resolve_weights_path(weights)
    if not path.exists():
        raise FairfoundryError(f"weights file not found: {path}",
                               hint="pass an existing .safetensors/.pt file or folder, or 'random'")
    return path


#: types of common encoder constructor arguments (timm / open_clip ViTs and CNNs), checked
#: before anything is built so ``--model-arg img_size=abc`` names the argument and its type
MODEL_ARG_TYPES: dict[str, type] = {
    "img_size": int, "patch_size": int, "depth": int, "embed_dim": int, "num_heads": int,
    "in_chans": int, "num_classes": int, "mlp_ratio": float, "drop_rate": float,
    "drop_path_rate": float, "global_pool": str, "class_token": bool, "pretrained": bool,
}


def resolve_model(name_or_path: str | os.PathLike, *, weights=None,
                  model_kwargs: dict | None = None) -> ModelRef:
    """Resolve a preset name, ``backend:id`` or local path to a :class:`ModelRef` (no torch).

    Raises
    ------
    FairfoundryError
        Unknown model (with the closest preset names) or unknown backend.
    """
    from .._values import check_types

    _load_backends()
    text = str(name_or_path).strip()
    kwargs = check_types(dict(model_kwargs or {}), MODEL_ARG_TYPES, option="--model-arg")
    preset = get_preset(text)
    if preset is not None:
        w = _parse_weights(weights) if weights is not None else (
            resolve_weights_path(preset.weights) if preset.weights else None)
        if isinstance(w, Path) and not w.exists():
            raise FairfoundryError(f"preset {preset.name}: bundled weights missing at {w}",
                                   hint="reinstall fairfoundry, or pass --weights PATH")
        return ModelRef(preset.name, preset.backend, preset.model, {**preset.model_kwargs, **kwargs},
                        w, preset.preprocessing, preset)
    path = Path(text).expanduser()
    prefix, sep, rest = text.partition(":")
    if sep and prefix in BACKENDS and not path.exists():
        if not rest:
            raise FairfoundryError(f"model {text!r} has an empty id after {prefix}:",
                                   hint=f"e.g. {', '.join(BACKENDS[prefix].examples[:2])}")
        return ModelRef(text, prefix, rest, kwargs, _parse_weights(weights))
    if path.exists():
        meta = _encoder_meta_for_path(path)
        if meta is not None:
            prep = meta.get("preprocessing")
            w = _parse_weights(weights) if weights is not None else path
            return ModelRef(text, meta["backend"], meta["model"],
                            {**meta.get("model_kwargs", {}), **kwargs}, w,
                            Preprocessing.from_dict(prep) if prep else None)
        return ModelRef(text, "local", str(path), kwargs, _parse_weights(weights))
    if sep and len(prefix) > 1 and "/" not in prefix:
        raise FairfoundryError(f"unknown model backend {prefix!r} in {text!r}",
                               hint=did_you_mean(prefix, sorted(BACKENDS), what="backends"))
    hint = did_you_mean(text, _all_names(), what="presets")
    raise FairfoundryError(
        f"unknown model {text!r}: not a preset, not backend:id and not an existing path",
        hint=f"{hint}; or use backend:id with backend one of {', '.join(sorted(BACKENDS))} "
        "(e.g. timm:vit_small_patch16_224.dino); `fairfoundry models list` shows all",
    )


def load_encoder(name_or_path: str | os.PathLike, *, weights=None, device: str = "cpu",
                 trust_checkpoint: bool = False, download: bool = False, seed: int = 0,
                 model_kwargs: dict | None = None):
    """Load an encoder by preset name, ``backend:id`` or local path.

    Parameters
    ----------
    name_or_path : str or path
        A preset (``rad-dino``, ``biomedclip``, ``retfound-cfp``, ... see ``fairfoundry models
        list``), ``backend:id`` (``timm:vit_small_patch16_224.dino``, ``open_clip:ViT-B-16``,
        ``hf:microsoft/rad-dino``, ``xrv:densenet121-res224-all``, ``retfound:vit_large_patch16``),
        or a local checkpoint: a ``.safetensors`` written by :func:`save_encoder` (it carries its
        architecture), a weights file with a ``<stem>.json`` encoder description next to it, or a
        Hugging Face model folder (``config.json``).
    weights : str or path, optional
        Overrides where the weights come from: a local file/folder, ``package:<module>/<path>``,
        or ``"random"`` for seeded random initialisation. Default: the preset's weights, or the
        model's published weights from the local caches.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``.
    trust_checkpoint : bool
        Allow unpickling checkpoints that are not plain tensors (runs code from the file).
    download : bool
        Allow hub downloads (off by default: everything resolves from local files and caches).
    seed : int
        Seed of the random initialisation (only used with ``weights="random"``).
    model_kwargs : dict, optional
        Extra constructor arguments (e.g. timm ``img_size=64``).

    Returns
    -------
    Encoder
        With ``preprocessing``, ``embed_dim``, ``encode_image`` and, for VLMs, ``encode_text``.

    Raises
    ------
    FairfoundryError
        Unknown model (closest names), missing weights (how to get them), weights of another
        architecture (the mismatched keys), pickle checkpoints without ``trust_checkpoint``.

    Examples
    --------
    >>> enc = load_encoder("timm:vit_tiny_patch16_224", weights="random",
    ...                    model_kwargs={"img_size": 32, "depth": 1})  # doctest: +SKIP
    >>> enc.encode_image([image_array]).shape  # doctest: +SKIP
    torch.Size([1, 192])
    """
    ref = resolve_model(name_or_path, weights=weights, model_kwargs=model_kwargs)
    backend = _backend(ref.backend)
    try:
        enc = backend.build(ref.model_id, weights=ref.weights, model_kwargs=dict(ref.model_kwargs),
                            seed=int(seed), trust_checkpoint=bool(trust_checkpoint),
                            download=bool(download), preprocessing=ref.preprocessing, name=ref.name)
    except FairfoundryError as exc:
        saved = _encoder_meta_for_path(ref.weights) if isinstance(ref.weights, Path) else None
        if saved is None or "do not fit" not in str(exc):
            raise
        # the weights file says which architecture it holds: point there
        raise FairfoundryError(
            str(exc), hint=f"{ref.weights} was saved by fairfoundry for {saved.get('backend')}:"
            f"{saved.get('model')} (kwargs {saved.get('model_kwargs', {})}); load it with "
            f"--model {ref.weights} and no --weights") from exc
    if ref.preprocessing is not None:
        enc.preprocessing = ref.preprocessing
    enc.load_args = {"name_or_path": str(name_or_path),
                     "weights": None if weights is None else str(weights),
                     "trust_checkpoint": bool(trust_checkpoint), "download": bool(download),
                     "seed": int(seed), "model_kwargs": dict(model_kwargs or {})}
    enc.to(device)
    log.info("loaded %r", enc)
    return enc


def save_encoder(encoder, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Save an encoder's weights as ``.safetensors`` with its architecture in the header.

    The file loads back with ``load_encoder(path)`` on a machine with no network: the header
    (``__metadata__["fairfoundry.encoder"]``) holds backend, model id, constructor kwargs and
    preprocessing.
    """
    from .._io import save_safetensors

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise FairfoundryError(f"save_encoder writes .safetensors files, got {path}")
    if path.exists() and not overwrite:
        raise FairfoundryError(f"{path} exists", hint="pass overwrite=True to replace it")
    model_id, model_kwargs = encoder.portable_spec()
    meta = {"backend": encoder.backend, "model": model_id, "model_kwargs": model_kwargs,
            "preprocessing": encoder.preprocessing.to_dict(), "embed_dim": encoder.embed_dim,
            "source_name": encoder.name}
    state = {k: v.detach().to("cpu").contiguous() for k, v in encoder.module.state_dict().items()}
    # tied / shared tensors must be saved once
    seen: dict[int, str] = {}
    for k in list(state):
        ptr = state[k].data_ptr()
        if ptr in seen and state[k].numel() > 0:
            state[k] = state[k].clone()
        seen[ptr] = k
    save_safetensors(path, state, metadata={SAFETENSORS_META_KEY: json.dumps(meta, sort_keys=True)})
    return path


def weights_or_random(weights, *, seed: int):
    """Helper for backends: ``(path or None, weights_id)`` and seed torch for random init."""
    import torch

    if weights == RANDOM:
        torch.manual_seed(seed)
        return None, f"random:seed={seed}"
    return weights, None
