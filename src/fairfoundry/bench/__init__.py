"""Benchmarks: experiments with known answers (known-bias data), method comparisons, grids of
encoders x datasets x adaptations x mitigations x label fractions x seeds (local or Ray) with a
DuckDB results store, and the statistics that rank methods across datasets."""

from ._baseline import BASELINE_FILES, baseline_audit
from ._curation_impact import IMPACT_FILES, curation_impact
from ._grid import (
    GRID_FILES,
    AdaptationEntry,
    Cell,
    DatasetEntry,
    GridSpec,
    grid_cells,
    load_grid,
    run_cell,
    run_grid,
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
from ._rank import (
    FriedmanResult,
    average_ranks,
    friedman_from_ranks,
    friedman_test,
    nemenyi_cd,
    plot_cd_diagram,
)
from ._store import ResultsStore, leaderboard, paired_differences, spread_over_seeds
from ._studies import STUDIES, StudyOptions, ham10000_sites, register_study, run_study
from ._synthetic_pilot import PILOT_FILES, synthetic_pilot

__all__ = [
    "PILOT_FILES",
    "synthetic_pilot",
    "IMPACT_FILES",
    "curation_impact",
    "GRID_FILES",
    "AdaptationEntry",
    "Cell",
    "DatasetEntry",
    "GridSpec",
    "ResultsStore",
    "STUDIES",
    "StudyOptions",
    "ham10000_sites",
    "register_study",
    "run_study",
    "spread_over_seeds",
    "grid_cells",
    "leaderboard",
    "load_grid",
    "paired_differences",
    "run_cell",
    "run_grid",
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
