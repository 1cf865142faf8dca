"""Data layer: manifests, dataset specs, readers, harmonised protected attributes, splits."""

from ._bins import bin_labels, bin_values, parse_bins
from ._images import IMAGE_SUFFIXES, load_image
from ._manifest import (
    CANONICAL_COLUMNS,
    ID_COLUMNS,
    PROTECTED_ATTRIBUTES,
    read_manifest,
    validate_manifest,
    write_manifest,
)

__all__ = [
    "CANONICAL_COLUMNS",
    "ID_COLUMNS",
    "IMAGE_SUFFIXES",
    "PROTECTED_ATTRIBUTES",
    "bin_labels",
    "bin_values",
    "load_image",
    "parse_bins",
    "read_manifest",
    "validate_manifest",
    "write_manifest",
]
