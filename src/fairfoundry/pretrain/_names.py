"""Names of the registered objectives, found without importing torch.

The CLI's ``--objective`` help and the config docs need the names, but ``fairfoundry --help``
must stay fast, so the objective modules (which import torch) cannot be imported for it.
Each objective module declares itself with ``@register("name")``; this module reads those
decorators from the package's source files, and :mod:`._registry` imports exactly the modules
found here. Adding an objective therefore stays one file; ``tests/pretrain`` checks that the
names found here equal :data:`~fairfoundry.pretrain.OBJECTIVES`.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

__all__ = ["objective_modules", "objective_names"]

_REGISTER = re.compile(r'^@register\(\s*["\']([A-Za-z0-9_\-]+)["\']\s*\)', re.MULTILINE)


@functools.cache
def objective_modules() -> dict[str, str]:
    """``{objective name: module name}`` for every ``@register("...")`` in this package."""
    found: dict[str, str] = {}
    for path in sorted(Path(__file__).parent.glob("_*.py")):
        if path.name in ("__init__.py", "_names.py"):
            continue
        for name in _REGISTER.findall(path.read_text(encoding="utf-8")):
            found[name] = path.stem
    return found


def objective_names() -> list[str]:
    """Registered objective names, in the order of their modules and declarations."""
    return list(objective_modules())
