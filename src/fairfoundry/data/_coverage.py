"""Which protected attributes each shipped dataset spec records (the coverage matrix)."""

from __future__ import annotations

import logging

from ._spec_registry import get_spec, list_specs
from ._spec_schema import DatasetSpec

__all__ = ["READER_SPECS", "COVERAGE_ATTRIBUTES", "coverage_matrix"]

log = logging.getLogger(__name__)


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

