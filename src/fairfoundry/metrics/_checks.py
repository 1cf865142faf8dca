"""Input validation shared by the public metric functions (validation happens once, here)."""

from __future__ import annotations

import numpy as np

from .._errors import FairfoundryError
from ..groups import encode_groups

__all__ = ["as_binary", "as_scores", "as_weights", "as_groups", "same_length"]


def as_binary(values, *, name: str = "y_true") -> np.ndarray:
    """Return ``values`` as a float64 array of 0/1, or raise naming the first bad row."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise FairfoundryError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.float64)
    try:
        out = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise FairfoundryError(
            f"{name} must be binary 0/1, got values of type {arr.dtype}",
            hint="encode the positive class as 1 and the negative class as 0",
        ) from exc
    bad = ~((out == 0) | (out == 1))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise FairfoundryError(
            f"{name} must be binary 0/1; row {row} is {arr[row]!r}",
            hint="encode the positive class as 1 and the negative class as 0",
        )
    return out


def as_scores(values, *, name: str = "y_score", probability: bool = True) -> np.ndarray:
    """Return ``values`` as finite float64 scores (in [0, 1] when ``probability``)."""
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FairfoundryError(f"{name} must be numeric") from exc
    if out.ndim != 1:
        raise FairfoundryError(f"{name} must be one-dimensional, got shape {out.shape}")
    bad = ~np.isfinite(out)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise FairfoundryError(f"{name} must be finite; row {row} is {out[row]!r}")
    if probability:
        bad = (out < 0) | (out > 1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise FairfoundryError(
                f"{name} must be a probability in [0, 1]; row {row} is {out[row]!r}",
                hint="apply a sigmoid to logits first",
            )
    return out


def as_weights(values, n: int, *, name: str = "sample_weight") -> np.ndarray:
    """Return non-negative finite float64 weights of length ``n`` (ones when ``None``)."""
    if values is None:
        return np.ones(n, dtype=np.float64)
    out = np.asarray(values, dtype=np.float64)
    if out.shape != (n,):
        raise FairfoundryError(f"{name} has shape {out.shape}, expected ({n},)")
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise FairfoundryError(f"{name} must be finite and non-negative")
    return out


def as_groups(values, n: int, *, name: str = "groups") -> tuple[np.ndarray, list[str]]:
    """Group labels as int codes ``0..G-1`` and names (:func:`fairfoundry.groups.encode_groups`:
    numeric order, missing values are the group ``unknown``), checked to have ``n`` rows."""
    if np.shape(values) != (n,):
        raise FairfoundryError(f"{name} has shape {np.shape(values)}, expected ({n},)")
    return encode_groups(values, name=name)


def same_length(*arrays: np.ndarray) -> int:
    """Check that all arrays have the same length and return it."""
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise FairfoundryError(f"inputs have different lengths: {sorted(lengths)}")
    n = lengths.pop()
    if n == 0:
        raise FairfoundryError("inputs are empty")
    return n


def present_groups(codes, names):
    """Groups that have rows, renumbered densely.

    Returns
    -------
    counts : rows per group (all ``names``)
    present : indices of the groups with rows
    pnames : their names
    dcodes : ``codes`` renumbered to ``0..len(present)-1``
    """
    import numpy as np

    counts = np.bincount(codes, minlength=len(names))
    present = np.flatnonzero(counts > 0)
    dense = np.full(len(names), -1)
    dense[present] = np.arange(len(present))
    return counts, present, [names[g] for g in present], dense[codes]
