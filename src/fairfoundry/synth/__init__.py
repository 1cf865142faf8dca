"""Synthetic data for under-represented groups, with quality control (layer 2)."""

from ._api import (
    GENERATOR_FILES,
    SAMPLE_FILES,
    load_generator,
    read_generator_info,
    sample_generator,
    train_generator,
)
from ._conditions import CellRequest, Conditions, cell_name, parse_cells
from ._diffusion import DiffusionConfig, DiffusionGenerator
from ._metrics import (
    copy_rate,
    expected_coverage,
    frechet_distance,
    kernel_inception_distance,
    nn_distance_ratio,
    prdc,
)
from ._qc import QC_FILES, embed_images, run_qc, wilson_interval
from ._registry import GENERATORS, get_generator, list_generators, register_generator
from ._toy import TOY_CELLS, ToyShapes, make_toy_shapes, write_toy_manifest

__all__ = [
    "CellRequest",
    "GENERATOR_FILES",
    "SAMPLE_FILES",
    "load_generator",
    "read_generator_info",
    "sample_generator",
    "train_generator",
    "Conditions",
    "DiffusionConfig",
    "DiffusionGenerator",
    "GENERATORS",
    "QC_FILES",
    "copy_rate",
    "embed_images",
    "expected_coverage",
    "frechet_distance",
    "kernel_inception_distance",
    "nn_distance_ratio",
    "prdc",
    "run_qc",
    "wilson_interval",
    "TOY_CELLS",
    "ToyShapes",
    "cell_name",
    "get_generator",
    "list_generators",
    "make_toy_shapes",
    "parse_cells",
    "register_generator",
    "write_toy_manifest",
]
