"""Small tensor helpers shared by the in-processing mitigations."""

from __future__ import annotations

from ..groups import MISSING as UNKNOWN

UNKNOWN_CHOICES = ("exclude", "group")


def logits_2d(out: dict):
    """The objective's logits as ``(b, k)``."""
    z = out["logits"]
    return z[:, None] if z.dim() == 1 else z


def labels_2d(batch: dict, like):
    """``batch["y"]`` as ``(b, k)`` float on the device of ``like``."""
    y = batch["y"].to(like.device, like.dtype)
    return y[:, None] if y.dim() == 1 else y


def n_groups_of(hook, trainer) -> int:
    """Number of groups: the hook's ``n_groups`` if set, else from the train data."""
    n = getattr(hook, "n_groups", None)
    if n:
        return int(n)
    return int(trainer.column("group").max()) + 1


def check_unknown(value: str) -> str:
    """Validate the ``unknown=`` option of the in-training fairness terms."""
    if value not in UNKNOWN_CHOICES:
        raise ValueError(f"unknown must be one of {', '.join(UNKNOWN_CHOICES)}, got {value!r}")
    return value


def is_unknown_group(name) -> bool:
    """A group whose attribute value is missing: ``unknown``, or an intersection with an ``unknown`` part
    (names from :mod:`fairfoundry.groups`: ``unknown``, ``age=unknown``, ``sex=female & age=unknown``)."""
    from ..groups import is_known, split_intersection

    name = str(name)
    return not is_known(name) or ("=" in name and any(v == UNKNOWN for _, v in split_intersection(name)))


def fairness_codes(hook, trainer, codes):
    """Group codes as the hook's fairness term sees them.

    With ``hook.unknown == "exclude"`` (the default) the codes of groups whose attribute is
    missing (:func:`is_unknown_group`, names from ``hook.group_names``, which the estimators set)
    become ``-1``: those samples still train the task loss but belong to no group of the fairness
    term. ``"group"`` keeps ``unknown`` as a protected group of its own. Evaluation shows
    ``unknown`` either way.
    """
    import torch

    names = getattr(hook, "group_names", None)
    if getattr(hook, "unknown", "group") != "exclude" or not names:
        return codes
    drop = torch.tensor([is_unknown_group(n) for n in names], device=codes.device)
    if not bool(drop.any()):
        return codes
    valid = (codes >= 0) & (codes < len(names))
    hit = torch.zeros_like(valid)
    hit[valid] = drop[codes[valid]]
    return torch.where(hit, torch.full_like(codes, -1), codes)


def torch_where_neg(codes, values):
    """``values`` where ``codes >= 0``, else -1."""
    import torch

    return torch.where(codes >= 0, values, torch.full_like(values, -1))
