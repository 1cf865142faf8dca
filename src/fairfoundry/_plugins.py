"""Registry discovery without hand-kept import lists.

A registry (encoder backends, mitigations, ...) is a dict filled by a decorator. Its modules are
found, not listed: :func:`discover` imports every module of a package whose source uses the
registering decorator, and every module a third-party distribution declares under an entry
point group (``[project.entry-points."fairfoundry.mitigations"]`` in its ``pyproject.toml``).
Adding one is therefore one file, in fairfoundry or in another package.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from importlib import metadata

from ._errors import FairfoundryError

__all__ = ["discover", "ENTRY_POINT_GROUPS"]

log = logging.getLogger(__name__)

#: entry point group of each registry
ENTRY_POINT_GROUPS = {"backends": "fairfoundry.backends", "mitigations": "fairfoundry.mitigations"}

_DONE: set[tuple[str, str]] = set()


def _package_modules(package: str, marker: str) -> list[str]:
    pkg = importlib.import_module(package)
    names = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        spec = info.module_finder.find_spec(f"{package}.{info.name}", None)
        origin = getattr(spec, "origin", None)
        if not origin or not origin.endswith(".py"):
            continue
        try:
            with open(origin, encoding="utf-8") as fh:
                if marker in fh.read():
                    names.append(f"{package}.{info.name}")
        except OSError:  # pragma: no cover - unreadable module file
            continue
    return names


def discover(package: str, *, marker: str, group: str) -> None:
    """Import the registering modules of ``package`` (their source contains ``marker``, e.g.
    ``@register_backend(``) and the modules named by entry points of ``group``.

    Entry points are re-read on every call (cheap), so a plugin installed or put on
    ``sys.path`` while the process runs is seen; the package scan runs once.
    """
    if (package, marker) not in _DONE:
        for name in _package_modules(package, marker):
            importlib.import_module(name)
        _DONE.add((package, marker))
    for ep in metadata.entry_points(group=group):
        try:
            importlib.import_module(ep.value.split(":")[0])
        except ImportError as exc:
            raise FairfoundryError(
                f"plugin {ep.name!r} ({ep.value}) of {group} cannot be imported: {exc}",
                hint="install its dependencies, or uninstall the plugin") from exc
