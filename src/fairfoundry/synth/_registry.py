"""The generator registry: plain dict filled by :func:`register_generator`."""

from __future__ import annotations

from .._errors import FairfoundryError

__all__ = ["GENERATORS", "register_generator", "get_generator", "list_generators"]

#: generator name -> class (see :func:`register_generator`)
GENERATORS: dict[str, type] = {}


def register_generator(name: str):
    """Class decorator adding a generator to :data:`GENERATORS` under ``name``.

    A generator class has ``Config`` (a dataclass of its settings), ``fit(images, codes, *, conditions,
    out, resume, progress)`` and ``sample(codes, *, seed, ...)``; see :class:`DiffusionGenerator`.
    """

    def deco(cls):
        if name in GENERATORS:
            raise ValueError(f"generator {name!r} registered twice")
        GENERATORS[name] = cls
        cls.name = name
        return cls

    return deco


def get_generator(name: str) -> type:
    """The generator class registered as ``name`` (a :class:`FairfoundryError` names the choices)."""
    from . import _diffusion  # noqa: F401  (fills the registry)

    if name not in GENERATORS:
        raise FairfoundryError(f"unknown generator {name!r}", hint=f"choose one of: {', '.join(sorted(GENERATORS))}")
    return GENERATORS[name]


def list_generators() -> list[str]:
    """Names of the registered generators."""
    from . import _diffusion  # noqa: F401

    return sorted(GENERATORS)
