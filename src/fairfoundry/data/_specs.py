"""Declarative dataset specs: one YAML file per dataset, shipped in ``data/specs/``.

A spec says, for one public dataset, which files to read and how to join them, which column is
the sample id and which the patient id, where the image of each row lives, what the labels are,
and for every protected attribute the source column, its value map and its unit. Loading a
dataset is then one generic function (:func:`load_dataset`) instead of per-dataset code, which
removes the bug class of hard-coded conventions (``gender`` vs ``male``, ``M`` vs ``male``, ages
in days, age cut at >=60 here and >60 there).

Adding a dataset is one file: drop ``<name>.yaml`` into ``data/specs/`` (or call
:func:`register_spec` with a path to your own file). The schema is :class:`DatasetSpec`; unknown
keys are errors that list the valid keys.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._errors import FairfoundryError, did_you_mean
from ._harmonise import (
    UNKNOWN,
    add_geography,
    age_from_dates,
    country_to_iso3,
    fitzpatrick,
    harmonise_age,
    harmonise_ethnicity,
    harmonise_race,
    harmonise_sex,
)

__all__ = [
    "AttributeSpec",
    "DatasetSpec",
    "DatasetLoad",
    "LabelSpec",
    "SourceSpec",
    "SplitSpec",
    "TableSpec",
    "UnpivotSpec",
    "SPECS",
    "get_spec",
    "list_specs",
    "load_dataset",
    "load_spec_file",
    "register_spec",
    "coverage_matrix",
]

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class UnpivotSpec(_Strict):
    """Turn one row per patient with one column per image into one row per image."""

    columns: dict[str, str] = Field(description=(
        "image columns -> the value written to 'key' for that image (e.g. Left-Fundus: left)"))
    into: str = Field(description="new column holding the image (the cell value)")
    key: str = Field("eye", description="new column holding the value the image column maps to")
    per_key: dict[str, dict[str, str]] = Field(default_factory=dict, description=(
        "other per-image columns: new column -> {key value: source column}"))


class TableSpec(_Strict):
    """One metadata file; the first is the base table, later ones are joined onto it."""

    file: str = Field(description="path relative to the dataset root (glob allowed)")
    alternatives: list[str] = Field(default_factory=list, description="other accepted names")
    key: str | None = Field(None, description="join key present in both tables ('on' is a "
                                              "YAML boolean, hence 'key')")
    left_on: str | None = None
    right_on: str | None = None
    how: Literal["left", "inner"] = "left"
    append: bool = Field(False, description="stack this table's rows under the base table")
    assign: dict[str, Any] = Field(default_factory=dict, description="constant columns to add")
    dedupe: bool = Field(False, description="keep the first row per join key of this table")
    optional: bool = Field(False, description="a missing optional table leaves its columns unknown")
    sep: str | None = None
    sheet: str | int | None = Field(None, description="sheet of an .xlsx file")
    header: int = Field(0, description="row holding the column names (0 = first row)")
    rename: dict[str, str] = Field(default_factory=dict, description=(
        "column names of other releases -> the name the spec uses (applied when present)"))
    drop_empty: list[str] = Field(default_factory=list, description=(
        "rows without a value in these columns are dropped (sub-header or footer rows of "
        "spreadsheets)"))
    unpivot: UnpivotSpec | None = Field(None, description=(
        "one row per patient with one column per image -> one row per image"))
    note: str = ""


class DeriveSpec(_Strict):
    """A column computed from the base table before joins (regex group or template)."""

    column: str | None = None
    pattern: str | None = Field(None, description="regex; the first group is the value")
    template: str | None = Field(None, description="Python format string over column names")


class AttributeSpec(_Strict):
    """How one harmonised attribute is read: a column (or npz key / DICOM tag) or a constant."""

    column: str | None = None
    alternatives: list[str] = Field(default_factory=list, description=(
        "other names of the column in other releases (the first one present is used)"))
    optional: bool = Field(False, description=(
        "a column absent from the files leaves the attribute unknown (with a note) instead of "
        "being an error"))
    value: str | float | int | None = Field(None, description="same value for every image")
    map: dict[Any, Any] | None = Field(None, description="source value -> harmonised value")
    missing: list[Any] = Field(default_factory=list, description="source codes meaning unknown")
    unit: str = Field("years", description="age unit of numeric values")
    birth_date: str | None = Field(None, description="age from birth date column ...")
    study_date: str | None = Field(None, description="... and study date column (YYYYMMDD)")
    birth_year: str | None = Field(None, description="age = year(study_date) - birth year")
    strict: bool = Field(True, description="values outside the map are an error")
    level: Literal["image", "patient", "dataset"] | None = None
    source: str = Field("", description="which file holds it (for the coverage matrix)")
    note: str = ""

    @model_validator(mode="after")
    def _one_source(self):
        if self.column is None and self.value is None and self.birth_date is None \
                and self.birth_year is None:
            raise ValueError("an attribute needs 'column', 'value', 'birth_date' or 'birth_year'")
        return self


class LabelSpec(_Strict):
    """Labels: one column per label in the manifest."""

    kind: Literal["multiclass", "binary", "onehot", "multilabel_string", "multilabel_columns",
                  "none"] = "none"
    column: str | None = None
    columns: list[str] = Field(default_factory=list)
    separator: str = "|"
    classes: list[str] = Field(default_factory=list)
    map: dict[Any, Any] | None = None
    positive: list[Any] = Field(default_factory=list, description="binary: source positives")
    uncertain: Literal["keep", "zero", "one", "nan"] = Field(
        "keep", description="CheXpert-style -1 labels: keep, map to 0, 1 or NaN")
    note: str = ""


class SplitSpec(_Strict):
    """Default split rule: a source column, or seeded patient-level ratios."""

    rule: Literal["column", "patient_random", "none"] = "patient_random"
    column: str | None = None
    map: dict[Any, str] | None = None
    ratios: dict[str, float] = Field(default_factory=lambda: {"train": 0.7, "val": 0.1, "test": 0.2})
    seed: int = 0
    stratify: list[str] = Field(default_factory=list)
    note: str = ""


class SourceSpec(_Strict):
    """Where a coding was checked: the page (or file) and what it says."""

    url: str
    says: str
    checked: str = Field("", description="date the source was read (YYYY-MM-DD)")

    @model_validator(mode="before")
    @classmethod
    def _date_as_text(cls, data):
        if isinstance(data, dict) and data.get("checked") is not None:
            data = {**data, "checked": str(data["checked"])}
        return data


class DatasetSpec(_Strict):
    """A dataset spec (one YAML file). See ``docs/data.md`` for every field."""

    name: str
    title: str
    modality: str
    task: str = ""
    description: str = ""
    url: str = ""
    licence: str
    citation: str
    access: Literal["open", "registration", "credentialed", "agreement"] = "open"
    format: Literal["table", "dicom", "npz_bundle", "npz_files"] = "table"
    tables: list[TableSpec] = Field(default_factory=list)
    files: str | None = Field(None, description="glob of npz / DICOM files under the root")
    derive: dict[str, DeriveSpec] = Field(default_factory=dict)
    sample_id: str | None = None
    patient_id: str | None = None
    path: str | None = Field(None, description="image path template relative to the root")
    labels: LabelSpec = Field(default_factory=LabelSpec)
    attributes: dict[str, AttributeSpec] = Field(default_factory=dict)
    extras: dict[str, str] = Field(default_factory=dict, description="manifest name -> column")
    split: SplitSpec = Field(default_factory=SplitSpec)
    age_bins: list[float] = Field(default_factory=lambda: [20, 40, 60, 80])
    tested_on: str = Field("", description="real data or fixture the spec is tested against")
    same_as: str | None = Field(None, description=(
        "another spec of the same dataset (other file layout); left out of the coverage matrix"))
    sources: list[SourceSpec] = Field(default_factory=list, description=(
        "where the value maps and column names were checked: url and what it says"))
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _attributes_known(self):
        unknown = sorted(set(self.attributes) - set(ATTRIBUTE_HARMONISERS))
        if unknown:
            raise ValueError(f"unknown attribute(s) {unknown}; known: {sorted(ATTRIBUTE_HARMONISERS)}")
        if self.format == "table" and not self.tables:
            raise ValueError("format 'table' needs at least one entry in 'tables'")
        return self


#: harmonised attributes a spec may declare, and the function that harmonises each.
ATTRIBUTE_HARMONISERS = {
    "sex": harmonise_sex,
    "age": None,
    "race": harmonise_race,
    "ethnicity": harmonise_ethnicity,
    "skin_type": fitzpatrick,
    "country": country_to_iso3,
    "site": "free",
    "language": "free",
    "insurance": "free",
    "marital_status": "free",
}

#: specs by name, filled from ``data/specs/*.yaml`` on first use (and by :func:`register_spec`).
SPECS: dict[str, DatasetSpec] = {}
_LOADED = {"done": False}


def load_spec_file(path: str | os.PathLike) -> DatasetSpec:
    """Parse and validate one spec YAML file (errors name the file and the bad key)."""
    from .._io import read_yaml_mapping

    path = Path(path)
    raw = read_yaml_mapping(path, what="spec")
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        from .._values import pydantic_error

        raise pydantic_error(exc, where=f"spec {path}", model=DatasetSpec) from exc


def register_spec(spec: DatasetSpec | str | os.PathLike, *, replace: bool = False) -> DatasetSpec:
    """Add a spec (object or YAML path) to the registry; a name may be registered once."""
    _ensure_loaded()
    if not isinstance(spec, DatasetSpec):
        spec = load_spec_file(spec)
    if spec.name in SPECS and not replace:
        raise FairfoundryError(f"dataset spec {spec.name!r} registered twice")
    SPECS[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    if _LOADED["done"]:
        return
    from importlib import resources

    folder = resources.files(__package__).joinpath("specs")
    found: dict[str, DatasetSpec] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            spec = load_spec_file(Path(str(entry)))
            if spec.name in found:
                raise FairfoundryError(f"dataset spec {spec.name!r} defined twice")
            found[spec.name] = spec
    for name, spec in found.items():
        SPECS.setdefault(name, spec)
    _LOADED["done"] = True


def list_specs() -> list[str]:
    """Names of all registered dataset specs, sorted."""
    _ensure_loaded()
    return sorted(SPECS)


def get_spec(name: str | os.PathLike) -> DatasetSpec:
    """A registered spec by name, or a spec read from a YAML path."""
    _ensure_loaded()
    text = str(name)
    if text.endswith((".yaml", ".yml")):
        return load_spec_file(text)
    key = text.lower().replace("_", "-")
    aliases = {s.replace("-", ""): s for s in SPECS}
    if key in SPECS:
        return SPECS[key]
    if key.replace("-", "") in aliases:
        return SPECS[aliases[key.replace("-", "")]]
    partial = [s for s in list_specs() if key.replace("-", "") in s.replace("-", "")]
    hint = did_you_mean(text, list_specs(), what="known datasets")
    if len(partial) == 1 and "did you mean" not in (hint or ""):
        hint = f"did you mean {partial[0]!r}? " + (hint or "")
    raise FairfoundryError(f"unknown dataset {name!r}", hint=hint)


# --------------------------------------------------------------------------------- loading

@dataclass
class DatasetLoad:
    """Result of :func:`load_dataset`: the manifest, files that could not be read, notes."""

    manifest: Any
    spec: DatasetSpec
    root: Path
    problems: Any = None
    notes: list[str] = field(default_factory=list)


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


def _resolve_column(attr: AttributeSpec, frame) -> str | None:
    """The first of an attribute's column names present in ``frame`` (None if none is)."""
    for name in [attr.column, *attr.alternatives]:
        if name is not None and name in frame.columns:
            return name
    return None


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


