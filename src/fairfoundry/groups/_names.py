"""How groups are named: one missing token, one intersection naming, one sort order."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["MISSING", "SEP", "ATTRIBUTE_SEP", "intersection_name", "intersection_attribute",
           "split_intersection", "group_sort_key", "sort_groups", "is_known"]

#: the group of rows whose attribute value is not recorded (never dropped, never imputed)
MISSING = "unknown"
#: separator of the ``attribute=value`` parts of an intersection group name
SEP = " & "
#: separator of the attribute names of an intersection (``sex&age``)
ATTRIBUTE_SEP = "&"

_NUMERIC = re.compile(r"^(<)?\[?(-?\d+(?:\.\d+)?)")


def intersection_name(columns: Sequence[str], values: Sequence[str]) -> str:
    """``sex=female & age=60-79``: the one name of an intersection group.

    Examples
    --------
    >>> intersection_name(["sex", "age"], ["female", "60-79"])
    'sex=female & age=60-79'
    """
    return SEP.join(f"{c}={v}" for c, v in zip(columns, values, strict=True))


def intersection_attribute(columns: Sequence[str]) -> str:
    """``sex&age``: the attribute name under which an intersection is reported."""
    return ATTRIBUTE_SEP.join(columns)


def split_intersection(name: str) -> list[tuple[str, str]]:
    """Inverse of :func:`intersection_name`: ``[(column, value), ...]``.

    Examples
    --------
    >>> split_intersection("sex=female & age=60-79")
    [('sex', 'female'), ('age', '60-79')]
    """
    out = []
    for part in name.split(SEP):
        col, _, value = part.partition("=")
        out.append((col, value))
    return out


def is_known(name: str) -> bool:
    """False when the group (or any part of an intersection) is :data:`MISSING`.

    Examples
    --------
    >>> is_known("sex=female & age=60-79"), is_known("sex=unknown & age=60-79")
    (True, False)
    """
    name = str(name)
    if SEP in name and "=" in name:
        return all(v != MISSING for _, v in split_intersection(name))
    return name != MISSING


def group_sort_key(name: str):
    """Sort key of group names: numeric labels and bins by their lower edge (``<40`` before
    ``40-59`` before ``80+``, ``9`` before ``10``), then text alphabetically, ``unknown`` last.
    Intersections sort part by part."""
    if SEP in name and "=" in name:
        # (3, parts): comparable with the plain keys when a value itself reads "a & b=c"
        return (3, tuple(group_sort_key(v) for _, v in split_intersection(name)))
    if name == MISSING:
        return (2, 0.0, name)
    m = _NUMERIC.match(name)
    if m:
        return (0, float("-inf") if m.group(1) else float(m.group(2)), name)
    return (1, 0.0, name)


def sort_groups(names) -> list[str]:
    """``names`` (deduplicated) in :func:`group_sort_key` order.

    Examples
    --------
    >>> sort_groups(["80+", "unknown", "40-59", "<40"])
    ['<40', '40-59', '80+', 'unknown']
    """
    return sorted(dict.fromkeys(str(n) for n in names), key=group_sort_key)
