"""Data curation: duplicates, balanced curation, proxy groups, slice discovery."""

from ._kmeans import HierarchicalKMeans, balanced_allocation, kmeans

__all__ = ["HierarchicalKMeans", "balanced_allocation", "kmeans"]
