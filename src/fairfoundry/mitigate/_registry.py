"""The mitigation registry, filled by the :func:`register` decorator.

Each mitigation is one class in one module. ``stage`` says where it acts:

- ``"pre"``: changes what the model sees (sample weights, resampling); a training hook;
- ``"in"``: changes the training objective or the model (GroupDRO, adversary, penalties,
  per-group heads, per-group normalisation, distribution alignment); a training hook;
- ``"post"``: changes the scores of a trained model, fitted on validation predictions
  (group thresholds, group calibration); ``fit(scores, y, groups)`` / ``predict_proba``.

``"erm"`` (plain empirical risk minimisation) is the reference every method is compared with.
The CLI's ``--method`` choices and the docs table read :data:`MITIGATIONS`.
"""

from __future__ import annotations

from typing import Any

from .._errors import FairfoundryError, did_you_mean

__all__ = ["MITIGATIONS", "register", "make_mitigation", "list_mitigations", "parse_method_args"]

MITIGATIONS: dict[str, type] = {}


def register(name: str, *, stage: str):
    """Class decorator adding a mitigation under ``name`` (``stage``: pre, in or post)."""
    if stage not in ("pre", "in", "post", "none"):
        raise ValueError(f"stage must be pre, in, post or none, got {stage!r}")

    def deco(cls):
        if name in MITIGATIONS:
            raise ValueError(f"mitigation {name!r} registered twice")
        MITIGATIONS[name] = cls
        cls.name = name
        cls.stage = stage
        return cls

    return deco


def list_mitigations() -> list[dict[str, str]]:
    """One dict per mitigation: name, stage, first docstring line."""
    rows = []
    for name, cls in MITIGATIONS.items():
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append({"name": name, "stage": cls.stage, "summary": doc[0] if doc else ""})
    return rows


def _coerce(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    return value


def parse_method_args(args: dict[str, Any]) -> dict[str, Any]:
    """Turn ``{"eta": "0.1", "variant": "eo"}`` from ``--method-arg`` into typed values."""
    return {k.replace("-", "_"): _coerce(v) for k, v in (args or {}).items()}


def make_mitigation(name: str, **kwargs):
    """Instantiate a registered mitigation; unknown names or arguments give a clear error."""
    import inspect

    if name not in MITIGATIONS:
        raise FairfoundryError(f"unknown mitigation method {name!r}", hint=did_you_mean(name, MITIGATIONS, what="methods"))
    cls = MITIGATIONS[name]
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p not in ("self", "n_groups")]
    bad = [k for k in kwargs if k not in valid]
    if bad:
        raise FairfoundryError(f"method {name!r} has no argument {bad[0]!r}",
                               hint=f"its arguments are: {', '.join(valid) or '(none)'}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise FairfoundryError(f"bad argument for method {name!r}: {exc}") from exc
