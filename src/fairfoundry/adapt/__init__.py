"""Adaptation of foundation models: heads on cached embeddings, fine-tuning, LoRA, zero-shot.

Everything trains through the one loop in :mod:`fairfoundry.adapt._loop` (:class:`Trainer`
with :class:`Hook` s), so every mitigation is a small hook, not a copy of the loop.
"""

from ._heads import HeadClassifier, build_head, encode_groups
from ._loop import (
    ArrayData,
    Hook,
    SupervisedObjective,
    TrainConfig,
    Trainer,
    TrainResult,
    resolve_device,
)
from ._selection import CRITERIA, auc, dto, pareto_front, selection_scores

__all__ = [
    "CRITERIA",
    "HeadClassifier",
    "auc",
    "build_head",
    "dto",
    "encode_groups",
    "pareto_front",
    "selection_scores",
    "ArrayData",
    "Hook",
    "SupervisedObjective",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "resolve_device",
]
