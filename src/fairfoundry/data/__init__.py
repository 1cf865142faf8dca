"""Data layer: manifests, dataset specs, readers, harmonised protected attributes, splits."""

from ._bins import bin_labels, bin_values, parse_bins
from ._images import IMAGE_SUFFIXES, load_image

__all__ = ["IMAGE_SUFFIXES", "bin_labels", "bin_values", "load_image", "parse_bins"]
