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

The pieces live in one module per idea: the schema (:mod:`._spec_schema`), the registry
(:mod:`._spec_registry`), reading the files (:mod:`._spec_tables`), harmonising them into a
manifest (:mod:`._spec_load`) and the coverage matrix (:mod:`._coverage`).
"""

from __future__ import annotations

from ._coverage import COVERAGE_ATTRIBUTES, READER_SPECS, coverage_matrix
from ._spec_load import DatasetLoad, load_dataset
from ._spec_registry import SPECS, get_spec, list_specs, load_spec_file, register_spec
from ._spec_schema import (
    ATTRIBUTE_HARMONISERS,
    AttributeSpec,
    DatasetSpec,
    DeriveSpec,
    LabelSpec,
    SourceSpec,
    SplitSpec,
    TableSpec,
    UnpivotSpec,
)

__all__ = [
    "AttributeSpec",
    "DatasetSpec",
    "DatasetLoad",
    "DeriveSpec",
    "LabelSpec",
    "SourceSpec",
    "SplitSpec",
    "TableSpec",
    "UnpivotSpec",
    "ATTRIBUTE_HARMONISERS",
    "COVERAGE_ATTRIBUTES",
    "READER_SPECS",
    "SPECS",
    "get_spec",
    "list_specs",
    "load_dataset",
    "load_spec_file",
    "register_spec",
    "coverage_matrix",
]
