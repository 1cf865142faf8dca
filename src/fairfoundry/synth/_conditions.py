"""Conditions of a generator: columns, their value vocabularies, requested cells."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .._errors import FairfoundryError

__all__ = ["Conditions", "CellRequest", "parse_cells", "cell_name"]


def _norm(v) -> str:
    """A condition value as text (``1.0`` -> ``"1"``; missing -> ``""``)."""
    import math

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def cell_name(values: dict) -> str:
    """``"Effusion=1,sex=female"``: the cell's text form (columns in the given order)."""
    return ",".join(f"{k}={v}" for k, v in values.items())


@dataclass(frozen=True)
class Conditions:
    """Condition columns and, for each, the sorted values seen in the training data.

    Code ``len(values[j])`` of column ``j`` is the "no condition" token of classifier-free
    guidance (Ho & Salimans 2022).
    """

    columns: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]
    counts: dict  # cell name -> number of training images

    @classmethod
    def from_frame(cls, frame, columns, *, where: str) -> tuple[Conditions, object]:
        """Vocabulary from ``frame``; returns ``(conditions, keep_mask)`` (rows with every column known)."""
        import numpy as np

        columns = [c.strip() for c in columns if c.strip()]
        if not columns:
            raise FairfoundryError("--condition needs at least one column", hint="e.g. --condition Effusion,sex")
        if len(set(columns)) != len(columns):
            raise FairfoundryError(f"--condition lists a column twice: {', '.join(columns)}")
        for c in columns:
            if c not in frame.columns:
                raise FairfoundryError(f"condition column {c!r} not found in {where}",
                                       hint=f"columns are: {', '.join(map(str, frame.columns))}")
        text = {c: [_norm(v) for v in frame[c].tolist()] for c in columns}
        keep = np.ones(len(frame), dtype=bool)
        for c in columns:
            keep &= np.array([v not in ("", "unknown") for v in text[c]])
        if not keep.any():
            raise FairfoundryError(f"no row of {where} has every condition column known ({', '.join(columns)})")
        values = tuple(tuple(sorted({v for v, k in zip(text[c], keep, strict=True) if k})) for c in columns)
        counts: dict = {}
        for i in np.flatnonzero(keep):
            name = cell_name({c: text[c][i] for c in columns})
            counts[name] = counts.get(name, 0) + 1
        return cls(tuple(columns), values, dict(sorted(counts.items()))), keep

    def encode_frame(self, frame):
        """Integer codes ``[n, k]`` of the rows of ``frame`` (every value must be in the vocabulary)."""
        import numpy as np

        out = np.empty((len(frame), len(self.columns)), dtype=np.int64)
        for j, c in enumerate(self.columns):
            idx = {v: i for i, v in enumerate(self.values[j])}
            for i, v in enumerate(frame[c].tolist()):
                key = _norm(v)
                if key not in idx:
                    raise FairfoundryError(f"value {key!r} of {c!r} (row {i}) was not seen in training",
                                           hint=f"known values: {', '.join(self.values[j])}")
                out[i, j] = idx[key]
        return out

    def encode_cell(self, values: dict) -> list[int]:
        return [self.values[j].index(values[c]) for j, c in enumerate(self.columns)]

    @property
    def sizes(self) -> list[int]:
        return [len(v) for v in self.values]

    def to_dict(self) -> dict:
        return {"columns": list(self.columns), "values": [list(v) for v in self.values], "counts": self.counts}

    @classmethod
    def from_dict(cls, d: dict) -> Conditions:
        return cls(tuple(d["columns"]), tuple(tuple(v) for v in d["values"]), dict(d["counts"]))


@dataclass(frozen=True)
class CellRequest:
    """One requested cell: its condition values (every condition column) and how many images."""

    values: dict
    n: int

    @property
    def name(self) -> str:
        return cell_name(self.values)


_ITEM = re.compile(r"^\s*([^=,:;]+?)\s*=\s*([^=,:;]+?)\s*$")


def parse_cells(spec: str, conditions: Conditions) -> list[CellRequest]:
    """Parse ``"Effusion=1,sex=female:200;Effusion=1,sex=male:100"`` against ``conditions``.

    Cells are separated by ``;`` (or given as repeated options joined with ``;``); each is
    ``col=value,...:count`` naming every condition column once. A cell with no training image
    is an error: the generator has never seen it.
    """
    cells: list[CellRequest] = []
    for raw in [s for s in spec.split(";") if s.strip()]:
        if ":" not in raw:
            raise FairfoundryError(f"cell {raw.strip()!r} has no count", hint="write it as col=value,...:count")
        body, _, count = raw.rpartition(":")
        try:
            n = int(count.strip())
        except ValueError:
            raise FairfoundryError(f"cell {raw.strip()!r}: count {count.strip()!r} is not an integer") from None
        if n < 1:
            raise FairfoundryError(f"cell {raw.strip()!r}: count must be >= 1")
        values: dict = {}
        for item in body.split(","):
            m = _ITEM.match(item)
            if not m:
                raise FairfoundryError(f"cell {raw.strip()!r}: {item.strip()!r} is not col=value")
            col, val = m.group(1), m.group(2)
            if col not in conditions.columns:
                raise FairfoundryError(f"cell {raw.strip()!r}: {col!r} is not a condition of this generator",
                                       hint=f"conditions are: {', '.join(conditions.columns)}")
            if col in values:
                raise FairfoundryError(f"cell {raw.strip()!r} names {col!r} twice")
            j = conditions.columns.index(col)
            if val not in conditions.values[j]:
                raise FairfoundryError(f"cell {raw.strip()!r}: value {val!r} of {col!r} has no training images",
                                       hint=f"values seen in training: {', '.join(conditions.values[j])}")
            values[col] = val
        missing = [c for c in conditions.columns if c not in values]
        if missing:
            raise FairfoundryError(f"cell {raw.strip()!r} does not set {', '.join(missing)}",
                                   hint=f"name every condition: {', '.join(conditions.columns)}")
        ordered = {c: values[c] for c in conditions.columns}
        req = CellRequest(ordered, n)
        if conditions.counts.get(req.name, 0) == 0:
            raise FairfoundryError(f"cell {req.name} has no training images: the generator never saw it",
                                   hint="cells with training images: " + ", ".join(
                                       f"{k} ({v})" for k, v in conditions.counts.items()))
        cells.append(req)
    if not cells:
        raise FairfoundryError("no cell requested", hint='e.g. --cells "Effusion=1,sex=female:200"')
    return cells
