"""Small tensor helpers shared by the in-processing mitigations."""

from __future__ import annotations


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
