"""``distill``: a knowledge-agglomeration run (see :mod:`._distill`), from a manifest and a list
of zoo teachers to a student checkpoint.

Outputs in ``out``: ``encoder.safetensors`` (the student ViT), ``teachers.csv`` (per teacher:
weight, whether it was dropped, its probe AUC and worst-group AUC when measured, its feature
grid), ``loss_log.csv`` (total and per-teacher losses), ``composition.csv``, ``config.yaml``,
``checkpoint/`` and ``run.json`` (written last). Teacher features are cached in
``cache_dir`` (default ``out/teacher_cache``) and reused by later runs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .._errors import FairfoundryError
from .._io import frame_fingerprint, write_json_atomic, write_table_atomic
from ._runner import (
    DataConfig,
    _validate,
    config_dict,
    finish_run,
    make_probe,
    make_sampler,
    prepare_frame,
    resume_record,
    start_resume,
    train_run,
)

__all__ = ["DistillConfig", "TeacherConfig", "distill"]


class TeacherConfig(BaseModel):
    """One teacher: a model-zoo name (preset, ``backend:id`` or local path)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    weights: str | None = Field(None, description="weights override (a local file)")
    weight: float | None = Field(None, ge=0, description="fixed weight (teacher_weighting: fixed)")
    model_kwargs: dict[str, Any] = Field(default_factory=dict)


class DistillConfig(DataConfig):
    """Config of a distillation run (``fairfoundry distill CONFIG.yaml``); unknown keys fail."""

    teachers: list[TeacherConfig] = Field(default_factory=list)
    feature_grid: int | None = Field(
        None, description="default: per teacher, the coarser of its grid and the student's")
    feature_weight: float = Field(1.0, ge=0, description="lambda of the feature losses")
    standardize: bool = True
    teacher_weighting: Literal["equal", "fixed", "worst_group"] = "equal"
    weight_label: str | None = Field(None, description="0/1 column for worst-group weighting")
    weight_groups: list[str] = Field(default_factory=list)
    min_worst_group_auc: float | None = Field(None, description="drop teachers below this")
    teacher_dropout: float = Field(0.0, ge=0, lt=1)
    head_hidden: int | None = None
    cache_dir: str | None = None

    @field_validator("teachers", mode="before")
    @classmethod
    def _teachers(cls, v):
        if isinstance(v, str):
            v = [s for s in v.split(",") if s.strip()]
        return [{"name": t} if isinstance(t, str) else t for t in (v or [])]

    @field_validator("weight_groups", mode="before")
    @classmethod
    def _groups(cls, v):
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()]
        return v or []


def _load_teachers(cfg: DistillConfig, device) -> list:
    from ..models import load_encoder
    from ._distill import EncoderTeacher

    out = []
    for t in cfg.teachers:
        enc = load_encoder(t.name, weights=t.weights, device=str(device),
                           model_kwargs=t.model_kwargs or None)
        out.append(EncoderTeacher(enc, name=t.name))
    return out


def _cache_key(teacher, frame: pd.DataFrame, grid: int | None) -> str:
    h = hashlib.sha256()
    h.update(f"{teacher.fingerprint}|{teacher.image_size}|{grid}|".encode())
    h.update(frame_fingerprint(frame[["sample_id", "path"]]).encode())
    return h.hexdigest()[:20]


