"""Every docstring example in fairfoundry.curate runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import fairfoundry.curate as fc

MODULES = sorted(m.name for m in pkgutil.iter_modules(fc.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(f"fairfoundry.curate.{name}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
