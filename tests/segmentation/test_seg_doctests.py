"""Every docstring example of fairfoundry.segmentation runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import fairfoundry.segmentation as fs

MODULES = [f"fairfoundry.segmentation.{m.name}" for m in pkgutil.iter_modules(fs.__path__)]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name.endswith("._metrics"):
        assert result.attempted >= 6
