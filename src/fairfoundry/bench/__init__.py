"""Benchmarks: experiments with known answers (known-bias data) and method comparisons."""

from ._baseline import BASELINE_FILES, baseline_audit
from ._rank import (
    FriedmanResult,
    average_ranks,
    friedman_from_ranks,
    friedman_test,
    nemenyi_cd,
    plot_cd_diagram,
)
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
    "FriedmanResult",
    "average_ranks",
    "friedman_from_ranks",
    "friedman_test",
    "nemenyi_cd",
    "plot_cd_diagram",
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
