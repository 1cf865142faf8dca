"""Typed ``KEY=VALUE`` options and pydantic errors as user errors: each written once.

Every ``--*-arg`` flag (``--model-arg``, ``--method-arg``, ``--loss-arg``, ...) and every
``--reference``-style option is parsed by :func:`parse_key_values`; values are typed by
:func:`parse_value`, and :func:`check_arguments` compares them with the receiving callable's
signature, so ``--model-arg img_size=abc`` says which argument and what type it needs.
Configuration models (pydantic) become user errors through :func:`pydantic_error`, which names
nested keys as they are written in the YAML (``optimizer.lr``, ``methods[1].name``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from ._errors import FairfoundryError, did_you_mean

__all__ = ["parse_value", "parse_key_values", "check_arguments", "check_types", "pydantic_error",
           "key_path"]


def parse_value(raw: Any) -> Any:
    """A flag's text as a typed value: int, float, bool (``true``/``false``), None
    (``none``/``null``), a YAML list or mapping (``[0.2, 1.0]``), else the text.

    Examples
    --------
    >>> [parse_value(v) for v in ("64", "0.1", "1e-3", "true", "none", "[1, 2]", "eo")]
    [64, 0.1, 0.001, True, None, [1, 2], 'eo']
    """
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null", "~"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    if text[:1] in "[{":
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FairfoundryError(f"cannot parse {text!r}: {str(exc).splitlines()[0]}") from exc
    return text


def parse_key_values(items: Iterable[str] | None, *, option: str,
                     typed: bool = True) -> dict[str, Any]:
    """Parse repeated ``KEY=VALUE`` options into a dict (values typed by :func:`parse_value`
    unless ``typed=False``); a malformed item raises naming ``option``.

    Examples
    --------
    >>> parse_key_values(["img_size=64", "name=vit"], option="--model-arg")
    {'img_size': 64, 'name': 'vit'}
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise FairfoundryError(f"{option} expects KEY=VALUE, got {item!r}",
                                   hint=f"for example {option} name=value")
        out[key.strip()] = parse_value(value) if typed else value.strip()
    return out


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "text",
               list: "a list such as [1, 2]", tuple: "a list such as [1, 2]",
               dict: "a mapping such as {a: 1}"}


def _expected(param: inspect.Parameter) -> type | None:
    ann = param.annotation
    if isinstance(ann, str):  # postponed annotations: read the simple ones
        for t in (bool, int, float, str):
            if ann.split("|")[0].strip() == t.__name__:
                return t
    elif ann in _TYPE_WORDS:
        return ann
    d = param.default
    if d is not inspect.Parameter.empty and d is not None and type(d) in _TYPE_WORDS:
        return type(d)
    return None


def check_arguments(func: Callable, kwargs: dict[str, Any], *, option: str, what: str,
                    skip: Iterable[str] = ("self",)) -> dict[str, Any]:
    """Check ``kwargs`` against ``func``'s signature: unknown names (with the valid ones) and
    values of the wrong type (``--model-arg img_size='abc': img_size needs an integer``).
    ints are accepted for floats; returns ``kwargs`` with such ints converted.
    """
    params = {k: p for k, p in inspect.signature(func).parameters.items() if k not in set(skip)}
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = [k for k, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    for key, value in kwargs.items():
        if key not in params and not open_kwargs:
            raise FairfoundryError(f"{option} {key}={value!r}: {what} has no argument {key!r}",
                                   hint=did_you_mean(key, named, what="its arguments")
                                   if named else f"{what} takes no arguments")
    types = {k: _expected(p) for k, p in params.items()}
    return check_types(kwargs, {k: t for k, t in types.items() if t is not None}, option=option)


def check_types(kwargs: dict[str, Any], types: dict[str, type], *, option: str) -> dict[str, Any]:
    """Check each value of ``kwargs`` whose key is in ``types`` (None always passes); ints
    pass for floats (converted), anything passes for text (converted)."""
    out = dict(kwargs)
    for key, value in kwargs.items():
        want = types.get(key)
        if want is None or value is None:
            continue
        ok = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            out[key], ok = float(value), True
        if want in (list, tuple) and isinstance(value, (list, tuple)):
            ok = True
        if want is str and not isinstance(value, str):
            out[key], ok = str(value), True
        if not ok:
            raise FairfoundryError(f"{option} {key}={value!r}: {key} needs {_TYPE_WORDS[want]}",
                                   hint=f"for example {option} {key}={_example(want)}")
    return out


def _example(t: type) -> str:
    return {bool: "true", int: "64", float: "0.1", str: "name", list: "[1,2]", tuple: "[1,2]",
            dict: "{a: 1}"}[t]


def key_path(loc: Iterable) -> str:
    """A pydantic error location as written in YAML: ``methods[1].args.eta``.

    Examples
    --------
    >>> key_path(("optimizer", "lr")), key_path(("methods", 1, "name"))
    ('optimizer.lr', 'methods[1].name')
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def pydantic_error(exc, *, where: str, model=None) -> FairfoundryError:
    """One :class:`FairfoundryError` for a pydantic ``ValidationError``: the first problem,
    its key path (nested keys right), and for an unknown key the valid keys *at that level*.
    """
    err = exc.errors()[0]
    loc = tuple(err.get("loc") or ())
    path = key_path(loc)
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        level = model
        for part in loc[:-1]:
            if level is None or isinstance(part, int):
                continue
            fld = getattr(level, "model_fields", {}).get(part)
            ann = getattr(fld, "annotation", None)
            level = _model_of(ann)
        valid = list(getattr(level, "model_fields", {}) or [])
        hint = did_you_mean(str(loc[-1]), valid, what="valid keys here") if valid else None
        return FairfoundryError(f"{where}: unknown key {path!r}", hint=hint)
    if kind == "missing":
        return FairfoundryError(f"{where}: the required key {path!r} is missing")
    if not path:
        return FairfoundryError(f"{where}: {msg}")
    value = err.get("input")
    shown = f" (got {value!r})" if isinstance(value, (str, int, float, bool)) else ""
    return FairfoundryError(f"{where}: {path}: {msg}{shown}")


def _model_of(ann):
    """The pydantic model inside an annotation (``Model``, ``list[Model]``, ``Model | None``)."""
    import typing

    if ann is None:
        return None
    if hasattr(ann, "model_fields"):
        return ann
    for arg in typing.get_args(ann):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
