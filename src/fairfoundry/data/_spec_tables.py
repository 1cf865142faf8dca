"""Reading a spec's files into one raw frame: find each table, read it, tidy and unpivot it,
join the tables on their keys, derive columns (table specs), or list npz / DICOM files.
Nothing is harmonised here (:mod:`._spec_load` does that)."""

from __future__ import annotations

import glob
import logging
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import FairfoundryError, did_you_mean
from ._spec_schema import DatasetSpec, DeriveSpec, TableSpec, UnpivotSpec

__all__ = ["RawFrame"]

log = logging.getLogger(__name__)


@dataclass
class RawFrame:
    """What a spec's files hold before harmonisation: the joined frame, the files that could
    not be read (``path``, ``error``), the optional tables that were not found, and which file
    each column came from (named in error messages)."""

    frame: Any
    problems: Any = None
    skipped_tables: list[str] = field(default_factory=list)
    column_files: dict[str, str] = field(default_factory=dict)


def _find(root: Path, table: TableSpec) -> Path | None:
    for cand in [table.file, *table.alternatives]:
        hits = sorted(glob.glob(str(root / cand)))
        if hits:
            return Path(hits[0])
    return None


def _read_table(path: Path, table: TableSpec):
    import pandas as pd

    name = path.name.lower()
    try:
        if name.endswith((".xlsx", ".xls")):
            try:
                import openpyxl  # noqa: F401
            except ImportError as exc:
                raise FairfoundryError(
                    f"reading {path} needs openpyxl",
                    hint="pip install 'fairfoundry[medical]' (or openpyxl), or save the sheet "
                         "as CSV next to it") from exc
            return pd.read_excel(path, sheet_name=table.sheet or 0, header=table.header)
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        sep = table.sep or ("\t" if name.endswith((".tsv", ".tsv.gz")) else ",")
        return pd.read_csv(path, sep=sep, header=table.header, low_memory=False)
    except FairfoundryError:
        raise
    except Exception as exc:
        raise FairfoundryError(f"cannot read {path}: {exc}".splitlines()[0]) from exc


def _tidy_table(frame, table: TableSpec, *, path: Path):
    """Apply a table's column renames (other releases) and drop its empty rows."""
    frame = frame.rename(columns={str(c): str(c).strip() for c in frame.columns})
    renames = {old: new for old, new in table.rename.items()
               if old in frame.columns and new not in frame.columns}
    if renames:
        frame = frame.rename(columns=renames)
    if table.drop_empty:
        for col in table.drop_empty:
            _need(frame, col, what="drop_empty", source=str(path))
        keep = frame[table.drop_empty].notna().all(axis=1)
        frame = frame.loc[keep].reset_index(drop=True)
    if table.unpivot is not None:
        frame = _unpivot(frame, table.unpivot, path=path)
    return frame


def _unpivot(frame, u: UnpivotSpec, *, path: Path):
    """One row per (row, image column) with a non-empty image; other columns repeated."""
    import pandas as pd

    needed = list(u.columns) + [c for m in u.per_key.values() for c in m.values()]
    for col in needed:
        _need(frame, col, what="unpivot", source=str(path))
    drop = set(needed)
    base = frame[[c for c in frame.columns if c not in drop]]
    parts = []
    for col, label in u.columns.items():
        part = base.copy()
        part[u.key] = label
        part[u.into] = frame[col].to_numpy()
        for new, by_key in u.per_key.items():
            src = by_key.get(label)
            part[new] = frame[src].to_numpy() if src is not None else None
        part["__order"] = range(len(part))
        parts.append(part[part[u.into].notna()])
    long = pd.concat(parts, ignore_index=True).sort_values("__order", kind="stable")
    return long.drop(columns="__order").reset_index(drop=True)


def _template(frame, template: str, *, what: str):
    """Fill a ``str.format`` template per row from the frame's columns."""
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    names = [re.split(r"[.\[]", f)[0] for f in fields]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise FairfoundryError(f"{what} template {template!r} uses column(s) {missing} that the "
                               f"tables lack", hint=did_you_mean(missing[0], frame.columns,
                                                                 what="columns"))
    cols = {n: frame[n].astype(object).where(frame[n].notna(), "").map(_plain).tolist()
            for n in dict.fromkeys(names)}
    n = len(frame)
    return [template.format(**{k: v[i] for k, v in cols.items()}) for i in range(n)]


