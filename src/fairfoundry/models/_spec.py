"""Preprocessing and preset descriptions, and the preset registry.

Nothing here imports torch: presets are plain data, so ``fairfoundry models list`` is instant.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any

from .._errors import FairfoundryError

__all__ = [
    "Preprocessing",
    "Preset",
    "PRESETS",
    "register_preset",
    "get_preset",
    "list_presets",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CLIP_MEAN",
    "CLIP_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_RESIZE_MODES = ("shortest", "squash")
_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
_GRAY_MODES = ("luma", "mean")


@dataclass(frozen=True)
class Preprocessing:
    r"""How an image array becomes a model input tensor.

    Steps, in order (see :func:`fairfoundry.models.preprocess_image`):

    1. pixel values to ``[0, 1]``: ``x / 255`` for 8-bit, ``x / 65535`` for 16-bit images,
       ``(x - min) / (max - min)`` for float images;
    2. channels: grayscale is repeated to 3 channels when ``channels == 3``; RGB becomes one
       channel when ``channels == 1``: luminance (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B)
       with ``gray="luma"``, or the plain channel mean (R + G + B) / 3 with ``gray="mean"``
       (torchxrayvision's documented ``img.mean(2)``); both are identical for grey images
       stored as RGB;
    3. resize: ``"shortest"`` scales the shorter side to ``floor(size / crop_pct)`` and
       centre-crops ``size x size`` (timm / torchvision / open_clip convention); ``"squash"``
       resizes to ``size x size`` ignoring the aspect ratio;
    4. value range: :math:`x \leftarrow lo + x (hi - lo)` with ``value_range = (lo, hi)``
       (``(-1024, 1024)`` for torchxrayvision models);
    5. normalisation: :math:`x \leftarrow (x - \mathrm{mean}_c) / \mathrm{std}_c`.

    Parameters
    ----------
    size : int
        Side of the square model input, in pixels.
    channels : {1, 3}
        Number of input channels the model expects.
    mean, std : tuple of float
        Per-channel normalisation (one value per channel).
    value_range : (float, float)
        Range the ``[0, 1]`` pixels are mapped to before normalisation.
    resize : {"shortest", "squash"}
    crop_pct : float
        Fraction of the resized shorter side kept by the centre crop (``"shortest"`` only).
    interpolation : {"bilinear", "bicubic", "nearest"}
    gray : {"luma", "mean"}
        How RGB becomes one channel (``channels == 1`` only).
    """

    size: int = 224
    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    value_range: tuple[float, float] = (0.0, 1.0)
    resize: str = "shortest"
    crop_pct: float = 1.0
    interpolation: str = "bicubic"
    gray: str = "luma"

    def __post_init__(self):
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "value_range", tuple(float(v) for v in self.value_range))
        if int(self.size) <= 0:
            raise FairfoundryError(f"preprocessing size must be positive, got {self.size}")
        object.__setattr__(self, "size", int(self.size))
        if self.channels not in (1, 3):
            raise FairfoundryError(f"preprocessing channels must be 1 or 3, got {self.channels}")
        for what, vals in (("mean", self.mean), ("std", self.std)):
            if len(vals) == 1 and self.channels == 3:
                object.__setattr__(self, what, vals * 3)
            elif len(vals) != self.channels:
                raise FairfoundryError(
                    f"preprocessing {what} has {len(vals)} values for {self.channels} channels")
        if any(s <= 0 for s in self.std):
            raise FairfoundryError(f"preprocessing std must be positive, got {self.std}")
        if self.resize not in _RESIZE_MODES:
            raise FairfoundryError(f"unknown resize mode {self.resize!r}",
                                   hint=f"use one of {', '.join(_RESIZE_MODES)}")
        if self.interpolation not in _INTERPOLATIONS:
            raise FairfoundryError(f"unknown interpolation {self.interpolation!r}",
                                   hint=f"use one of {', '.join(_INTERPOLATIONS)}")
        if self.gray not in _GRAY_MODES:
            raise FairfoundryError(f"unknown gray mode {self.gray!r}",
                                   hint=f"use one of {', '.join(_GRAY_MODES)}")
        if not 0 < float(self.crop_pct) <= 1:
            raise FairfoundryError(f"crop_pct must be in (0, 1], got {self.crop_pct}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (lists for tuples)."""
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming the valid ones."""
        valid = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - valid)
        if bad:
            raise FairfoundryError(f"unknown preprocessing keys: {', '.join(bad)}",
                                   hint=f"valid keys are: {', '.join(sorted(valid))}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    def replace(self, **changes) -> Preprocessing:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Preset:
    """A named encoder: backend + model config + default weights + preprocessing + provenance.

    Parameters
    ----------
    name : str
        What users type (``--model NAME``); lower-case, dashes.
    backend : str
        A registered backend (``timm``, ``open_clip``, ``hf``, ``xrv``, ``retfound``).
    model : str
        The backend's model id (timm model name, open_clip architecture or ``hf-hub:`` id,
        Hugging Face repo id, torchxrayvision weights name).
    model_kwargs : dict
        Extra constructor arguments for the backend (e.g. timm ``img_size``, ``embed_dim``).
    weights : str or None
        Default weights: ``None`` lets the backend resolve its hub id from the local caches;
        ``"package:<module>/<relative path>"`` is a file shipped inside a Python package;
        anything else is a local path. ``--weights PATH`` overrides it.
    preprocessing : Preprocessing or None
        Exact input size, channels and normalisation; ``None`` takes the backend's default.
    licence : str
        Licence of the weights (not of fairfoundry).
    source : str
        Where the weights are published (URL or hub id).
    get_weights : str
        Shell commands that fetch the weights on a connected machine.
    modality, description, paper : str
        Free text shown by ``fairfoundry models show``.
    embed_dim : int or None
        Embedding width, for documentation (the loaded encoder reports the true one).
    vlm : bool
        True for vision-language models that also have ``encode_text``.
    verified : str
        Where the preprocessing and licence values were checked (model card, published
        ``preprocessor_config.json`` / ``open_clip_config.json``, the authors' code), and what
        could not be confirmed. Shown by ``fairfoundry models show``.
    """

    name: str
    backend: str
    model: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    preprocessing: Preprocessing | None = None
    licence: str = "unknown"
    source: str = ""
    get_weights: str = ""
    modality: str = ""
    description: str = ""
    paper: str = ""
    embed_dim: int | None = None
    vlm: bool = False
    verified: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["preprocessing"] = self.preprocessing.to_dict() if self.preprocessing else None
        return d


#: preset name -> :class:`Preset`; filled by :func:`register_preset` in ``models/presets/*.py``.
PRESETS: dict[str, Preset] = {}
_DISCOVERED = {"done": False}


def register_preset(preset: Preset) -> Preset:
    """Add ``preset`` to :data:`PRESETS` (a name may be registered once)."""
    if preset.name in PRESETS and PRESETS[preset.name] != preset:
        raise ValueError(f"encoder preset {preset.name!r} registered twice")
    PRESETS[preset.name] = preset
    return preset


def _discover() -> None:
    """Import every module of :mod:`fairfoundry.models.presets` once (they only register data)."""
    if _DISCOVERED["done"]:
        return
    _DISCOVERED["done"] = True
    from . import presets

    for info in sorted(pkgutil.iter_modules(presets.__path__), key=lambda m: m.name):
        importlib.import_module(f"{presets.__name__}.{info.name}")


def list_presets() -> list[Preset]:
    """All registered presets, sorted by name."""
    _discover()
    return [PRESETS[k] for k in sorted(PRESETS)]


def get_preset(name: str) -> Preset | None:
    """The preset called ``name`` (case-insensitive), or ``None``."""
    _discover()
    return PRESETS.get(name) or PRESETS.get(str(name).lower())
