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
    """Embeddings as float32 ``(len(manifest), d)``, in manifest order.

    Parameters
    ----------
    path : a ``fairfoundry embed`` output directory (read with
        :func:`fairfoundry.models.read_embeddings`, the embedding cache's reader; aligned by
        ``sample_id``), or a ``.npy`` array with one row per manifest row in manifest order.
    manifest : the validated manifest.

    Raises
    ------
    FairfoundryError
        The file is missing or unreadable, a ``.npy`` has another number of rows, a manifest
        sample has no embedding (names the row and ``sample_id``), or a row is NaN / inf.
    """
    path = Path(path)
    if not path.exists():
        raise FairfoundryError(f"embeddings not found: {path}",
                               hint="pass a `fairfoundry embed --out` directory or a .npy file")
    if path.is_dir():
        import pandas as pd

        from ..models import read_embeddings

        ids, arr, _ = read_embeddings(path)
        pos = pd.Series(np.arange(len(ids)), index=pd.Index(ids))
        if pos.index.has_duplicates:
            raise FairfoundryError(f"embeddings {path} list a sample_id twice")
        want = manifest["sample_id"].astype(str)
        missing = ~want.isin(pos.index).to_numpy()
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise FairfoundryError(
                f"embeddings {path} are not aligned with the manifest: {int(missing.sum())} manifest "
                f"row(s) have no embedding, first {_row(manifest, i)}",
                hint="embed the same manifest (fairfoundry embed --manifest ...)")
        arr = arr[pos.loc[want].to_numpy()]
    elif path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise FairfoundryError(f"cannot read embeddings {path}: {exc}".splitlines()[0]) from exc
        if arr.ndim != 2:
            raise FairfoundryError(f"embeddings {path} must be 2-D (rows x dims), got shape {arr.shape}")
        if arr.shape[0] != len(manifest):
            raise FairfoundryError(
                f"embeddings {path} are not aligned with the manifest: {arr.shape[0]} rows for "
                f"{len(manifest)} manifest rows",
                hint="a .npy must hold one row per manifest row, in manifest order")
    else:
        raise FairfoundryError(f"unsupported embeddings file {path}",
                               hint="use a `fairfoundry embed` output directory or a .npy file")
    arr = np.array(arr, dtype=np.float32)  # a writable copy (a .npy is memory-mapped)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FairfoundryError(f"embedding of {_row(manifest, i)} in {path} contains NaN or inf")
    return arr


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
