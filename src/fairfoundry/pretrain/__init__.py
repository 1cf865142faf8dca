"""Pre-training: self-supervised and vision-language objectives, fairness-aware data selection,
knowledge agglomeration (multi-teacher distillation), the runner behind
``fairfoundry pretrain`` / ``fairfoundry distill``, and the periodic fairness probe of an encoder
while it trains (:class:`ProbeHook`, also used by ``fit``).

Objectives (registry :data:`OBJECTIVES`, one file each): ``mae``, ``simclr``, ``dino``,
``ijepa``, ``clip``, ``siglip``; their losses are plain functions in
:mod:`fairfoundry.pretrain.losses`. See ``docs/pretrain.md``.

Importing this package is cheap; torch is imported when a torch-based name is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "OBJECTIVES",
    "Objective",
    "register",
    "build_objective",
    "build_vit",
    "ViTBackbone",
    "Augment",
    "MODALITIES",
    "MAE",
    "SimCLR",
    "DINO",
    "IJEPA",
    "CLIP",
    "SigLIP",
    "BatchSampler",
    "CompositionTracker",
    "SAMPLING_MODES",
    "group_labels",
    "select_rows",
    "ImageBank",
    "load_manifest",
    "byte_tokenize",
    "PretrainConfig",
    "pretrain",
    "DistillConfig",
    "distill",
    "Teacher",
    "TimmTeacher",
    "EncoderTeacher",
    "DistillStudent",
    "cache_teacher_features",
    "teacher_group_scores",
    "load_pretrained_vit",
    "save_vit",
    "losses",
    "ProbeOptions",
    "ProbeData",
    "ProbeTracker",
    "ProbeHook",
    "load_probe_data",
    "probe_embeddings",
    "embed_inputs",
    "image_probe",
    "SELECT_CRITERIA",
    "write_run_report",
]

_LAZY = {
    "OBJECTIVES": "._registry",
    "Objective": "._objective",
    "register": "._objective",
    "build_objective": "._objective",
    "build_vit": "._backbone",
    "ViTBackbone": "._backbone",
    "Augment": "._augment",
    "MODALITIES": "._augment",
    "MAE": "._mae",
    "SimCLR": "._simclr",
    "DINO": "._dino",
    "IJEPA": "._ijepa",
    "CLIP": "._clip",
    "SigLIP": "._clip",
    "BatchSampler": "._sampling",
    "CompositionTracker": "._sampling",
    "SAMPLING_MODES": "._sampling",
    "group_labels": "._sampling",
    "select_rows": "._sampling",
    "ImageBank": "._data",
    "load_manifest": "._data",
    "byte_tokenize": "._data",
    "PretrainConfig": "._runner",
    "pretrain": "._runner",
    "DistillConfig": "._distill_runner",
    "distill": "._distill_runner",
    "Teacher": "._distill",
    "TimmTeacher": "._distill",
    "EncoderTeacher": "._distill",
    "DistillStudent": "._distill",
    "cache_teacher_features": "._distill",
    "teacher_group_scores": "._distill",
    "load_pretrained_vit": "._checkpoint",
    "save_vit": "._checkpoint",
    "ProbeOptions": "._probe",
    "ProbeData": "._probe",
    "ProbeTracker": "._probe",
    "ProbeHook": "._probe",
    "load_probe_data": "._probe",
    "probe_embeddings": "._probe",
    "embed_inputs": "._probe",
    "image_probe": "._probe",
    "SELECT_CRITERIA": "._probe",
    "write_run_report": "._report",
}


def __getattr__(name: str) -> Any:
    if name == "losses":
        return importlib.import_module(".losses", __name__)
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
