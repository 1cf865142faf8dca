"""Shared fixtures: run the CLI in-process, locate test data, keep torch to one thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")

TESTS_DIR = Path(__file__).resolve().parent
DATA_DIR = TESTS_DIR / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``tests/data``: small real public data with provenance (see its README)."""
    return DATA_DIR


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("sim_x")`` imports ``benchmarks/sim_x.py`` (not a package), so a test runs the
    same simulation as the benchmark script, at a smaller size."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, TESTS_DIR.parent / "benchmarks" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:  # shown by pytest on failure
        return f"CliResult(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


@pytest.fixture
def cli(capsys):
    """Run ``fairfoundry ARGS...`` in-process; returns ``CliResult(code, out, err)``."""
    from fairfoundry.cli import main

    def run(*args: str | os.PathLike) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
