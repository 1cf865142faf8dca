"""The mitigation registry, filled by the :func:`register` decorator.

Each mitigation is one class in one module. ``stage`` says where it acts:

- ``"pre"``: changes what the model sees (sample weights, resampling); a training hook;
- ``"in"``: changes the training objective or the model (GroupDRO, adversary, penalties,
  per-group heads, per-group normalisation, distribution alignment); a training hook;
- ``"post"``: changes the scores of a trained model, fitted on validation predictions
  (group thresholds, group calibration); ``fit(scores, y, groups)`` / ``predict_proba``.

``"erm"`` (plain empirical risk minimisation) is the reference every method is compared with.
The CLI's ``--method`` choices and the docs table read :data:`MITIGATIONS`. Adding a method is
one new module of this package using ``@register(...)`` (found without an import list, see
:func:`fairfoundry._plugins.discover`), or, from another package, a module declared under the
entry point group ``fairfoundry.mitigations``.
"""

from __future__ import annotations

from typing import Any

from .._errors import FairfoundryError, did_you_mean

__all__ = ["MITIGATIONS", "register", "make_mitigation", "list_mitigations", "load_mitigations",
           "methods_table",
           "parse_method_args"]

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


def load_mitigations() -> dict[str, type]:
    """:data:`MITIGATIONS` with every method module imported (this package's and plugins')."""
    from .._plugins import ENTRY_POINT_GROUPS, discover

    discover(__package__, marker="@register(", group=ENTRY_POINT_GROUPS["mitigations"])
    return MITIGATIONS


def list_mitigations() -> list[dict[str, str]]:
    """One dict per mitigation: name, stage, first docstring line."""
    load_mitigations()
    rows = []
    for name, cls in MITIGATIONS.items():
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append({"name": name, "stage": cls.stage, "summary": doc[0] if doc else ""})
    return rows


def methods_table() -> str:
    """The Markdown table of every registered method (name, stage, first docstring line),
    generated from the registry; ``docs/adapt.md``'s table is checked against it by a test."""
    rows = ["| name | stage | summary |", "|---|---|---|"]
    for r in list_mitigations():
        summary = r["summary"].replace("|", "\\|")
        rows.append(f"| `{r['name']}` | {r['stage'] if r['stage'] != 'none' else '—'} | {summary} |")
    return "\n".join(rows) + "\n"


def parse_method_args(args: dict[str, Any]) -> dict[str, Any]:
    """Turn ``{"eta": "0.1", "variant": "eo"}`` from ``--method-arg`` into typed values
    (:func:`fairfoundry._values.parse_value`)."""
    from .._values import parse_value

    return {k.replace("-", "_"): parse_value(v) for k, v in (args or {}).items()}


def make_mitigation(name: str, **kwargs):
    """Instantiate a registered mitigation; unknown names or arguments give a clear error."""
    if name not in MITIGATIONS:
        load_mitigations()
    if name not in MITIGATIONS:
        raise FairfoundryError(f"unknown mitigation method {name!r}", hint=did_you_mean(name, MITIGATIONS, what="methods"))
    from .._values import check_arguments

    cls = MITIGATIONS[name]
    kwargs = check_arguments(cls.__init__, kwargs, option="--method-arg",
                             what=f"method {name!r}", skip=("self", "n_groups"))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise FairfoundryError(f"bad argument for method {name!r}: {exc}") from exc
