"""Torch dataset / batching for extraction (imports torch; imported lazily by ``_extract``)."""

from __future__ import annotations

import torch

from .._errors import FairfoundryError
from ._preprocess import preprocess_image
from ._spec import Preprocessing

__all__ = ["ImageDataset", "ShardBatchSampler", "compute_rows"]


class ImageDataset(torch.utils.data.Dataset):
    """Reads and preprocesses images; an unreadable image yields zeros and ``ok=False``."""

    def __init__(self, paths: list[str], prep: Preprocessing):
        self.paths = list(paths)
        self.prep = prep

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from ..data import load_image

        try:
            x = preprocess_image(load_image(self.paths[i]), self.prep, source=self.paths[i])
            return i, x, True, ""
        except FairfoundryError as exc:
            p = self.prep
            return i, torch.zeros(p.channels, p.size, p.size), False, exc.message


class ShardBatchSampler(torch.utils.data.Sampler):
    """Yields index batches of ``batch_size`` that never cross a shard boundary (deterministic)."""

    def __init__(self, shard_bounds: list[tuple[int, int]], batch_size: int):
        self.batches = [list(range(s, min(s + batch_size, e)))
                        for a, e in shard_bounds for s in range(a, e, batch_size)]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def iterate_batches(paths, prep, shard_bounds, *, batch_size, num_workers, pin_memory=False):
    """Yield ``(indices, tensor, ok, errors)`` batches over ``paths`` shard by shard."""
    ds = ImageDataset(paths, prep)
    loader = torch.utils.data.DataLoader(
        ds, batch_sampler=ShardBatchSampler(shard_bounds, batch_size), num_workers=num_workers,
        pin_memory=pin_memory, persistent_workers=False)
    for idx, x, ok, err in loader:
        yield idx.tolist(), x, ok.tolist(), list(err)


def compute_rows(encoder, paths: list[str], *, batch_size: int, amp: bool | None = None,
                 num_workers: int = 0):
    """Embed ``paths`` (one shard) in order; returns ``(float32 array [n, d], ok, errors)``."""
    import numpy as np

    n = len(paths)
    emb = np.zeros((n, encoder.embed_dim), dtype=np.float32)
    ok_all = np.zeros(n, dtype=bool)
    errors = [""] * n
    for idx, x, ok, err in iterate_batches(paths, encoder.preprocessing, [(0, n)],
                                           batch_size=batch_size, num_workers=num_workers):
        out = encoder.encode_image(x, amp=amp).cpu().numpy()
        emb[idx] = out
        ok_all[idx] = ok
        for i, e in zip(idx, err, strict=True):
            errors[i] = e
    emb[~ok_all] = np.nan
    return emb, ok_all, errors
