"""Images (and captions) of a manifest, decoded once and held as a compact uint8 tensor.

Pre-training draws many random batches from a fixed set of images; decoding each PNG once,
resizing it to the training resolution and keeping the result as ``uint8`` keeps the data
path out of the way (300 X-rays at 64 px are 3.7 MB). Memory is ``n * channels * size**2``
bytes: about 1.2 GB for 100,000 RGB images at 64 px, 15 GB at 224 px; beyond that, curate or
subsample the manifest first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .._errors import FairfoundryError, did_you_mean
from .._io import read_table
from ..data._paths import resolve_paths

__all__ = ["ImageBank", "load_manifest", "byte_tokenize"]

log = logging.getLogger(__name__)

#: byte tokenizer: 0 pads, 1..256 are bytes, 257 begins and 258 ends a text
BOS, EOS, VOCAB_SIZE = 257, 258, 259


def load_manifest(manifest: str | os.PathLike | pd.DataFrame, *, path_column: str = "path",
                  root: str | os.PathLike | None = None,
                  allow_outside_root: bool = False) -> tuple[pd.DataFrame, Path]:
    """Read a manifest and resolve its image paths.

    Relative paths are resolved against ``root`` (default: the manifest's folder) by
    :func:`fairfoundry.data.resolve_paths`: one that climbs out of it is refused with its row
    named, unless ``allow_outside_root``.

    Returns
    -------
    (DataFrame with absolute paths in ``path_column`` and a ``sample_id`` column, root)

    Raises
    ------
    FairfoundryError
        If the manifest cannot be read, has no ``path_column``, or has duplicate sample ids.
    """
    if isinstance(manifest, pd.DataFrame):
        frame, base = manifest.copy(), Path(root or ".")
        name = "manifest"
    else:
        frame = read_table(manifest, what="manifest")
        base = Path(root) if root is not None else Path(manifest).resolve().parent
        name = f"manifest {manifest}"
    if path_column not in frame.columns:
        raise FairfoundryError(f"column {path_column!r} not found in {name}",
                               hint=did_you_mean(path_column, frame.columns, what="columns"))
    if "sample_id" not in frame.columns:
        frame.insert(0, "sample_id", frame[path_column].astype(str))
    dup = frame["sample_id"].astype(str).duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise FairfoundryError(f"{name} has duplicate sample_id {frame['sample_id'].iloc[row]!r} "
                               f"(row {row + 2})")
    paths = frame[path_column].astype(str)
    frame[path_column] = resolve_paths(paths, root=base, source=name, column=path_column,
                                       allow_outside_root=allow_outside_root)
    return frame.reset_index(drop=True), base


def _to_float01(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    arr = arr.astype(np.float32)
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


class ImageBank:
    """All images of a manifest at one square resolution, as ``uint8`` ``(N, C, S, S)``.

    Grayscale images are stored with one channel and expanded to ``channels`` when a batch is
    made, so X-rays cost a third of the memory of RGB images.

    Parameters
    ----------
    paths : list of str
    size : int
        Side of the stored square images (images are resized, aspect ratio not kept, with
        anti-aliasing).
    channels : int
        Channels of the batches (3 for timm ViTs).
    progress : callable, optional
        Called with 1 after each decoded image.

    Raises
    ------
    FairfoundryError
        If a file is missing or cannot be decoded (naming the file), or an image is smaller
        than ``min_side`` pixels.
    """

    def __init__(self, paths: list[str], *, size: int, channels: int = 3, min_side: int = 1,
                 progress: Callable[[int], None] | None = None):
        from PIL import Image

        from ..data import load_image

        self.size, self.channels = int(size), int(channels)
        arrays = []
        any_colour = False
        for p in paths:
            arr = load_image(p)
            if min(arr.shape[:2]) < min_side:
                raise FairfoundryError(
                    f"image {p} is {arr.shape[1]}x{arr.shape[0]} px, smaller than one patch "
                    f"({min_side} px): it cannot be cut into a patch grid",
                    hint="drop tiny images from the manifest or use a model with smaller patches",
                )
            f = _to_float01(arr)
            if f.ndim == 3:
                any_colour = True
                chans = [f[..., i] for i in range(f.shape[-1])]
            else:
                chans = [f]
            resized = [np.asarray(Image.fromarray(c, mode="F").resize(
                (self.size, self.size), Image.Resampling.BILINEAR, reducing_gap=None))
                for c in chans]
            arrays.append(np.clip(np.stack(resized) * 255 + 0.5, 0, 255).astype(np.uint8))
            if progress is not None:
                progress(1)
        if any_colour:
            arrays = [a if a.shape[0] == 3 else np.repeat(a, 3, axis=0) for a in arrays]
        self.data = torch.from_numpy(np.stack(arrays)) if arrays else torch.zeros(
            0, 1, self.size, self.size, dtype=torch.uint8)
        log.info("decoded %d images at %d px (%.1f MB)", len(arrays), self.size,
                 self.data.numel() / 1e6)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def batch(self, indices, *, device="cpu", dtype=torch.float32) -> torch.Tensor:
        """Float images in ``[0, 1]``, ``(B, channels, S, S)``, on ``device``."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        x = self.data[idx].to(device=device).to(dtype) / 255.0
        if x.shape[1] == 1 and self.channels > 1:
            x = x.expand(-1, self.channels, -1, -1)
        return x


def byte_tokenize(texts, *, context_length: int = 77) -> torch.Tensor:
    """UTF-8 byte tokens (byte + 1), with begin (257) and end (258) markers, padded with 0.

    A vocabulary-free tokenizer: any language, no file to download, nothing fitted on the
    training captions (so a checkpoint never leaks them). Texts longer than the context are
    cut, keeping the end marker.

    Returns
    -------
    LongTensor ``(n, context_length)``
    """
    if context_length < 3:
        raise FairfoundryError(f"context length must be at least 3, got {context_length}")
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, t in enumerate(texts):
        ids = [b + 1 for b in str(t).encode("utf-8")][: context_length - 2]
        out[i, : len(ids) + 2] = torch.tensor([BOS, *ids, EOS])
    return out
