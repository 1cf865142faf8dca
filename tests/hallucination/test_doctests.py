"""Every docstring example of fairfoundry.hallucination and fairfoundry.segmentation runs."""

import doctest
import importlib
import pkgutil

import pytest

import fairfoundry.hallucination as fh
import fairfoundry.segmentation as fs

MODULES = [f"fairfoundry.hallucination.{m.name}" for m in pkgutil.iter_modules(fh.__path__)] + [
    f"fairfoundry.segmentation.{m.name}" for m in pkgutil.iter_modules(fs.__path__)]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_examples_exist_where_it_matters():
    attempted = {n: doctest.testmod(importlib.import_module(n)).attempted for n in MODULES}
    for n in ("_labeler", "_metrics", "_zeroshot"):
        assert attempted[f"fairfoundry.hallucination.{n}"] > 0
    assert attempted["fairfoundry.segmentation._metrics"] > 0
