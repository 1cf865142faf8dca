"""The filled objective registry: importing this module registers every built-in objective."""

from __future__ import annotations

from . import _clip, _dino, _ijepa, _mae, _simclr  # noqa: F401  (register on import)
from ._objective import OBJECTIVES

__all__ = ["OBJECTIVES"]
