"""Benchmarks: experiments with known answers (known-bias data), method comparisons, grids of
encoders x datasets x adaptations x mitigations x label fractions x seeds (local or Ray) with a
DuckDB results store, and the statistics that rank methods across datasets.

Names are imported from their private module on first use, so that a grid cell running in a Ray
worker (which imports :mod:`fairfoundry.bench._grid`, and with it this package) imports only what
the cell uses, not the studies, the statistics or the known-bias benchmarks.
"""

from __future__ import annotations

import importlib

#: public name -> private module of this package that defines it
_LAZY = {
    **dict.fromkeys(("BASELINE_FILES", "baseline_audit"), "_baseline"),
    **dict.fromkeys(("IMPACT_FILES", "curation_impact"), "_curation_impact"),
    **dict.fromkeys(("GRID_FILES", "AdaptationEntry", "Cell", "DatasetEntry", "GridSpec", "grid_cells", "load_grid",
                     "run_cell", "run_grid"), "_grid"),
    **dict.fromkeys(("KNOWNBIAS_METRICS", "KnownBiasData", "inject_marker", "make_knownbias_features",
                     "make_knownbias_images", "run_knownbias_benchmark", "run_knownbias_image_benchmark"),
                    "_knownbias"),
    **dict.fromkeys(("FriedmanResult", "average_ranks", "friedman_from_ranks", "friedman_test", "nemenyi_cd",
                     "plot_cd_diagram"), "_rank"),
    **dict.fromkeys(("ResultsStore", "leaderboard", "paired_differences", "simultaneous", "spread_over_seeds"),
                   "_store"),
    **dict.fromkeys(("STUDIES", "StudyOptions", "ham10000_sites", "register_study", "run_study"), "_studies"),
    **dict.fromkeys(("PILOT_FILES", "synthetic_pilot"), "_synthetic_pilot"),
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