def _harmonise_attribute(name: str, attr: AttributeSpec, frame, *, source: str, notes: list[str]):
    import numpy as np
    import pandas as pd

    n = len(frame)
    if attr.value is not None and attr.column is None:
        raw = pd.Series([attr.value] * n, index=frame.index)
    elif name == "age" and attr.column is None:
        if attr.birth_date:
            b = _need(frame, attr.birth_date, what="age", source=source)
            s = _need(frame, attr.study_date or "", what="age", source=source)
            years = pd.Series(age_from_dates(b, s), index=frame.index)
        else:
            by = pd.to_numeric(_need(frame, attr.birth_year, what="age", source=source),
                               errors="coerce")
            sd = _need(frame, attr.study_date or "", what="age", source=source)
            study_year = pd.to_numeric(sd.astype(str).str.slice(0, 4), errors="coerce")
            years = (study_year - by).astype(float)
        bad = years.isna() & frame[attr.birth_date or attr.birth_year].notna()
        if bad.any():
            notes.append(f"age: {int(bad.sum())} row(s) with an invalid birth or study date "
                         f"left unknown")
        return years.where((years >= 0) & (years <= 120))
    else:
        raw = _need(frame, attr.column, what=name, source=source)
    if name == "age":
        ages = harmonise_age(raw, unit=attr.unit, strict=attr.strict,
                             name=attr.column or "age")
        if ages.attrs.get("implausible"):
            notes.append(f"age: {ages.attrs['implausible']} implausible value(s) (<0 or >120 "
                         f"years) set to unknown")
        return ages.to_numpy()
    func = ATTRIBUTE_HARMONISERS[name]
    label = attr.column or name
    if func == "free":
        return _free_values(raw, attr.map or {}, attr.missing)
    out = func(raw, mapping=attr.map, strict=attr.strict, name=label, missing=attr.missing)
    return np.asarray(out, dtype=object)


