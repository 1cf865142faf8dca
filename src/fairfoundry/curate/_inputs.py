"""Reading what curation works on: a manifest, embeddings aligned to it, images, targets.

Every check happens here, once, where the user's input enters; the messages name the file, the
row (file line and ``sample_id``) or the value at fault, and nothing has been written yet.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError

__all__ = ["read_curate_manifest", "aligned_embeddings", "check_count", "image_paths", "load_gray"]


def read_curate_manifest(path: str | os.PathLike, *, required: tuple[str, ...] = ("sample_id",)):
    """Read and validate a manifest with :func:`fairfoundry.data.read_manifest`.

    Returns the frame with a fresh ``RangeIndex`` (row ``i`` is file line ``i + 2`` of a CSV).
    """
    from ..data import read_manifest

    frame = read_manifest(path, required=required).reset_index(drop=True)
    frame.attrs["manifest_path"] = str(Path(path).resolve())
    return frame


def _row(manifest, i: int) -> str:
    return f"row {i} (file line {i + 2}, sample_id {manifest['sample_id'].iloc[i]!r})"


def aligned_embeddings(path: str | os.PathLike, manifest) -> np.ndarray:
    """Embeddings as float32 ``(len(manifest), d)``, in manifest order: a ``fairfoundry embed``
    output directory (aligned by ``sample_id``) or a ``.npy`` with one row per manifest row
    (:func:`fairfoundry.models.aligned_embeddings`; messages name the manifest row)."""
    from ..models import aligned_embeddings as _aligned

    return _aligned(path, manifest["sample_id"].astype(str).tolist(), owner="manifest", item="manifest row",
                    describe=lambda i: _row(manifest, i))


def check_count(value: int, *, name: str, n: int, what: str = "rows", minimum: int = 1) -> int:
    """Check ``minimum <= value <= n`` for a target size or a number of clusters.

    Raises
    ------
    FairfoundryError
        Naming the parameter and the value, e.g. ``k=500 is larger than the 300 rows``.
    """
    value = int(value)
    if value < minimum:
        raise FairfoundryError(f"{name}={value} must be at least {minimum}")
    if value > n:
        raise FairfoundryError(f"{name}={value} is larger than the {n} {what}",
                               hint=f"choose {name} <= {n}")
    return value


def image_paths(manifest) -> list[Path]:
    """Absolute image paths of a manifest (relative ones resolve against the manifest file)."""
    if "path" not in manifest.columns:
        raise FairfoundryError("the manifest has no 'path' column: image checks need the images")
    base = Path(manifest.attrs.get("manifest_path", ".")).parent
    out = []
    for i, p in enumerate(manifest["path"]):
        if p is None or p != p or not str(p).strip():
            raise FairfoundryError(f"{_row(manifest, i)} has an empty 'path'")
        out.append(Path(p) if Path(str(p)).is_absolute() else base / str(p))
    return out


def load_gray(path: Path, *, manifest=None, row: int | None = None):
    """Read one image as an 8-bit grayscale PIL image (through :func:`fairfoundry.data.load_image`).

    Raises a :class:`FairfoundryError` naming the row and file when it cannot be read.
    """
    from PIL import Image

    from ..data import load_image

    try:
        arr = load_image(path)
    except FairfoundryError as exc:
        where = _row(manifest, row) + ": " if manifest is not None and row is not None else ""
        raise FairfoundryError(f"{where}{exc.message}", hint=exc.hint) from exc
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].mean(axis=-1)
    elif arr.ndim == 3:  # a volume or multi-frame: its middle slice
        arr = arr[arr.shape[0] // 2]
    deep = arr.dtype != np.uint8
    arr = arr.astype(np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if deep and (hi > 255 or lo < 0):
        arr = (arr - lo) / max(hi - lo, 1e-12) * 255.0
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
