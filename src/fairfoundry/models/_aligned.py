"""Embeddings read back in the order of a list of samples (a manifest, a monitoring store)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError

__all__ = ["aligned_embeddings"]


def aligned_embeddings(path: str | os.PathLike, sample_ids: Sequence, *, owner: str = "manifest",
                       item: str = "manifest row", describe: Callable[[int], str] | None = None,
                       embed_hint: str = "embed the same manifest (fairfoundry embed --manifest ...)",
                       dtype=np.float32) -> np.ndarray:
    """Embeddings ``(len(sample_ids), d)``, row ``i`` that of ``sample_ids[i]``.

    Parameters
    ----------
    path : a ``fairfoundry embed`` output directory (read with :func:`read_embeddings`, aligned
        by ``sample_id``), or a ``.npy`` array with one row per sample, in the same order.
    sample_ids : the samples, in the order wanted.
    owner, item : how messages name the list (``"manifest"``, ``"store"``) and one of its
        entries (``"manifest row"``, ``"prediction"``).
    describe : ``i -> str`` naming entry ``i`` in messages (default: ``"<item> i (sample_id ...)"``).
    embed_hint : the hint when a sample has no embedding.
    dtype : of the returned (writable) array.

    Raises
    ------
    FairfoundryError
        The path is missing or unreadable, a ``.npy`` is not 2-D or has another number of rows,
        a sample has no embedding (names the first and the count), a ``sample_id`` is listed
        twice, or a row holds NaN / inf (names it).
    """
    path = Path(path)
    ids = [str(s) for s in sample_ids]
    if describe is None:
        def describe(i: int) -> str:
            return f"{item} {i} (sample_id {ids[i]!r})"
    if not path.exists():
        raise FairfoundryError(f"embeddings not found: {path}",
                               hint="pass a `fairfoundry embed --out` directory or a .npy file")
    if path.is_dir():
        import pandas as pd

        from ._extract import read_embeddings

        eids, arr, _ = read_embeddings(path)
        pos = pd.Series(np.arange(len(eids)), index=pd.Index(eids))
        if pos.index.has_duplicates:
            raise FairfoundryError(f"embeddings {path} list a sample_id twice")
        missing = ~pd.Index(ids).isin(pos.index)
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise FairfoundryError(
                f"embeddings {path} are not aligned with the {owner}: {int(missing.sum())} {item}(s) "
                f"have no embedding, first {describe(i)}", hint=embed_hint)
        arr = np.asarray(arr)[pos.loc[ids].to_numpy()]
    elif path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise FairfoundryError(f"cannot read embeddings {path}: {exc}".splitlines()[0]) from exc
        if arr.ndim != 2:
            raise FairfoundryError(f"embeddings {path} must be 2-D (rows x dims), got shape {arr.shape}")
        if arr.shape[0] != len(ids):
            raise FairfoundryError(
                f"embeddings {path} are not aligned with the {owner}: {arr.shape[0]} rows for "
                f"{len(ids)} {item}s", hint=f"a .npy must hold one row per {item}, in the {owner}'s order")
    else:
        raise FairfoundryError(f"embeddings {path}: not a directory or a .npy file",
                               hint="use a `fairfoundry embed` output directory or a .npy file")
    arr = np.array(arr, dtype=dtype)  # a writable copy (a .npy is memory-mapped)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FairfoundryError(f"embedding of {describe(i)} in {path} is not finite (NaN or inf)")
    return arr
