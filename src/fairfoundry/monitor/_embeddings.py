"""Image embeddings of a store's predictions, for embedding drift (a domain classifier's AUC).

The store holds no embeddings; they are read from a ``fairfoundry embed`` output directory
(aligned by ``sample_id``) or a ``.npy`` array with one row per stored prediction, in the store's
time order (:meth:`EventStore.predictions`).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["read_store_embeddings"]


def read_store_embeddings(path: str | os.PathLike, sample_ids) -> np.ndarray:
    """Embeddings ``(len(sample_ids), d)`` as float64, row ``i`` that of ``sample_ids[i]``
    (:func:`fairfoundry.models.aligned_embeddings`; messages name the store's predictions).

    Raises
    ------
    FairfoundryError
        The path is missing or unreadable, a ``.npy`` has another number of rows than the store
        has predictions, a prediction has no embedding (names the first ``sample_id`` and the
        count), or a row holds NaN / inf (names it).
    """
    from ..models import aligned_embeddings

    return aligned_embeddings(path, sample_ids, owner="store", item="prediction", dtype=np.float64,
                              embed_hint="embed the images of every prediction in the store")
