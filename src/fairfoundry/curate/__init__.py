"""Data curation (layer 2): duplicates, clustering-based balanced curation, proxy groups for
unrecorded attributes, slice discovery, and the ``curation-impact`` experiment.

See ``docs/curate.md``. Papers re-implemented (no code copied; their reference code is
CC-BY-NC): SemDeDup (Abbas et al. 2023), hierarchical k-means with resampling (Vo et al. 2024),
Domino (Eyuboglu et al. 2022), SliceLine (Sagadeeva & Boehm 2021).
"""

from ._dedup import (
    DedupResult,
    find_duplicates,
    image_signatures,
    near_duplicates,
    semantic_duplicates,
)
from ._inputs import aligned_embeddings, check_count, read_curate_manifest
from ._kmeans import HierarchicalKMeans, balanced_allocation, kmeans
from ._proxies import (
    PROXY_COLUMN,
    ProxyGroups,
    adjusted_mutual_info,
    adjusted_rand,
    attribute_codes,
    proxy_agreement,
    proxy_groups,
)
from ._runs import run_balance, run_dedup, run_proxies, run_slices
from ._sliceline import TabularSlices, sliceline_score, sliceline_slices
from ._slices import SliceResult, discover_slices, wilson_interval

__all__ = [
    "PROXY_COLUMN",
    "DedupResult",
    "HierarchicalKMeans",
    "ProxyGroups",
    "SliceResult",
    "TabularSlices",
    "adjusted_mutual_info",
    "adjusted_rand",
    "aligned_embeddings",
    "attribute_codes",
    "balanced_allocation",
    "check_count",
    "discover_slices",
    "find_duplicates",
    "image_signatures",
    "kmeans",
    "near_duplicates",
    "proxy_agreement",
    "proxy_groups",
    "read_curate_manifest",
    "run_balance",
    "run_dedup",
    "run_proxies",
    "run_slices",
    "semantic_duplicates",
    "sliceline_score",
    "sliceline_slices",
    "wilson_interval",
]
