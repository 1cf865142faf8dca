"""Attribute values -> group codes and names: the one group encoder of fairfoundry.

Every layer (metrics, evaluation, audit, adapt, mitigate, ...) turns protected-attribute values
into groups through these functions, so a group has the same name everywhere:

- one attribute: the value itself (``female``, ``60-79``); missing values are :data:`MISSING`;
- an intersection: ``sex=female & age=60-79`` (:func:`intersection_name`), reported under the
  attribute ``sex&age``;
- numeric attributes are binned once with explicit left-closed edges (:func:`bin_values`);
- codes follow :func:`group_sort_key` (bins by their lower edge, ``unknown`` last).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from .._errors import FairfoundryError, did_you_mean
from ._bins import bin_values, default_edges
from ._names import MISSING, intersection_name, sort_groups

__all__ = ["attribute_groups", "encode_groups", "combine_groups", "intersect_groups",
           "group_labels", "auto_bin_columns"]


def _show(value) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def attribute_groups(values, *, edges: Sequence[float] | None = None, name: str = "values",
                     rows: Callable[[int], str] | None = None) -> pd.Categorical:
    """Group labels of one protected attribute as a Categorical in group order.

    Parameters
    ----------
    values : array-like or Series
        Attribute values. Missing values become the group :data:`MISSING`.
    edges : sequence of float, optional
        Bin numeric values into left-closed bins (:func:`bin_values`); text that is not a
        number raises naming the first such row (1-based).
    name : str
        Parameter or column name used in error messages.
    rows : callable, optional
        Names row ``i`` (0-based) in messages (default ``row i+1``).

    Returns
    -------
    pandas.Categorical
        Categories in :func:`group_sort_key` order (a categorical input keeps its order), with
        :data:`MISSING` last when present. Whole-number floats read as integers (``2``, not
        ``2.0``).

    Examples
    --------
    >>> list(attribute_groups(["M", None, "F"]).categories)
    ['F', 'M', 'unknown']
    >>> list(attribute_groups([35, 72, None], edges=[40, 60, 80]))
    ['<40', '60-79', 'unknown']
    """
    raw = values if isinstance(values, pd.Series) else pd.Series(
        values if not isinstance(values, pd.Categorical) else values)
    if edges is not None:
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna().to_numpy() & raw.notna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = rows(i) if rows is not None else f"row {i + 1}"
            raise FairfoundryError(f"{name} is not numeric: {where} holds {_show(raw.iloc[i])}",
                                   hint="bin only numeric columns such as age")
        cat = bin_values(num, edges)
        return pd.Categorical(np.asarray(cat, dtype=object), categories=list(cat.categories))
    if isinstance(raw.dtype, pd.CategoricalDtype):
        codes = raw.cat.codes.to_numpy().astype(np.int64)
        labels = [str(c) for c in raw.cat.categories]
        order = None  # a categorical keeps its order
    else:
        if pd.api.types.is_float_dtype(raw) and raw.dropna().apply(float.is_integer).all():
            raw = raw.astype("Int64")
        codes, uniq = pd.factorize(raw, use_na_sentinel=True)
        codes = codes.astype(np.int64)
        labels = [str(u) for u in uniq]
        order = sort_groups(labels)
    return _categorical(codes, labels, order)


def _categorical(codes: np.ndarray, labels: list[str], order: list[str] | None) -> pd.Categorical:
    """Codes into ``labels`` (``-1`` = missing) as a Categorical in ``order`` (default: the
    labels' order), duplicate labels merged and :data:`MISSING` last."""
    if (codes < 0).any():
        labels = [*labels, MISSING]
        codes = np.where(codes < 0, len(labels) - 1, codes)
    cats = list(dict.fromkeys([*(order if order is not None else labels), *labels]))
    if MISSING in cats:
        cats = [c for c in cats if c != MISSING] + [MISSING]
    pos = {c: k for k, c in enumerate(cats)}
    remap = np.array([pos[lab] for lab in labels], dtype=np.int64)
    return pd.Categorical.from_codes(remap[codes] if len(codes) else codes, categories=cats)


def encode_groups(values, *, categories: Sequence[str] | None = None, edges=None,
                  name: str = "groups") -> tuple[np.ndarray, list[str]]:
    """Integer codes ``0..G-1`` and names of group labels.

    Parameters
    ----------
    values : array-like (n,), Categorical, or 2-D (n, k) / DataFrame
        Group labels. A DataFrame gives the intersection of its columns (names
        ``col=a & col=b``); a 2-D array without column names joins the values with ``" & "``.
    categories : sequence of str, optional
        Fixed names (e.g. those seen in training): labels not among them get code -1.
    edges : sequence of float, optional
        Bin numeric values first (1-D only).
    name : str
        Parameter name used in error messages.

    Examples
    --------
    >>> codes, names = encode_groups(["b", "a", None, "b"])
    >>> codes.tolist(), names
    ([1, 0, 2, 1], ['a', 'b', 'unknown'])
    >>> encode_groups(["a", "z"], categories=["a", "b"])[0].tolist()
    [0, -1]
    """
    if isinstance(values, pd.DataFrame):
        codes, names = intersect_groups(values, list(values.columns))
    else:
        arr = values if isinstance(values, (pd.Categorical, pd.Series)) else np.asarray(
            values, dtype=object)
        if arr.ndim == 1 and isinstance(arr, np.ndarray):
            arr = pd.Series(arr).infer_objects()  # [2.0, 1.0, None] -> floats -> "1", "2"
        if getattr(arr, "ndim", 1) == 2:
            parts = [attribute_groups(arr[:, j], name=name) for j in range(arr.shape[1])]
            labels = pd.Series(np.asarray(parts[0], dtype=object))
            for p in parts[1:]:
                labels = labels + " & " + np.asarray(p, dtype=object)
            cat = attribute_groups(labels, name=name)
        elif getattr(arr, "ndim", 1) != 1:
            raise FairfoundryError(f"{name} must be one value per row (1-D), got shape "
                                   f"{np.shape(arr)}")
        else:
            cat = attribute_groups(arr, edges=edges, name=name)
        codes, names = np.asarray(cat.codes, dtype=np.int64), [str(c) for c in cat.categories]
    if categories is None:
        return codes, names
    categories = [str(c) for c in categories]
    lookup = {c: i for i, c in enumerate(categories)}
    remap = np.array([lookup.get(nm, -1) for nm in names], dtype=np.int64)
    return (remap[codes] if len(names) else codes), categories


def combine_groups(columns: Sequence[str], parts: Sequence[tuple[np.ndarray, list[str]]],
                   ) -> tuple[np.ndarray, list[str]]:
    """Codes and names of the observed combinations of already-encoded attributes.

    ``parts`` holds ``(codes, names)`` of each column. Codes are combined in mixed radix (one
    integer per row, no string per row), so intersections of a million rows cost
    milliseconds; names are :func:`intersection_name`, in the order of the parts' groups.
    """
    n = len(parts[0][0])
    sizes = [max(len(names), 1) for _, names in parts]
    total = int(np.prod(sizes, dtype=np.float64))
    combo = np.zeros(n, dtype=np.int64)
    for (c, _), k in zip(parts, sizes, strict=True):
        combo = combo * k + np.asarray(c, dtype=np.int64)
    if total <= 1_000_000:
        present = np.flatnonzero(np.bincount(combo, minlength=total))
        remap = np.full(total, -1, dtype=np.int64)
        remap[present] = np.arange(len(present))
        codes = remap[combo]
    else:
        present, codes = np.unique(combo, return_inverse=True)
    names = []
    for u in present:
        vals, rem = [], int(u)
        for (_, nm), k in zip(reversed(parts), reversed(sizes), strict=True):
            vals.append(nm[rem % k])
            rem //= k
        names.append(intersection_name(columns, vals[::-1]))
    return codes.astype(np.int64), names


def _check_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    for c in columns:
        if c not in frame.columns:
            raise FairfoundryError(f"column {c!r} not found",
                                   hint=did_you_mean(c, frame.columns, what="columns"))


def intersect_groups(frame: pd.DataFrame, columns: Sequence[str], *,
                     bins: dict | None = None) -> tuple[np.ndarray, list[str]]:
    """Integer group codes for the observed combinations of ``columns``.

    Names are the value for one column, ``"col1=a & col2=b"`` for several; missing values
    become the explicit group ``unknown`` (never dropped, never imputed). ``bins``
    (``{column: edges}``) bins numeric columns first. Codes follow the group order of each
    column (bins numerically, ``unknown`` last).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"sex": ["F", "M", "F"], "age": [70, 35, 35]})
    >>> codes, names = intersect_groups(df, ["sex", "age"], bins={"age": [40, 60, 80]})
    >>> codes.tolist(), names
    ([1, 2, 0], ['sex=F & age=<40', 'sex=F & age=60-79', 'sex=M & age=<40'])
    """
    columns = list(columns)
    if not columns:
        raise FairfoundryError("intersect_groups needs at least one column")
    _check_columns(frame, columns)
    bins = bins or {}
    parts = []
    for c in columns:
        cat = attribute_groups(frame[c], edges=bins.get(c), name=f"column {c!r}")
        parts.append((np.asarray(cat.codes, dtype=np.int64), [str(x) for x in cat.categories]))
    if len(columns) == 1:
        codes, names = parts[0]
        present = np.bincount(codes, minlength=len(names)) > 0
        if not present.all():
            remap = np.cumsum(present) - 1
            codes, names = remap[codes], [nm for nm, p in zip(names, present, strict=True) if p]
        return codes.astype(np.int64), names
    return combine_groups(columns, parts)


def auto_bin_columns(frame: pd.DataFrame, columns: Sequence[str], bins: dict | None = None,
                     *, max_values: int = 10) -> dict[str, list[float]]:
    """Edges for every numeric column with more than ``max_values`` distinct values (age):
    ``bins[column]`` when given, else :data:`DEFAULT_AGE_EDGES` without the edges outside the
    observed range (ages 25-90 give ``<40, 40-59, 60-79, 80+``: no empty bin at either end).

    Examples
    --------
    >>> import pandas as pd
    >>> auto_bin_columns(pd.DataFrame({"age": range(25, 91)}), ["age"])
    {'age': [40.0, 60.0, 80.0]}
    """
    out = {}
    for c in columns:
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col) and col.nunique() > max_values:
            edges = default_edges(c, bins)
            if c not in (bins or {}):  # default edges: no empty bin at either end
                lo, hi = float(col.min()), float(col.max())
                edges = [e for e in edges if lo < e <= hi] or edges
            out[c] = edges
    return out


def group_labels(frame: pd.DataFrame, columns: Sequence[str], *,
                 bins: dict | None = None) -> np.ndarray:
    """The group name of every row (object array): the value for one column, the
    intersection name for several; ``bins`` bins numeric columns first."""
    _check_columns(frame, columns)
    codes, names = intersect_groups(frame, columns, bins=bins)
    return np.asarray(names, dtype=object)[codes]
