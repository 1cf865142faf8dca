"""The registry of dataset specs: the shipped ``data/specs/*.yaml`` (read on first use) and
the ones a user registers; adding a dataset is one YAML file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import ValidationError

from .._errors import FairfoundryError, did_you_mean
from ._spec_schema import DatasetSpec

__all__ = ["SPECS", "get_spec", "list_specs", "load_spec_file", "register_spec"]

log = logging.getLogger(__name__)


#: specs by name, filled from ``data/specs/*.yaml`` on first use (and by :func:`register_spec`).
SPECS: dict[str, DatasetSpec] = {}
_LOADED = {"done": False}


def load_spec_file(path: str | os.PathLike) -> DatasetSpec:
    """Parse and validate one spec YAML file (errors name the file and the bad key)."""
    from .._io import read_yaml_mapping

    path = Path(path)
    raw = read_yaml_mapping(path, what="spec")
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        from .._values import pydantic_error

        raise pydantic_error(exc, where=f"spec {path}", model=DatasetSpec) from exc


def register_spec(spec: DatasetSpec | str | os.PathLike, *, replace: bool = False) -> DatasetSpec:
    """Add a spec (object or YAML path) to the registry; a name may be registered once."""
    _ensure_loaded()
    if not isinstance(spec, DatasetSpec):
        spec = load_spec_file(spec)
    if spec.name in SPECS and not replace:
        raise FairfoundryError(f"dataset spec {spec.name!r} registered twice")
    SPECS[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    if _LOADED["done"]:
        return
    from importlib import resources

    folder = resources.files(__package__).joinpath("specs")
    found: dict[str, DatasetSpec] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            spec = load_spec_file(Path(str(entry)))
            if spec.name in found:
                raise FairfoundryError(f"dataset spec {spec.name!r} defined twice")
            found[spec.name] = spec
    for name, spec in found.items():
        SPECS.setdefault(name, spec)
    _LOADED["done"] = True


def list_specs() -> list[str]:
    """Names of all registered dataset specs, sorted."""
    _ensure_loaded()
    return sorted(SPECS)


def get_spec(name: str | os.PathLike) -> DatasetSpec:
    """A registered spec by name, or a spec read from a YAML path."""
    _ensure_loaded()
    text = str(name)
    if text.endswith((".yaml", ".yml")):
        return load_spec_file(text)
    key = text.lower().replace("_", "-")
    aliases = {s.replace("-", ""): s for s in SPECS}
    if key in SPECS:
        return SPECS[key]
    if key.replace("-", "") in aliases:
        return SPECS[aliases[key.replace("-", "")]]
    partial = [s for s in list_specs() if key.replace("-", "") in s.replace("-", "")]
    hint = did_you_mean(text, list_specs(), what="known datasets")
    if len(partial) == 1 and "did you mean" not in (hint or ""):
        hint = f"did you mean {partial[0]!r}? " + (hint or "")
    raise FairfoundryError(f"unknown dataset {name!r}", hint=hint)


