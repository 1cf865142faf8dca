"""Every docstring example of fairfoundry.hallucination runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import fairfoundry.hallucination as fh

MODULES = [f"fairfoundry.hallucination.{m.name}" for m in pkgutil.iter_modules(fh.__path__)]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name.rsplit(".", 1)[1] in ("_labeler", "_metrics", "_zeroshot"):
        assert result.attempted > 0
