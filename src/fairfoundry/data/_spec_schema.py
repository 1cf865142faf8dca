"""The schema of a dataset spec (pydantic, ``extra="forbid"``): which files, ids, labels,
attributes with their value maps, split rule. One YAML file per dataset validates against
:class:`DatasetSpec`."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._harmonise import (
    country_to_iso3,
    fitzpatrick,
    harmonise_ethnicity,
    harmonise_race,
    harmonise_sex,
)

__all__ = ["AttributeSpec", "DatasetSpec", "DeriveSpec", "LabelSpec", "SourceSpec", "SplitSpec", "TableSpec", "UnpivotSpec", "ATTRIBUTE_HARMONISERS"]

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

