"""Adaptation of foundation models: heads on cached embeddings, fine-tuning, LoRA, zero-shot.

Everything trains through the one loop in :mod:`fairfoundry.adapt._loop` (:class:`Trainer`
with :class:`Hook` s), so every mitigation is a small hook, not a copy of the loop.
"""

from ._loop import (
    ArrayData,
    Hook,
    SupervisedObjective,
    TrainConfig,
    Trainer,
    TrainResult,
    resolve_device,
)

__all__ = [
    "ArrayData",
    "Hook",
    "SupervisedObjective",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "resolve_device",
]
