"""Every docstring example in fairfoundry.metrics runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["_bootstrap", "_calibration", "_confusion", "_engine", "_ranking", "_summary"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(f"fairfoundry.metrics.{name}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name != "_bootstrap":
        assert result.attempted > 0
