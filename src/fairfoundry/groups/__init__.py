"""Protected groups: the one place where attribute values become group codes and names.

Layer 0 (numpy and pandas only). Every other package (metrics, evaluation, audit, adapt,
mitigate, curate, monitor, ...) builds its groups with these functions, so that a group has one
name everywhere:

- one missing token, :data:`MISSING` (``unknown``): missing values are a group, never dropped;
- one intersection naming, ``sex=female & age=60-79`` (:func:`intersection_name`), reported
  under the attribute ``sex&age`` (:func:`intersection_attribute`);
- bins parsed once (:func:`parse_bins`), left-closed, labelled ``<40, 40-59, 60-79, 80+`` and
  ordered numerically (:func:`group_sort_key`); one default age binning,
  :data:`DEFAULT_AGE_EDGES` (20, 40, 60, 80), configurable everywhere.
"""

from ._bins import DEFAULT_AGE_EDGES, bin_labels, bin_values, default_edges, parse_bins, parse_edges
from ._encode import (
    attribute_groups,
    auto_bin_columns,
    combine_groups,
    encode_groups,
    group_labels,
    intersect_groups,
)
from ._names import (
    ATTRIBUTE_SEP,
    MISSING,
    SEP,
    group_sort_key,
    intersection_attribute,
    intersection_name,
    is_known,
    sort_groups,
    split_intersection,
)

__all__ = [
    "ATTRIBUTE_SEP", "DEFAULT_AGE_EDGES", "MISSING", "SEP", "attribute_groups", "auto_bin_columns",
    "bin_labels", "bin_values", "combine_groups", "default_edges", "encode_groups",
    "group_labels", "group_sort_key", "intersect_groups", "intersection_attribute",
    "intersection_name", "is_known", "parse_bins", "parse_edges", "sort_groups", "split_intersection",
]
