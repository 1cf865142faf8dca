"""The filled objective registry: importing this module registers every built-in objective
(the modules that :func:`~._names.objective_modules` finds)."""

from __future__ import annotations

import importlib

from ._names import objective_modules
from ._objective import OBJECTIVES

for _module in sorted(set(objective_modules().values())):
    importlib.import_module(f".{_module}", __package__)

__all__ = ["OBJECTIVES"]
