"""Image embeddings of a store's predictions, for embedding drift (a domain classifier's AUC).

The store holds no embeddings; they are read from a ``fairfoundry embed`` output directory
(aligned by ``sample_id``) or a ``.npy`` array with one row per stored prediction, in the store's
time order (:meth:`EventStore.predictions`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError

__all__ = ["read_store_embeddings"]


def read_store_embeddings(path: str | os.PathLike, sample_ids) -> np.ndarray:
    """Embeddings ``(len(sample_ids), d)`` as float64, row ``i`` that of ``sample_ids[i]``.

    Raises
    ------
    FairfoundryError
        The path is missing or unreadable, a ``.npy`` has another number of rows than the store
        has predictions, a prediction has no embedding (names the first ``sample_id`` and the
        count), or a row holds NaN / inf (names it).
    """
    path = Path(path)
    ids = [str(s) for s in sample_ids]
    if not path.exists():
        raise FairfoundryError(f"--embeddings {path} not found",
                               hint="pass a `fairfoundry embed --out` directory or a .npy file")
    if path.is_dir():
        import pandas as pd

        from ..models import read_embeddings

        eids, arr, _ = read_embeddings(path)
        pos = pd.Series(np.arange(len(eids)), index=pd.Index(eids))
        if pos.index.has_duplicates:
            raise FairfoundryError(f"embeddings {path} list a sample_id twice")
        missing = ~pd.Index(ids).isin(pos.index)
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise FairfoundryError(
                f"embeddings {path} are not aligned with the store: {int(missing.sum())} "
                f"prediction(s) have no embedding, first sample_id {ids[i]!r}",
                hint="embed the images of every prediction in the store")
        arr = np.asarray(arr)[pos.loc[ids].to_numpy()]
    elif path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise FairfoundryError(f"cannot read embeddings {path}: {exc}".splitlines()[0]) from exc
        if arr.ndim != 2 or arr.shape[0] != len(ids):
            raise FairfoundryError(
                f"embeddings {path} have shape {arr.shape}, expected ({len(ids)}, d): one row per "
                "prediction of the store, in time order")
    else:
        raise FairfoundryError(f"--embeddings {path}: not a directory or a .npy file")
    arr = np.asarray(arr, dtype=np.float64)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FairfoundryError(f"embeddings {path}: row {i} (sample_id {ids[i]!r}) is not finite")
    return arr