def _free_values(raw, mapping: dict, missing: list):
    """Free-text attributes (site, language, ...): map what the spec maps, keep the rest."""
    import numpy as np
    import pandas as pd

    from ._harmonise import MISSING_TOKENS, _norm

    norm_map = {_norm(k): v for k, v in mapping.items()}
    miss = {_norm(m) for m in missing}
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    out = []
    for u in uniques:
        key = _norm(u)
        if key in norm_map:
            out.append(str(norm_map[key]))
        elif key in miss or key in MISSING_TOKENS:
            out.append(UNKNOWN)
        else:
            out.append(_plain(u))
    table = np.array([*out, UNKNOWN], dtype=object)
    return table[codes]


def _labels(spec: DatasetSpec, frame, *, source: str):
    import numpy as np
    import pandas as pd

    lab = spec.labels
    out = {}
    if lab.kind == "none":
        return out
    if lab.kind == "multiclass":
        col = _need(frame, lab.column, what="labels", source=source)
        values = col.map(lambda v: lab.map.get(v, v)) if lab.map else col
        if lab.classes:
            bad = values.notna() & ~values.isin(lab.classes)
            if bad.any():
                counts = values[bad].value_counts().head(10).to_dict()
                raise FairfoundryError(f"{source}: label column {lab.column!r} has values outside "
                                       f"the spec's classes: {counts}",
                                       hint=f"classes are: {', '.join(lab.classes)}")
        out["label"] = values.to_numpy(dtype=object)
        return out
    if lab.kind == "binary":
        col = _need(frame, lab.column, what="labels", source=source)
        if lab.positive:
            out["label"] = np.where(col.isna(), np.nan, col.isin(lab.positive).astype(float))
        else:
            out["label"] = pd.to_numeric(col, errors="coerce").to_numpy()
        return out
    if lab.kind in ("onehot", "multilabel_columns"):
        cols = lab.columns or lab.classes
        for c in cols:
            values = pd.to_numeric(_need(frame, c, what="labels", source=source), errors="coerce")
            if lab.uncertain != "keep":
                values = values.replace(-1.0, {"zero": 0.0, "one": 1.0, "nan": np.nan}[lab.uncertain])
            out[c] = values.to_numpy()
        if lab.kind == "onehot":
            mat = np.column_stack([out[c] for c in cols])
            idx = np.nanargmax(np.nan_to_num(mat, nan=-1), axis=1)
            out = {**{c: out[c] for c in cols}, "label": np.asarray(cols, dtype=object)[idx]}
        return out
    if lab.kind == "multilabel_string":
        col = _need(frame, lab.column, what="labels", source=source).fillna("")
        sets = col.astype(str).str.split(re.escape(lab.separator), regex=True)
        exploded = sets.explode().str.strip()
        found = set(exploded.unique()) - {""}
        if lab.classes:
            extra = sorted(found - set(lab.classes) - set(lab.map or {}))
            if extra:
                counts = exploded[exploded.isin(extra)].value_counts().head(10).to_dict()
                raise FairfoundryError(f"{source}: label column {lab.column!r} has findings "
                                       f"outside the spec's classes: {counts}")
        classes = lab.classes or sorted(found)
        dummies = pd.crosstab(exploded.index, exploded).reindex(index=frame.index, fill_value=0)
        for c in classes:
            out[c] = (dummies[c].to_numpy() > 0).astype(int) if c in dummies else np.zeros(len(frame), int)
        return out
    raise FairfoundryError(f"unknown label kind {lab.kind!r}")  # pragma: no cover


