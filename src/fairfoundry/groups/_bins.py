"""Explicit, documented binning of continuous attributes (age) into groups.

One convention everywhere: bins are **left-closed** intervals ``[a, b)``. Edges ``40,60,80``
give four groups ``<40``, ``40-59``, ``60-79``, ``80+`` when edges are whole numbers (ages in
years), else ``[40.5, 60)``-style labels. Missing values stay missing (``NaN`` -> ``unknown``),
never imputed.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import FairfoundryError
from ._names import MISSING

__all__ = ["bin_values", "bin_labels", "parse_bins", "parse_edges", "DEFAULT_AGE_EDGES",
           "default_edges"]

#: the one default age binning (years): ``<20, 20-39, 40-59, 60-79, 80+``, the age groups of
#: CheXclusion (Seyyed-Kalantari et al., PSB 2021) and of the underdiagnosis study (Nature
#: Medicine 2021). Configurable everywhere (``--bins age=40,60,80``).
DEFAULT_AGE_EDGES = (20.0, 40.0, 60.0, 80.0)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the ``len(edges) + 1`` left-closed bins defined by sorted ``edges``.

    Examples
    --------
    >>> bin_labels([40, 60, 80])
    ['<40', '40-59', '60-79', '80+']
    """
    edges = [float(e) for e in edges]
    integer = all(e.is_integer() for e in edges)
    labels = [f"<{_fmt(edges[0])}"]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        labels.append(f"{_fmt(lo)}-{_fmt(hi - 1)}" if integer else f"[{_fmt(lo)}, {_fmt(hi)})")
    labels.append(f"{_fmt(edges[-1])}+")
    return labels


def bin_values(values, edges: Sequence[float], *, unknown: str = MISSING):
    """Bin numeric ``values`` into left-closed intervals given by ``edges``.

    Parameters
    ----------
    values : array-like of numbers (NaN allowed)
    edges : strictly increasing sequence of cut points, e.g. ``[40, 60, 80]``
    unknown : label for missing values

    Returns
    -------
    pandas.Categorical
        Ordered categories ``bin_labels(edges)`` (+ ``unknown`` if any value is missing).

    Examples
    --------
    >>> list(bin_values([39, 40, 59.5, 80, None], [40, 60, 80]))
    ['<40', '40-59', '40-59', '80+', 'unknown']
    """
    import numpy as np
    import pandas as pd

    edges = [float(e) for e in edges]
    if not edges or any(b <= a for a, b in zip(edges[:-1], edges[1:], strict=True)):
        raise FairfoundryError(f"bin edges must be strictly increasing, got {edges}")
    x = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    idx = np.searchsorted(np.asarray(edges), x, side="right")
    labels = bin_labels(edges)
    missing = np.isnan(x)
    codes = np.where(missing, -1, idx)
    cats = labels + ([unknown] if missing.any() else [])
    codes = np.where(missing, len(labels), codes) if missing.any() else codes
    return pd.Categorical.from_codes(codes.astype(int), categories=cats, ordered=True)


def parse_edges(raw: str, *, option: str = "bins") -> list[float]:
    """``"40,60,80"`` -> ``[40.0, 60.0, 80.0]``, strictly increasing, or an error naming ``option``."""
    try:
        edges = [float(v) for v in str(raw).split(",") if v.strip()]
    except ValueError as exc:
        raise FairfoundryError(f"{option}={raw!r}: edges must be numbers",
                               hint="for example 40,60,80") from exc
    if not edges or any(b <= a for a, b in zip(edges[:-1], edges[1:], strict=True)):
        raise FairfoundryError(f"{option}={raw!r}: edges must be strictly increasing numbers",
                               hint="for example 40,60,80")
    return edges


def parse_bins(specs: Sequence[str] | None, *, option: str = "--bins") -> dict[str, list[float]]:
    """Parse ``["age=40,60,80", ...]`` into ``{"age": [40.0, 60.0, 80.0]}`` with clear errors.

    Bins are parsed once, here; everything downstream receives numeric edges.
    """
    out: dict[str, list[float]] = {}
    for spec in specs or []:
        if "=" not in spec:
            raise FairfoundryError(f"{option} expects COLUMN=EDGE,EDGE,..., got {spec!r}",
                                   hint=f"for example {option} age=40,60,80")
        col, raw = spec.split("=", 1)
        out[col.strip()] = parse_edges(raw, option=f"{option} {col.strip()}")
    return out


def default_edges(column: str, bins: dict | None = None) -> list[float]:
    """Edges for ``column``: ``bins[column]`` when given, else :data:`DEFAULT_AGE_EDGES`."""
    return [float(e) for e in (bins or {}).get(column, DEFAULT_AGE_EDGES)]
