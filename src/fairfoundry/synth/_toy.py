"""A toy data set with a known answer: two shapes x two brightness groups, one small cell."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ._conditions import Conditions

__all__ = ["ToyShapes", "make_toy_shapes", "write_toy_manifest"]

#: default images per (shape, brightness) cell: the ring x bright cell is the 20-image minority
TOY_CELLS = {("square", "dark"): 60, ("square", "bright"): 60, ("ring", "dark"): 60, ("ring", "bright"): 20}


@dataclass
class ToyShapes:
    """Images ``[n, 1, S, S]`` in ``[-1, 1]``, their ``frame`` (shape, brightness) and condition codes."""

    images: object
    frame: object
    conditions: Conditions
    codes: object


def make_toy_shapes(*, size: int = 28, n_per_cell: int | dict | None = None, seed: int = 0) -> ToyShapes:
    """Draw squares and rings of random position and size, dark (intensity 0.4) or bright (0.95).

    Background is black with Gaussian noise (sd 0.03). ``n_per_cell``: an int for every cell, or a
    dict ``{(shape, brightness): n}`` (default :data:`TOY_CELLS`, smallest cell 20 images).
    """
    import numpy as np
    import pandas as pd
    import torch

    if n_per_cell is None:
        cells = dict(TOY_CELLS)
    elif isinstance(n_per_cell, int):
        cells = {k: n_per_cell for k in TOY_CELLS}
    else:
        cells = dict(n_per_cell)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    imgs, rows = [], []
    for (shape, bright), n in cells.items():
        level = 0.95 if bright == "bright" else 0.4
        for _ in range(int(n)):
            r = rng.uniform(0.2, 0.32) * size
            cy, cx = size / 2 + rng.uniform(-0.15, 0.15, size=2) * size
            if shape == "ring":
                d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
                mask = (d <= r) & (d >= 0.55 * r)
            else:
                mask = (np.abs(yy - cy) <= r * 0.89) & (np.abs(xx - cx) <= r * 0.89)
            img = np.where(mask, level, 0.0) + rng.normal(0, 0.03, size=(size, size))
            imgs.append(np.clip(img, 0, 1).astype(np.float32))
            rows.append({"shape": shape, "brightness": bright})
    frame = pd.DataFrame(rows)
    frame.insert(0, "sample_id", [f"toy{i:04d}" for i in range(len(frame))])
    x = torch.from_numpy(np.stack(imgs))[:, None] * 2.0 - 1.0
    cond, _ = Conditions.from_frame(frame, ["shape", "brightness"], where="the toy data")
    return ToyShapes(images=x, frame=frame, conditions=cond, codes=cond.encode_frame(frame))


def write_toy_manifest(out: str | os.PathLike, *, size: int = 28, n_per_cell: int | dict | None = None,
                       seed: int = 0, val_fraction: float = 0.25) -> Path:
    """Write the toy images as PNG files and ``manifest.csv`` (with a seeded ``split``) under ``out``."""
    import numpy as np

    from .._io import write_table_atomic
    from ._images import save_png, to_uint8

    out = Path(out)
    toy = make_toy_shapes(size=size, n_per_cell=n_per_cell, seed=seed)
    arr = to_uint8(toy.images)
    frame = toy.frame.copy()
    paths = []
    for sid, img in zip(frame["sample_id"], arr, strict=True):
        save_png(out / "images" / f"{sid}.png", img)
        paths.append(f"images/{sid}.png")
    frame["path"] = paths
    frame["patient_id"] = frame["sample_id"]
    rng = np.random.default_rng(seed + 1)
    frame["split"] = np.where(rng.random(len(frame)) < val_fraction, "val", "train")
    write_table_atomic(out / "manifest.csv", frame)
    return out / "manifest.csv"
