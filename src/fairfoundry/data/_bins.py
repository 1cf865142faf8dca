"""Binning of continuous attributes lives in :mod:`fairfoundry.groups` (re-exported here)."""

from ..groups._bins import DEFAULT_AGE_EDGES, bin_labels, bin_values, parse_bins

__all__ = ["bin_values", "bin_labels", "parse_bins", "DEFAULT_AGE_EDGES"]
