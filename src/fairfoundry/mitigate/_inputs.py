"""Reading the inputs of a fit run: embeddings aligned to a manifest, labels, groups, splits."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError, did_you_mean

__all__ = ["load_embeddings", "prepare_columns", "training_groups", "effective_bins"]

log = logging.getLogger(__name__)


def load_embeddings(path: str | os.PathLike, manifest) -> tuple[np.ndarray, dict]:
    """Embeddings as a float32 array aligned to the rows of ``manifest``.

    Accepted: a ``fairfoundry embed`` output directory (read with
    :func:`fairfoundry.models.read_embeddings`, aligned by ``sample_id``); a ``.npy`` array with
    one row per manifest row, in manifest order; a Parquet/CSV table keyed by ``sample_id`` with
    either one list column ``embedding`` or one numeric column per dimension.

    Returns
    -------
    (array of shape (len(manifest), d), info dict: source, kind, dim)
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FairfoundryError(f"embeddings not found: {path}",
                               hint="pass a `fairfoundry embed` output directory, a .npy or a .parquet file")
    info = {"source": str(path)}
    ids = None
    if path.is_dir():
        from ..models import read_embeddings

        ids, arr, meta = read_embeddings(path)
        info.update(kind="embed-dir", encoder=meta.get("model") or meta.get("encoder"))
    elif path.suffix.lower() == ".npy":
        with open(path, "rb") as fh:
            magic = fh.read(6)
        if magic != b"\x93NUMPY":
            raise FairfoundryError(f"embeddings {path} is not a NumPy .npy array file",
                                   hint="save the array with numpy.save, or pass a `fairfoundry "
                                        "embed` directory or a Parquet/CSV table keyed by sample_id")
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise FairfoundryError(f"cannot read embeddings {path}: not a numeric array "
                                   f"({type(exc).__name__})",
                                   hint="save a numeric array with numpy.save") from exc
        if arr.ndim != 2:
            raise FairfoundryError(f"embeddings {path} must be 2-D (rows x dims), got shape {arr.shape}")
        if arr.shape[0] != len(manifest):
            raise FairfoundryError(
                f"embeddings {path} have {arr.shape[0]} rows but the manifest has {len(manifest)}",
                hint="a .npy must hold one row per manifest row in the same order; "
                     "use a Parquet keyed by sample_id otherwise")
        info.update(kind="npy")
    elif path.suffix.lower() in (".parquet", ".pq", ".csv", ".tsv"):
        from .._io import read_table

        t = read_table(path, what="embeddings")
        if "sample_id" not in t.columns:
            raise FairfoundryError(f"embeddings table {path} has no 'sample_id' column",
                                   hint=did_you_mean("sample_id", t.columns, what="columns"))
        ids = t["sample_id"].astype(str).to_numpy()
        if "embedding" in t.columns:
            arr = np.stack([np.asarray(v, dtype=np.float32) for v in t["embedding"]])
        else:
            num = t.drop(columns=["sample_id"]).select_dtypes(include="number")
            if num.shape[1] == 0:
                raise FairfoundryError(f"embeddings table {path} has no numeric columns")
            arr = num.to_numpy(dtype=np.float32)
        info.update(kind="table")
    else:
        raise FairfoundryError(f"unsupported embeddings file {path}",
                               hint="use a `fairfoundry embed` directory, .npy, or .parquet keyed by sample_id")
    if ids is not None:
        if len(set(ids)) != len(ids):
            raise FairfoundryError(f"embeddings {path} repeat a sample_id")
        pos = pd.Series(np.arange(len(ids)), index=pd.Index(ids))
        want = manifest["sample_id"].astype(str)
        missing = ~want.isin(pos.index)
        if missing.any():
            raise FairfoundryError(
                f"{int(missing.sum())} manifest samples have no embedding in {path} "
                f"(first: {want[missing].iloc[0]!r})",
                hint="extract embeddings for the same manifest (fairfoundry embed)")
        arr = arr[pos.loc[want].to_numpy()]
    arr = np.asarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FairfoundryError(f"embedding of sample {str(manifest['sample_id'].iloc[i])!r} (row {i + 1}) "
                               "contains NaN or inf")
    info["dim"] = int(arr.shape[1])
    return arr, info


def prepare_columns(manifest, *, labels: list[str], sensitive: list[str], split_col: str = "split",
                    where: str = "manifest"):
    """Validate label, attribute and split columns; return the labels as float (n, k).

    Raises a :class:`FairfoundryError` naming the column (with the closest names) when one is
    missing, when a label is not 0/1, when ``train`` or ``val`` is missing from the split
    column, or when the train or validation split has one class only.
    """
    cols = list(manifest.columns)
    for c in [*labels, *sensitive, split_col]:
        if c not in manifest.columns:
            what = "label" if c in labels else ("sensitive attribute" if c in sensitive else "split")
            raise FairfoundryError(f"{what} column {c!r} not found in the {where}",
                                   hint=did_you_mean(c, cols, what="columns"))
    splits = manifest[split_col].astype(str)
    for s in ("train", "val"):
        if not (splits == s).any():
            raise FairfoundryError(f"the {where}'s {split_col!r} column has no {s!r} rows",
                                   hint="it needs train, val and test rows (val chooses checkpoints "
                                        "and thresholds; test is only reported)")
    y = np.empty((len(manifest), len(labels)), dtype=np.float64)
    for k, lab in enumerate(labels):
        col = manifest[lab]
        vals = col.to_numpy(dtype=float, na_value=np.nan) if col.dtype != object else None
        if vals is None:
            try:
                vals = col.astype(float).to_numpy()
            except (TypeError, ValueError) as exc:
                raise FairfoundryError(f"label column {lab!r} is not numeric 0/1") from exc
        bad = ~np.isnan(vals) & ~np.isin(vals, [0.0, 1.0])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FairfoundryError(f"label column {lab!r} has value {float(vals[i]):g} in row {i + 1}; "
                                   "labels must be 0/1")
        y[:, k] = vals
        for s in ("train", "val"):
            m = (splits == s).to_numpy()
            present = np.unique(vals[m][~np.isnan(vals[m])])
            if present.size < 2:
                raise FairfoundryError(f"the {s} split has only one class for label {lab!r}",
                                       hint="training and validation need positive and negative samples")
    return y


def effective_bins(manifest, sensitive: list[str], bins: dict | None = None) -> dict:
    """Bins for every numeric attribute with more than 10 values (default
    :data:`fairfoundry.groups.DEFAULT_AGE_EDGES`); see :func:`fairfoundry.groups.auto_bin_columns`."""
    from ..groups import auto_bin_columns

    return auto_bin_columns(manifest, sensitive, bins)


def training_groups(manifest, sensitive: list[str], *, bins: dict | None = None) -> np.ndarray:
    """The groups mitigations act on: the intersection of the ``sensitive`` columns.

    Built by :func:`fairfoundry.groups.group_labels`: numeric attributes with more than 10
    distinct values (age) are binned with ``bins`` (default 20, 40, 60, 80 -> <20, 20-39, ...,
    80+); missing values are ``unknown``; intersections are named ``sex=female & age=60-79``.
    """
    from ..groups import group_labels

    return group_labels(manifest, sensitive, bins=effective_bins(manifest, sensitive, bins))