def distill(config: DistillConfig | dict, *, out: str | os.PathLike, overwrite: bool = False,
            resume: bool = False, progress: Callable[[int], None] | None = None,
            teachers: Sequence | None = None) -> dict:
    """Distil a student ViT from several frozen teachers (knowledge agglomeration).

    Parameters
    ----------
    config : DistillConfig or dict
    out : run directory
    overwrite, resume, progress : as for :func:`~fairfoundry.pretrain.pretrain`
    teachers : list of :class:`~fairfoundry.pretrain.Teacher`, optional
        Teacher objects to use instead of ``config.teachers`` (custom teachers from Python).

    Returns
    -------
    dict
        Run summary (also in ``run.json``), with the per-teacher table under ``teachers``.

    Raises
    ------
    FairfoundryError
        No teachers, duplicate teacher names, missing teacher weights (with how to get them),
        a feature grid finer than a teacher's, worst-group weighting without a label or groups,
        every teacher dropped, or a resumed run whose config changed.
    """
    import torch

    from ._backbone import build_vit, check_image_size
    from ._checkpoint import save_vit
    from ._data import ImageBank
    from ._distill import (
        DistillStudent,
        active_teachers,
        cache_teacher_features,
        standardize_stats,
        teacher_group_scores,
    )
    from ._objective import PIXEL_MEAN, PIXEL_STD
    from ._sampling import CompositionTracker, group_labels
    from .losses import cosine_loss, smooth_l1_feature_loss

    cfg = config if isinstance(config, DistillConfig) else _validate(DistillConfig, config)
    out = Path(out)
    cfg_json = config_dict(cfg)
    if teachers is not None:
        cfg_json["teachers"] = [{"name": t.name, "fingerprint": t.fingerprint} for t in teachers]
    if not (teachers or cfg.teachers):
        raise FairfoundryError("distillation needs at least one teacher",
                               hint="pass --teacher NAME (a model-zoo preset, backend:id or path)")
    steps_done = start_resume(out, cfg_json, overwrite=overwrite, resume=resume)
    frame, attrs = prepare_frame(cfg)
    sampler = make_sampler(cfg, frame)
    if cfg.teacher_weighting == "worst_group" or cfg.min_worst_group_auc is not None:
        if not cfg.weight_label or not cfg.weight_groups:
            raise FairfoundryError("worst-group teacher weighting needs a label and groups",
                                   hint="pass --weight-label COLUMN --weight-groups sex[,age_group]")
        if cfg.weight_label not in frame.columns:
            raise FairfoundryError(f"label column {cfg.weight_label!r} not found in manifest {cfg.manifest}")
    torch.manual_seed(cfg.seed)
    backbone = build_vit(cfg.model, image_size=cfg.image_size, patch_size=cfg.patch_size,
                         embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads)
    grid = check_image_size(cfg.image_size, backbone.patch_size)
    feature_grid = int(cfg.feature_grid) if cfg.feature_grid else None
    from ..adapt._loop import resolve_device

    device = resolve_device(cfg.device)
    teacher_objs = list(teachers) if teachers is not None else _load_teachers(cfg, device)
    names = [t.name for t in teacher_objs]
    if len(set(names)) != len(names):
        raise FairfoundryError(f"teacher names must be unique, got {names}")

    # --- cache teacher features (each teacher at its own resolution)
    banks: dict[int, ImageBank] = {}

    def bank_at(size: int) -> ImageBank:
        if size not in banks:
            banks[size] = ImageBank(frame[cfg.path_column].tolist(), size=size,
                                    min_side=backbone.patch_size)
        return banks[size]

    student_bank = bank_at(cfg.image_size)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else out / "teacher_cache"
    feats: dict[str, dict] = {}
    from safetensors.torch import load_file, save_file

    from .._io import write_atomic

    new_caches = []
    for t in teacher_objs:
        path = cache_dir / f"{_cache_key(t, frame, feature_grid or f'max{grid}')}.safetensors"
        if path.exists():
            feats[t.name] = load_file(str(path))
        else:
            feats[t.name] = cache_teacher_features(t, bank_at(t.image_size), device=device,
                                                   feature_grid=feature_grid, max_grid=grid)
            new_caches.append((path, feats[t.name]))
        t.to("cpu")
    for path, f in new_caches:  # only once every teacher worked: a bad input writes nothing
        write_atomic(path, lambda p, f=f: save_file({k: v.contiguous() for k, v in f.items()},
                                                    str(p)))

    # --- weighting and dropping
    table = []
    scores = {}
    if cfg.teacher_weighting == "worst_group" or cfg.min_worst_group_auc is not None:
        y = pd.to_numeric(frame[cfg.weight_label], errors="coerce")
        ok = y.notna().to_numpy()
        groups = group_labels(frame, cfg.weight_groups).to_numpy()
        for t in teacher_objs:
            scores[t.name] = teacher_group_scores(feats[t.name]["summary"].numpy()[ok],
                                                  y.to_numpy()[ok], groups[ok], seed=cfg.seed)
    fixed = {tc.name: tc.weight for tc in cfg.teachers}
    weights = {}
    for t in teacher_objs:
        s = scores.get(t.name)
        dropped = bool(s and cfg.min_worst_group_auc is not None
                       and s["worst_group_auc"] < cfg.min_worst_group_auc)
        if cfg.teacher_weighting == "worst_group":
            w = max(s["worst_group_auc"] - 0.5, 0.01)
        elif cfg.teacher_weighting == "fixed":
            if fixed.get(t.name) is None:
                raise FairfoundryError(f"teacher_weighting 'fixed' needs a weight for teacher {t.name!r}")
            w = float(fixed[t.name])
        else:
            w = 1.0
        if not dropped and w > 0:
            weights[t.name] = w
        f = feats[t.name]
        table.append({"teacher": t.name, "image_size": t.image_size,
                      "summary_dim": int(f["summary"].shape[1]),
                      "feature_grid": int(f["tokens"].shape[1]) if "tokens" in f else None,
                      "dropped": dropped or w <= 0,
                      "auc": s["auc"] if s else None,
                      "worst_group_auc": s["worst_group_auc"] if s else None,
                      "worst_group": s["worst_group"] if s else None})
    if not weights:
        raise FairfoundryError("every teacher was dropped",
                               hint="lower --min-worst-group-auc or add teachers")
    total = sum(weights.values())
    weights = {k: v / total for k, v in weights.items()}
    for row in table:
        row["weight"] = weights.get(row["teacher"], 0.0)
    active = list(weights)

    # --- targets, standardised per channel
    targets = {}
    for name in active:
        f = feats[name]
        s = f["summary"].float()
        tok = f["tokens"].float() if "tokens" in f else None
        if cfg.standardize:
            m, sd = standardize_stats(s)
            s = (s - m) / sd
            if tok is not None:
                m, sd = standardize_stats(tok)
                tok = (tok - m) / sd
        targets[name] = (s, tok)
    dims = {n: (targets[n][0].shape[1], targets[n][1].shape[-1] if targets[n][1] is not None
                else None) for n in active}
    student = DistillStudent(backbone, dims, head_hidden=cfg.head_hidden)
    tracker = CompositionTracker(frame, attrs)
    probe = make_probe(cfg, frame, min_side=backbone.patch_size)
    write_json_atomic(out / "checkpoint" / "run_config.json", resume_record(cfg_json))

    def step_loss(model, idx, gen, dev):
        x = (student_bank.batch(idx, device=dev) - 0.5) / 0.5
        z, tokens = model(x)
        g = model.backbone.grid(x)
        keep = active_teachers(active, cfg.teacher_dropout, gen)
        wsum = sum(weights[n] for n in keep)
        loss = x.new_zeros(())
        logs = {}
        tidx = torch.as_tensor(idx)
        for name in keep:
            ys, ytok = targets[name]
            part = cosine_loss(model.summary(name, z).float(), ys[tidx].to(dev))
            if ytok is not None:
                tg = (ytok.shape[1], ytok.shape[2])
                pred = model.features(name, tokens, g, tg).float()
                tgt = ytok[tidx].to(dev).reshape(len(idx), -1, ytok.shape[-1])
                part = part + cfg.feature_weight * (cosine_loss(pred, tgt)
                                                    + smooth_l1_feature_loss(pred, tgt))
            loss = loss + weights[name] / wsum * part
            logs[f"loss_{name}"] = float(part.detach())
        return loss, logs

    recipe = {"objective": "distill", "teachers": weights, "steps": cfg.steps, "seed": cfg.seed,
              "image_size": cfg.image_size}

    def save_encoder(path, step):  # a probed candidate (--select)
        save_vit(student.backbone, path, pixel_mean=list(PIXEL_MEAN), pixel_std=list(PIXEL_STD),
                 image_size=cfg.image_size, recipe={**recipe, "step": int(step)})

    summary = train_run(cfg, out, student, kind="distill", sampler=sampler, tracker=tracker,
                        step_loss=step_loss, steps_done=steps_done, resume=resume,
                        progress=progress, probe=probe, export=lambda: student.backbone,
                        save_encoder=save_encoder)
    teachers_frame = pd.DataFrame(table)
    write_table_atomic(out / "teachers.csv", teachers_frame)
    save_vit(student.backbone, out / "encoder.safetensors", pixel_mean=list(PIXEL_MEAN),
             pixel_std=list(PIXEL_STD), image_size=cfg.image_size, recipe=recipe)
    summary["teachers"] = teachers_frame.to_dict(orient="records")
    from ._card import split_counts

    summary["manifest_splits"] = split_counts(frame)
    finish_run(out, cfg, cfg_json, kind="distill", summary=summary)
    return summary