def _base_frame(spec: DatasetSpec, root: Path, notes: list[str]):
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
        frame.attrs["skipped_tables"] = skipped
        frame.attrs["column_files"] = column_files
        return frame
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
        return pd.concat(frames, ignore_index=True)
    if spec.format == "npz_files":
        return _npz_files_frame(spec, root)
    if spec.format == "dicom":
        from ._readers import scan_dicom

        frame, problems = scan_dicom(root, force=True)
        frame.attrs["problems"] = problems
        return frame
    raise FairfoundryError(f"unknown spec format {spec.format!r}")  # pragma: no cover


def _npz_files_frame(spec: DatasetSpec, root: Path):
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
    frame = pd.DataFrame(rows)
    frame.attrs["problems"] = pd.DataFrame(problems, columns=["path", "error"])
    return frame


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


def load_dataset(spec: DatasetSpec | str, root: str | os.PathLike, *, check_files: bool = False,
                 strict: bool = False, bins: list[float] | None = None) -> DatasetLoad:
    """Read a dataset's metadata under ``root`` into a harmonised manifest, following its spec.

    Parameters
    ----------
    spec : a :class:`DatasetSpec` or a registered name (``fairfoundry datasets list``) or a
        path to a spec YAML file
    root : folder holding the dataset's files as downloaded
    check_files : check that every image path exists (missing ones go to ``problems``)
    strict : raise on the first missing image instead of listing it
    bins : age bin edges (default: the spec's ``age_bins``)

    Returns
    -------
    DatasetLoad
        ``manifest`` with ``sample_id``, ``patient_id``, ``path``, ``split``, label columns,
        each attribute of the spec harmonised (plus ``age_group``, ``region``,
        ``income_group`` when age / country are known) and the spec's extras; ``problems``
        (``path``, ``error``); ``notes`` on values set to unknown.

    Raises
    ------
    FairfoundryError
        Unknown dataset (lists the known), missing root or files (says which), attribute values
        outside a spec's value map (lists them with counts), malformed ages.
    """
    import numpy as np
    import pandas as pd

    from ._bins import bin_values
    from ._readers import PROBLEM_COLUMNS

    if not isinstance(spec, DatasetSpec):
        spec = get_spec(spec)
    root = Path(root).expanduser()  # "~/data/HAM10000" as in the docs
    if not root.exists():
        raise FairfoundryError(f"dataset root {root} does not exist")
    if not root.is_dir():
        raise FairfoundryError(f"dataset root {root} is not a directory")
    notes: list[str] = []
    frame = _base_frame(spec, root, notes)
    problems = frame.attrs.pop("problems", None)
    skipped = frame.attrs.pop("skipped_tables", [])
    column_files = frame.attrs.pop("column_files", {})
    if problems is not None and len(problems):
        first = problems.iloc[0]
        if strict:
            raise FairfoundryError(f"{spec.name}: {len(problems)} file(s) under {root} could not "
                                   f"be read, e.g. {first['path']}: {first['error']}",
                                   hint="drop --strict to list them in problems.csv and go on")
    frame = frame.reset_index(drop=True)
    src = spec.name
    out = pd.DataFrame(index=frame.index)
    if spec.format in ("npz_bundle", "dicom"):
        out["sample_id"] = frame["sample_id"].astype(str)
        out["path"] = frame["path"].astype(str)
        for c in frame.columns:
            if c not in out.columns and spec.format == "dicom":
                out[c] = frame[c]
        if spec.format == "npz_bundle":
            out["split"] = frame["split"]
            label_cols = [c for c in frame.columns if c.startswith("label")]
            for c in label_cols:
                out[c] = frame[c]
    else:
        sid = spec.sample_id or "file"
        out["sample_id"] = _need(frame, sid, what="sample_id", source=src).map(_plain).astype(str)
        if spec.path:
            out["path"] = _template(frame, spec.path, what="path")
    if spec.patient_id:
        pid = _need(frame, spec.patient_id, what="patient_id", source=src)
        out["patient_id"] = pid.map(lambda v: None if v is None or v != v else _plain(v))
        n_missing = int(out["patient_id"].isna().sum())
        if n_missing:
            out["patient_id"] = out["patient_id"].fillna(out["sample_id"])
            notes.append(f"patient_id: {n_missing} row(s) without a patient id use their sample_id "
                         f"(each counts as its own patient)")
    elif "patient_id" not in out.columns:
        out["patient_id"] = out["sample_id"]
        notes.append("no patient id in this dataset: each image counts as its own patient")
    for k, v in _labels(spec, frame, source=src).items():
        out[k] = v
    for name, attr in spec.attributes.items():
        if spec.format == "dicom" and attr.column is None and attr.value is None:
            continue
        if spec.format == "dicom" and attr.column in (None, name) and name in frame.columns:
            col = frame[name]
            out[name] = col if name == "age" else col.astype(object).where(col.notna(), UNKNOWN)
            continue
        if attr.column is not None:
            found = _resolve_column(attr, frame)
            if found is None and (skipped or attr.optional):
                out[name] = np.nan if name == "age" else UNKNOWN
                where = (f"is in a table that was not found ({', '.join(skipped)})" if skipped
                         else "is not in the files")
                notes.append(f"{name}: column {attr.column!r} {where}; {name} is unknown")
                continue
            if found is not None and found != attr.column:
                attr = attr.model_copy(update={"column": found})
        try:
            out[name] = _harmonise_attribute(name, attr, frame, source=src, notes=notes)
        except FairfoundryError as exc:
            where = column_files.get(str(attr.column))
            hint = exc.hint or ""
            if SPECS.get(spec.name) is spec and "value map" in exc.message:
                hint += (f"; to change a shipped spec: `fairfoundry datasets show {src} > "
                         f"my-{src}.yaml`, edit its {name} map, then --dataset my-{src}.yaml")
            what = "" if attr.column in (None, name) else f" (the {name} attribute)"
            raise FairfoundryError(f"{src}{f' ({where})' if where else ''}: {exc.message}{what}",
                                   hint=hint or None) from exc
    if "age" in out.columns:
        edges = bins or spec.age_bins
        out["age"] = pd.to_numeric(out["age"], errors="coerce").astype(float)
        out["age_group"] = np.asarray(bin_values(out["age"], edges), dtype=object)
    if "country" in out.columns:
        out = add_geography(out)
    for new, col in spec.extras.items():
        if col in frame.columns:
            out[new] = frame[col].to_numpy()
    # split
    if spec.split.rule == "column" and spec.split.column:
        col = _need(frame, spec.split.column, what="split", source=src)
        mapped = col.map(lambda v: (spec.split.map or {}).get(v, v))
        out["split"] = mapped.map(lambda v: None if v is None or v != v else str(v))
    elif spec.split.rule == "patient_random" and "split" not in out.columns:
        from ._splits import patient_split

        strat = [s for s in spec.split.stratify if s in out.columns]
        out["split"] = patient_split(out, ratios=spec.split.ratios, seed=spec.split.seed,
                                     stratify=strat or None)
        shares = " / ".join(f"{k} {100 * v:g} %" for k, v in spec.split.ratios.items())
        notes.append(f"split: no official split, so a seeded patient-level random split "
                     f"({shares} of patients, seed {spec.split.seed})")
    dup = out["sample_id"].duplicated()
    if dup.any():
        raise FairfoundryError(f"{src}: {int(dup.sum())} duplicated sample id(s), e.g. "
                               f"{out.loc[dup, 'sample_id'].head(3).tolist()}")
    probs = problems if problems is not None else pd.DataFrame(columns=PROBLEM_COLUMNS)
    if check_files and "path" in out.columns and spec.format not in ("npz_bundle",):
        exists = np.array([(root / p).exists() for p in out["path"]])
        if not exists.all():
            missing = out.loc[~exists, "path"]
            if strict:
                raise FairfoundryError(f"{src}: {len(missing)} image file(s) missing under {root}, "
                                       f"e.g. {missing.head(3).tolist()}")
            probs = pd.concat([probs, pd.DataFrame({"path": missing.to_numpy(),
                                                    "error": "file not found"})],
                              ignore_index=True)
    return DatasetLoad(manifest=out, spec=spec, root=root, problems=probs, notes=notes)


