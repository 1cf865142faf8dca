"""Adaptation of foundation models: heads on cached embeddings, full / partial fine-tuning, LoRA, zero-shot.

Everything trains through the one loop in :mod:`fairfoundry.adapt._loop` (:class:`Trainer`
with :class:`Hook` s), so every mitigation is a small hook, not a copy of the loop.
"""

from ._heads import HeadClassifier, build_head, encode_groups
from ._images import EncoderClassifier, ImageClassifier, ImageDataset, fit_images, predict_images
from ._loop import (
    ArrayData,
    Hook,
    SupervisedObjective,
    TrainConfig,
    Trainer,
    TrainResult,
    resolve_device,
)
from ._lora import (
    DEFAULT_TARGETS,
    apply_lora,
    lora_parameters,
    merge_lora,
    trainable_share,
    unmerge_lora,
)
from ._partial import find_blocks, freeze_all_but_last_blocks
from ._selection import CRITERIA, auc, dto, pareto_front, selection_scores
from ._zeroshot import DEFAULT_TEMPLATES, CLIPAdapterClassifier, text_classifier, zero_shot_scores


def __getattr__(name):  # LoRALinear is a torch class, built on first use
    if name == "LoRALinear":
        from . import _lora

        return _lora.LoRALinear
    raise AttributeError(name)


__all__ = [
    "DEFAULT_TARGETS",
    "DEFAULT_TEMPLATES",
    "CLIPAdapterClassifier",
    "EncoderClassifier",
    "ImageClassifier",
    "ImageDataset",
    "apply_lora",
    "find_blocks",
    "fit_images",
    "freeze_all_but_last_blocks",
    "lora_parameters",
    "merge_lora",
    "predict_images",
    "text_classifier",
    "trainable_share",
    "unmerge_lora",
    "zero_shot_scores",
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
