"""Images in and out of generators: manifest rows -> tensors in [-1, 1]; tensors -> PNG files."""

from __future__ import annotations

from pathlib import Path

from .._errors import FairfoundryError

__all__ = ["load_images", "resolve_paths", "save_png", "to_uint8"]


def resolve_paths(frame, manifest_path, *, allow_outside_root: bool = False) -> list[Path]:
    """Absolute image paths of a manifest's ``path`` column, relative paths starting at the
    manifest's folder (:func:`fairfoundry.data.resolve_paths`: one climbing out of it is refused
    with its 1-based data row named, unless ``allow_outside_root``; an empty path is refused)."""
    import pandas as pd

    from ..data import resolve_paths as resolve

    if "path" not in frame.columns:
        raise FairfoundryError(f"manifest {manifest_path} has no 'path' column: the generator needs images")
    numbers = ([int(i) + 1 for i in frame.index] if pd.api.types.is_integer_dtype(frame.index)
               else None)  # a subset of the manifest keeps its rows' numbers
    full = resolve(frame["path"], root=Path(manifest_path).parent, source=f"manifest {manifest_path}",
                   allow_outside_root=allow_outside_root, row_numbers=numbers)
    for i, p in enumerate(full):
        if p is None:
            raise FairfoundryError(f"manifest {manifest_path}: row {numbers[i] if numbers else i + 1} "
                                   "has an empty path")
    return [Path(p) for p in full]


def load_images(paths, *, size: int, channels: int = 1):
    """Load, convert and resize images to a float32 tensor ``[n, channels, size, size]`` in ``[-1, 1]``.

    Pixels go to ``[0, 1]`` by dtype (:func:`fairfoundry.models.to_unit_range`), colour becomes
    luminance when ``channels == 1``, and the image is squashed to ``size x size`` with antialiasing.
    """
    import torch

    from ..data import load_image
    from ..models import Preprocessing, preprocess_image

    prep = Preprocessing(size=size, channels=channels, mean=(0.5,) * channels, std=(0.5,) * channels,
                         resize="squash")
    out = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FairfoundryError(f"image not found: {p}")
        out.append(preprocess_image(load_image(p), prep, source=str(p)))
    if not out:
        raise FairfoundryError("no images to load")
    return torch.stack(out).clamp_(-1.0, 1.0)


def to_uint8(x):
    """``[n, C, H, W]`` in ``[-1, 1]`` -> numpy ``uint8`` ``[n, H, W]`` (gray) or ``[n, H, W, 3]``."""
    import numpy as np

    arr = ((x.detach().cpu().float().clamp(-1, 1) + 1.0) * 127.5).round().to(dtype=__import__("torch").uint8)
    arr = arr.numpy()
    return arr[:, 0] if arr.shape[1] == 1 else np.ascontiguousarray(arr.transpose(0, 2, 3, 1))


def save_png(path, image) -> Path:
    """Write one ``uint8`` image array as PNG, atomically."""
    from PIL import Image

    from .._io import write_atomic

    return write_atomic(Path(path), lambda p: Image.fromarray(image).save(p, format="PNG"))
