"""Benchmarks: experiments with known answers (known-bias data) and method comparisons."""

from ._baseline import BASELINE_FILES, baseline_audit
from ._knownbias import (
    KNOWNBIAS_METRICS,
    KnownBiasData,
    inject_marker,
    make_knownbias_features,
    make_knownbias_images,
    run_knownbias_benchmark,
    run_knownbias_image_benchmark,
)

__all__ = [
    "BASELINE_FILES",
    "baseline_audit",
    "KNOWNBIAS_METRICS",
    "KnownBiasData",
    "inject_marker",
    "make_knownbias_features",
    "make_knownbias_images",
    "run_knownbias_benchmark",
    "run_knownbias_image_benchmark",
]
