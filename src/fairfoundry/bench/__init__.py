"""Benchmarks: experiments with known answers (known-bias data) and method comparisons."""

from ._knownbias import KnownBiasData, inject_marker, make_knownbias_features, make_knownbias_images

__all__ = ["KnownBiasData", "inject_marker", "make_knownbias_features", "make_knownbias_images"]
