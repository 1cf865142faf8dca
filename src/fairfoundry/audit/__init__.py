"""Dataset audit: representation, missingness, imbalance, geography, leakage, datasheet."""

from ._audit import SEP, Audit, audit_manifest, effective_groups, read_reference
from ._datasheet import OPEN_MARK, datasheet_markdown

__all__ = ["OPEN_MARK", "SEP", "Audit", "audit_manifest", "datasheet_markdown",
           "effective_groups", "read_reference"]