# ------------------------------------------------------------------------------ coverage

#: specs that describe a file layout rather than one dataset (left out of the coverage matrix).
READER_SPECS = ("generic", "dicom")

#: attributes shown in the coverage matrix, in order.
COVERAGE_ATTRIBUTES = ("sex", "age", "race", "ethnicity", "skin_type", "site", "country",
                       "income_group", "language", "insurance")


def _level(spec: DatasetSpec, attr: str) -> str:
    if attr == "income_group":
        base = spec.attributes.get("country")
        return "derived" if base is None else ("dataset" if base.value is not None else "image")
    a = spec.attributes.get(attr)
    if a is None:
        return "-"
    if a.level:
        return a.level
    return "dataset" if a.value is not None and a.column is None else "image"


def coverage_matrix(specs: list[str] | None = None):
    """Datasets x protected attributes: how each attribute is recorded in each spec.

    Cells: ``image`` (recorded per image or patient), ``dataset`` (one value for the whole
    dataset, e.g. the country of a single-hospital dataset), ``-`` (not recorded). Compare
    Table 2 of Jin et al., arXiv 2502.16841: most public medical imaging datasets lack most
    demographics.

    Returns
    -------
    pandas.DataFrame, one row per dataset (index ``dataset``), one column per attribute, plus
    ``n_recorded`` (attributes recorded per image).
    """
    import pandas as pd

    names = specs or [n for n in list_specs()
                      if n not in READER_SPECS and get_spec(n).same_as is None]
    rows = []
    for n in names:
        spec = get_spec(n)
        row = {"dataset": spec.name}
        for attr in COVERAGE_ATTRIBUTES:
            lvl = _level(spec, attr)
            row[attr] = "-" if lvl == "derived" else lvl
        row["n_recorded"] = sum(row[a] in ("image", "patient") for a in COVERAGE_ATTRIBUTES)
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset")