def _plain(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _need(frame, column: str, *, what: str, source: str):
    if column not in frame.columns:
        raise FairfoundryError(f"{source}: column {column!r} for {what} not found",
                               hint=did_you_mean(column, [str(c) for c in frame.columns],
                                                 what="columns"))
    return frame[column]


def _base_frame(spec: DatasetSpec, root: Path, notes: list[str]) -> RawFrame:
    """The spec's files under ``root`` as one raw frame (see :class:`RawFrame`)."""
    import pandas as pd

    from ._readers import read_npz_bundle

    if spec.format == "table":
        frame = None
        column_files: dict[str, str] = {}
        derived = False
        skipped: list[str] = []
        for i, table in enumerate(spec.tables):
            path = _find(root, table)
            if path is None:
                names = ", ".join([table.file, *table.alternatives])
                if table.optional:
                    notes.append(f"optional table {table.file} not found: its columns are unknown")
                    skipped.append(table.file)
                    continue
                hint = "; ".join(filter(None, [f"download it from {spec.url}" if spec.url
                                               else "", f"expected: {table.note}"
                                               if table.note else ""]))
                raise FairfoundryError(f"{spec.name}: file {names} not found under {root}",
                                       hint=hint or None)
            part = _read_table(path, table)
            part = _tidy_table(part, table, path=path)
            for c in part.columns:
                column_files.setdefault(str(c), path.name)
            for k, v in table.assign.items():
                part[k] = v
            if i == 0 or table.append:
                frame = part if frame is None else pd.concat([frame, part], ignore_index=True)
                continue
            if not derived:
                derived = True
                for name, d in spec.derive.items():
                    frame[name] = _derive(frame, d, name=name, source=spec.name)
            left = table.left_on or table.key
            right = table.right_on or table.key
            if left is None or right is None:
                raise FairfoundryError(f"spec {spec.name}: table {table.file} needs 'key' or "
                                       f"'left_on'/'right_on'")
            _need(frame, left, what="join", source=spec.name)
            _need(part, right, what="join", source=str(path))
            if table.dedupe:
                part = part.drop_duplicates(subset=[right], keep="first")
            if part[right].duplicated().any():
                raise FairfoundryError(f"{path}: join key {right!r} is not unique",
                                       hint="set 'dedupe: true' on this table in the spec")
            part = part.assign(__rkey=part[right].map(_plain)).drop(columns=[right])
            part = part.rename(columns={c: f"{c}__{i}" for c in part.columns
                                        if c in frame.columns})
            merged = frame.assign(__key=frame[left].map(_plain)).merge(
                part, left_on="__key", right_on="__rkey", how=table.how, validate="many_to_one")
            frame = merged.drop(columns=["__key", "__rkey"])
        if not derived:
            for name, d in spec.derive.items():
                frame[name] = _derive(frame, d, name=name, source=spec.name)
        return RawFrame(frame, skipped_tables=skipped, column_files=column_files)
    if spec.format == "npz_bundle":
        files = sorted(glob.glob(str(root / (spec.files or "*.npz"))))
        if not files:
            raise FairfoundryError(f"{spec.name}: no {spec.files or '*.npz'} under {root}")
        frames = []
        for f in files:
            m, _ = read_npz_bundle(f)
            if len(files) > 1:
                m["sample_id"] = Path(f).stem + "/" + m["sample_id"]
            m["path"] = [str(Path(f).relative_to(root).parent / p) if Path(f).parent != root else p
                         for p in m["path"]]
            frames.append(m)
        return RawFrame(pd.concat(frames, ignore_index=True))
    if spec.format == "npz_files":
        return RawFrame(*_npz_files_frame(spec, root))
    if spec.format == "dicom":
        from ._readers import scan_dicom

        frame, problems = scan_dicom(root, force=True)
        return RawFrame(frame, problems)
    raise FairfoundryError(f"unknown spec format {spec.format!r}")  # pragma: no cover


def _npz_files_frame(spec: DatasetSpec, root: Path):
    """One row per npz file (its scalar arrays as columns) and the unreadable files."""
    import numpy as np
    import pandas as pd

    files = sorted(glob.glob(str(root / (spec.files or "**/*.npz")), recursive=True))
    if not files:
        raise FairfoundryError(f"{spec.name}: no {spec.files or '**/*.npz'} files under {root}",
                               hint=f"download the data from {spec.url}" if spec.url else None)
    keys = {c for a in spec.attributes.values() for c in [a.column, *a.alternatives] if c}
    keys |= {spec.labels.column} if spec.labels.column else set()
    keys |= set(spec.extras.values())
    rows = []
    problems = []
    for f in files:
        rel = Path(f).relative_to(root).as_posix()
        row = {"file": rel, "folder": Path(rel).parent.as_posix()}
        try:
            with np.load(f, allow_pickle=False) as npz:
                for k in keys:
                    if k in npz.files:
                        arr = np.asarray(npz[k])
                        row[k] = arr.item() if arr.size == 1 else None
        except Exception as exc:  # unreadable npz: listed, not a crash
            problems.append({"path": rel, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]})
            continue
        rows.append(row)
    if not rows:
        raise FairfoundryError(f"{spec.name}: none of the {len(files)} npz file(s) under {root} "
                               f"could be read, e.g. {problems[0]['path']}: {problems[0]['error']}")
    return pd.DataFrame(rows), pd.DataFrame(problems, columns=["path", "error"])


def _derive(frame, d: DeriveSpec, *, name: str, source: str):
    if d.template:
        return _template(frame, d.template, what=name)
    col = _need(frame, d.column, what=name, source=source).astype(str)
    if d.pattern:
        extracted = col.str.extract(d.pattern, expand=False)
        if hasattr(extracted, "columns"):
            extracted = extracted.iloc[:, 0]
        return extracted
    return col


