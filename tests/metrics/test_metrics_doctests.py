"""Every docstring example in fairfoundry.metrics runs and prints what it says, and every public
metric's docstring states its formula and its source."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re

import pytest

import fairfoundry.metrics as fm

MODULES = sorted(m.name for m in pkgutil.iter_modules(fm.__path__))
#: helpers that are not metrics (no formula of their own)
HELPERS = {"confusion_counts", "group_values", "rates_from_counts", "register_summary",
           "intersect_groups", "choose_threshold", "parse_threshold"}
METRICS = [name for name in fm.__all__
           if inspect.isfunction(getattr(fm, name)) and name not in HELPERS]
#: how a docstring names where its definition comes from
SOURCE = re.compile(r"Source|fairlearn|scikit-learn|et al\.|Efron|FairCLIP|MEDFAIR|FairMedFM")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(f"fairfoundry.metrics.{name}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name in ("_calibration", "_confusion", "_engine", "_ranking", "_summary", "_thresholds"):
        assert result.attempted > 0


def test_modules_are_discovered():
    assert {"_confusion", "_ranking", "_calibration", "_summary", "_thresholds"} <= set(MODULES)


@pytest.mark.parametrize("name", METRICS)
def test_metric_docstring_states_formula_and_source(name):
    doc = inspect.getdoc(getattr(fm, name)) or ""
    assert SOURCE.search(doc), f"{name}: no source"
    assert ":math:" in doc or "=" in doc.split("Examples")[0], f"{name}: no formula"
    if getattr(fm, name).__module__ not in ("fairfoundry.metrics._bootstrap",
                                            "fairfoundry.metrics._engine"):
        assert ">>>" in doc, f"{name}: no example"  # point metrics show a runnable example
