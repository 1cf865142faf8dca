"""``pretrain``: one self-supervised or image-text pre-training run, from a manifest to a
checkpoint, a loss log and a report of who the model learned from.

Outputs in ``out``:

=========================  =================================================================
``encoder.safetensors``    the pre-trained timm ViT (see :mod:`._checkpoint`), for the zoo
                           (``local:`` path) or ``timm.create_model`` + ``load_state_dict``
``checkpoint/``             resumable training state of the adapt loop (``last/`` with
                           ``weights.safetensors`` + ``state.json``) and ``run_config.json``
``loss_log.csv``           ``step, loss, lr, seconds, images_per_s`` + objective extras
``composition.csv``        the group composition actually seen vs the manifest's
``config.yaml``            the run config; ``fairfoundry pretrain config.yaml`` re-runs it
``model_card.md``/``.json`` objective, data and composition, seed, steps, the fairness probe's
                           settings, selection rule and selected step's validation numbers
``run.json``               sidecar (written last): config, seed, versions, inputs, summary
=========================  =================================================================
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .._errors import FairfoundryError, did_you_mean
from .._io import (
    file_fingerprint,
    frame_fingerprint,
    prepare_out_dir,
    write_json_atomic,
    write_sidecar,
    write_table_atomic,
    write_text_atomic,
)
from ..groups import DEFAULT_AGE_EDGES

__all__ = ["PretrainConfig", "pretrain", "DEFAULT_REPORT_ATTRIBUTES", "prepare_frame", "make_probe"]

log = logging.getLogger(__name__)

#: attributes reported in composition.csv when present in the manifest
DEFAULT_REPORT_ATTRIBUTES = ("sex", "age_group", "race", "ethnicity", "skin_type", "site",
                             "country", "view")
AGE_EDGES = tuple(DEFAULT_AGE_EDGES)  # the one default age binning (fairfoundry.groups)

OUTPUTS = ["encoder.safetensors", "checkpoint", "loss_log.csv", "composition.csv", "config.yaml",
           "run.json", "teachers.csv", "probe.csv", "encoder_selected.safetensors", "report.html",
           "curves.svg", "model_card.md", "model_card.json"]


class DataConfig(BaseModel):
    """Fields shared by pre-training and distillation runs (data, sampling, schedule, device)."""

    model_config = ConfigDict(extra="forbid")

    manifest: str = Field(description="CSV/Parquet manifest with a path column")
    path_column: str = "path"
    root: str | None = Field(None, description="folder of relative paths (default: the manifest's)")
    allow_outside_root: bool = Field(
        False, description="accept relative image paths that climb out of root (../)")
    model: str = Field("timm:vit_tiny_patch16_224", description="timm ViT architecture")
    image_size: int = 64
    patch_size: int | None = None
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    steps: int = Field(100, ge=1)
    schedule_steps: int | None = Field(
        None, ge=1, description="length of the LR, EMA-momentum and teacher-temperature schedules "
        "(default: steps); set it once to the final length to train a run in chunks with --resume")
    batch_size: int = Field(32, ge=2)
    lr: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    warmup_steps: int | None = Field(None, description="default: 10% of steps")
    modality: str = Field("xray", description="augmentation preset: xray, ct, mri, derm, fundus, natural")
    augment: dict[str, Any] = Field(default_factory=dict, description="Augment field overrides")
    sampling: Literal["uniform", "balanced", "stratified"] = "uniform"
    balance_by: list[str] = Field(default_factory=list)
    target: dict[str, float] | None = None
    keep_column: str | None = Field(None, description="0/1 column of a curated manifest")
    report_attributes: list[str] | None = None
    age_bins: list[float] = Field(default_factory=lambda: list(AGE_EDGES))
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    log_every: int = Field(1, ge=1)
    checkpoint_every: int | None = Field(
        None, ge=1, description="also checkpoint every N steps (default: once per epoch)")
    track_emissions: bool = False
    country: str | None = None
    num_threads: int | None = None
    probe_every: int | None = Field(
        None, ge=1, description="fairness probe every N steps (see fairfoundry.pretrain._probe)")
    probe_manifest: str | None = Field(None, description="labelled validation manifest of the probe")
    probe_label: str | None = Field(None, description="0/1 label column of the probe manifest")
    probe_sensitive: list[str] = Field(default_factory=list, description="attributes of the probe")
    probe_max_samples: int = Field(2000, ge=20, description="at most this many probe rows")
    probe_folds: int = Field(5, ge=2, description="cross-validation folds of the probe")
    probe_bootstrap: int = Field(100, ge=0, description="bootstrap replicates of the probe's CIs")
    probe_permutations: int = Field(99, ge=0, description="permutations of the probe's attribute-leakage test")
    select: Literal["worst_group_auc", "overall_auc", "dto"] | None = Field(
        None, description="keep the best checkpoint by the validation probe")

    @property
    def horizon(self) -> int:
        """Length of every step-dependent schedule: ``schedule_steps``, else ``steps``."""
        return int(self.schedule_steps or self.steps)

    def model_post_init(self, __context) -> None:
        if self.schedule_steps is not None and self.schedule_steps < self.steps:
            raise FairfoundryError(
                f"schedule_steps ({self.schedule_steps}) is shorter than steps ({self.steps})",
                hint="the schedules would end before the run; set schedule_steps >= steps or leave it unset")
        if self.select is not None and self.probe_every is None:
            raise FairfoundryError(
                f"select={self.select!r} picks a checkpoint by the fairness probe, but no probe is configured",
                param="select", hint="add --probe-every N --probe-manifest VAL.csv --probe-label L "
                "--probe-sensitive sex (or drop --select)")
        probe_keys = {"probe_manifest": self.probe_manifest, "probe_label": self.probe_label,
                      "probe_sensitive": self.probe_sensitive}
        if self.probe_every is not None:
            missing = [k for k, v in probe_keys.items() if not v]
            if missing:
                raise FairfoundryError(f"probe_every={self.probe_every} needs {', '.join(missing)}",
                                       param=missing[0],
                                       hint="e.g. --probe-manifest val.csv --probe-label Effusion "
                                       "--probe-sensitive sex,age")
        elif any(probe_keys.values()):
            given = next(k for k, v in probe_keys.items() if v)
            raise FairfoundryError(f"{given} is set but probe_every is not: the probe would never run",
                                   param="probe_every", hint="add --probe-every N (steps)")

    @field_validator("balance_by", "probe_sensitive", mode="before")
    @classmethod
    def _split(cls, v):
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()]
        return v or []


class PretrainConfig(DataConfig):
    """Config of a pre-training run (``fairfoundry pretrain CONFIG.yaml``); unknown keys fail."""

    objective: str = Field(description="mae, simclr, dino, ijepa, clip or siglip")
    options: dict[str, Any] = Field(default_factory=dict, description="objective options")
    text_column: str | None = None
    text_template: str = "{}"
    context_length: int = 77


def prepare_frame(cfg: DataConfig) -> tuple[pd.DataFrame, list[str]]:
    """Read, select and annotate the manifest; return it and the attributes to report."""
    from ..data import bin_values
    from ._data import load_manifest
    from ._sampling import select_rows

    frame, _ = load_manifest(cfg.manifest, path_column=cfg.path_column, root=cfg.root,
                             allow_outside_root=cfg.allow_outside_root)
    if cfg.keep_column:
        frame = select_rows(frame, keep_column=cfg.keep_column, what=f"manifest {cfg.manifest}")
    if "age" in frame.columns and "age_group" not in frame.columns:
        age = pd.to_numeric(frame["age"], errors="coerce")
        frame["age_group"] = np.asarray(bin_values(age.to_numpy(), cfg.age_bins), dtype=object)
    if cfg.report_attributes is not None:
        attrs = list(cfg.report_attributes)
    else:
        attrs = [a for a in DEFAULT_REPORT_ATTRIBUTES if a in frame.columns]
    for a in cfg.balance_by:
        if a not in attrs:
            attrs.append(a)
    for a in attrs + list(cfg.balance_by):
        if a not in frame.columns:
            raise FairfoundryError(f"attribute column {a!r} not found in manifest {cfg.manifest}",
                                   hint=did_you_mean(a, frame.columns, what="columns"))
    return frame, attrs


def make_sampler(cfg: DataConfig, frame: pd.DataFrame):
    from ._sampling import BatchSampler, group_labels

    groups = group_labels(frame, cfg.balance_by) if cfg.balance_by else None
    if cfg.sampling != "uniform" and groups is None:
        raise FairfoundryError(f"sampling {cfg.sampling!r} needs --balance-by",
                               hint="e.g. --balance-by sex or --balance-by sex,age_group")
    if cfg.target and cfg.sampling == "uniform":
        raise FairfoundryError("a target composition (--target) needs --sampling balanced or "
                               "stratified; uniform sampling ignores it",
                               hint="add --sampling stratified --balance-by ATTRIBUTE")
    return BatchSampler(groups, n=len(frame), batch_size=cfg.batch_size, mode=cfg.sampling,
                        target=cfg.target, seed=cfg.seed)


def config_dict(cfg: BaseModel) -> dict:
    return cfg.model_dump(mode="json")


def pretrain(config: PretrainConfig | dict, *, out: str | os.PathLike, overwrite: bool = False,
             resume: bool = False, progress: Callable[[int], None] | None = None) -> dict:
    """Pre-train a ViT with one objective; write the outputs listed in the module docstring.

    Parameters
    ----------
    config : PretrainConfig or dict
    out : path of the run directory
    overwrite : bool
        Replace the outputs of a previous run in ``out``.
    resume : bool
        Continue the run in ``out`` from its last checkpoint (``checkpoint/last``, written
        after every epoch over the manifest and at the end). The config may differ only in
        ``steps``, ``log_every``, ``device``, emissions and thread settings; anything else
        raises, naming the changed keys. ``steps`` may grow only up to ``schedule_steps`` (the
        length of the LR, EMA and temperature schedules fixed when the run started; default
        ``steps``): then the resumed run equals an uninterrupted run of the new length with the
        same ``schedule_steps``. Changing the schedule length is refused, saying why.
    progress : callable(n), optional
        Called with the number of finished steps.

    Returns
    -------
    dict
        The run summary (also in ``run.json``): first/final loss, images/s, seconds, sampler,
        composition of the groups seen, emissions when tracked.
    """
    import torch

    from ._augment import Augment
    from ._backbone import build_vit, check_image_size
    from ._card import split_counts
    from ._checkpoint import save_vit
    from ._data import ImageBank, byte_tokenize
    from ._objective import PIXEL_MEAN, PIXEL_STD, build_objective
    from ._registry import OBJECTIVES
    from ._sampling import CompositionTracker

    cfg = config if isinstance(config, PretrainConfig) else _validate(PretrainConfig, config)
    if cfg.objective not in OBJECTIVES:
        raise FairfoundryError(f"unknown objective {cfg.objective!r}",
                               hint=did_you_mean(cfg.objective, OBJECTIVES, what="objectives"))
    obj_cls = OBJECTIVES[cfg.objective]
    out = Path(out)
    cfg_json = config_dict(cfg)
    steps_done = start_resume(out, cfg_json, overwrite=overwrite, resume=resume)
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))

    # --- data and model, validated before anything is written
    frame, attrs = prepare_frame(cfg)
    texts = None
    if obj_cls.needs_text:
        if not cfg.text_column:
            raise FairfoundryError(f"objective {cfg.objective!r} needs captions",
                                   hint="pass --text-column COLUMN (e.g. finding_labels)")
        if cfg.text_column not in frame.columns:
            raise FairfoundryError(f"text column {cfg.text_column!r} not found in manifest {cfg.manifest}",
                                   hint=did_you_mean(cfg.text_column, frame.columns, what="columns"))
        captions = [cfg.text_template.format(str(t).replace("|", ", "))
                    for t in frame[cfg.text_column].fillna("")]
        texts = byte_tokenize(captions, context_length=cfg.context_length)
    sampler = make_sampler(cfg, frame)
    torch.manual_seed(cfg.seed)
    backbone = build_vit(cfg.model, image_size=cfg.image_size, patch_size=cfg.patch_size,
                         embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads)
    check_image_size(cfg.image_size, backbone.patch_size)
    augment = Augment.preset(cfg.modality, **{**obj_cls.augment_overrides, **cfg.augment})
    objective = build_objective(cfg.objective, backbone, augment=augment, **cfg.options)
    bank = ImageBank(frame[cfg.path_column].tolist(), size=cfg.image_size,
                     min_side=backbone.patch_size)
    tracker = CompositionTracker(frame, attrs)
    probe = make_probe(cfg, frame, min_side=backbone.patch_size)
    write_json_atomic(out / "checkpoint" / "run_config.json", resume_record(cfg_json))

    def step_loss(model, idx, gen, dev):
        images = bank.batch(idx, device=dev)
        text = texts[torch.as_tensor(idx)].to(dev) if texts is not None else None
        return model.compute_loss(images, text=text, generator=gen)

    recipe = {"objective": cfg.objective, "steps": cfg.steps, "seed": cfg.seed,
              "image_size": cfg.image_size, "modality": cfg.modality,
              "manifest_fingerprint": frame_fingerprint(frame[["sample_id"]])}

    def save_encoder(path, step):  # a probed candidate (--select), in encoder.safetensors' format
        save_vit(objective.export_encoder(), path, pixel_mean=list(PIXEL_MEAN), pixel_std=list(PIXEL_STD),
                 image_size=cfg.image_size, recipe={**recipe, "step": int(step),
                                                    "exported": objective.export_report()["network"]})

    summary = train_run(cfg, out, objective, kind=cfg.objective, sampler=sampler,
                        tracker=tracker, step_loss=step_loss, steps_done=steps_done,
                        resume=resume, progress=progress, on_step=objective.on_step_end,
                        on_step_start=objective.on_step_start, probe=probe,
                        export=objective.export_encoder, save_encoder=save_encoder)
    export = objective.export_report()
    recipe["exported"] = export["network"]
    if export.get("warning"):
        log.warning("%s", export["warning"])
    save_vit(objective.export_encoder(), out / "encoder.safetensors", pixel_mean=list(PIXEL_MEAN),
             pixel_std=list(PIXEL_STD), image_size=cfg.image_size, recipe=recipe)
    summary["export"] = export
    summary["manifest_splits"] = split_counts(frame)
    summary["encoder_parameters"] = int(sum(p.numel()
                                            for p in objective.export_encoder().parameters()))
    finish_run(out, cfg, cfg_json, kind="pretrain", summary=summary)
    return summary


def train_run(cfg: DataConfig, out: Path, model, *, kind: str, sampler, tracker, step_loss,
              steps_done: int, resume: bool, progress=None, on_step=None,
              on_step_start=None, probe=None, export=None, save_encoder=None) -> dict:
    """Train ``model`` on the adapt loop; write ``loss_log.csv`` and ``composition.csv``.

    Shared by :func:`pretrain` and :func:`~._distill_runner.distill`: builds the
    :class:`~._train.StepHook` (batches from ``sampler``, loss from
    ``step_loss(model, rows, generator, device)``, per-epoch and ``checkpoint_every``
    checkpoints), replays the composition of the steps done before a resume, and returns the
    summary fields common to both runs. With a ``probe`` (:func:`make_probe`) a
    :class:`~._probe.ProbeHook` after the step hook probes ``export()`` (the encoder the run
    ships) every ``probe_every`` steps and writes ``probe.csv``; with ``select`` the best
    candidate (written by ``save_encoder(path, step)``) becomes ``encoder_selected.safetensors``.
    """
    from ._train import StepHook, run_steps

    old_log = _old_log(out, steps_done)
    hook = StepHook(sampler=sampler, steps=cfg.steps, step_loss=step_loss, tracker=tracker,
                    seed=cfg.seed, on_step=on_step, on_step_start=on_step_start,
                    schedule_steps=cfg.horizon,
                    log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every,
                    on_epoch=lambda records: _write_log(out, old_log, records))
    hook.replay(steps_done)
    extra, probe_tracker = [], None
    if probe is not None:
        from ._probe import ProbeHook, ProbeTracker

        probe_tracker = ProbeTracker(probe, out, save=save_encoder if cfg.select else None,
                                     steps_done=steps_done if resume else 0)
        extra.append(ProbeHook(probe_tracker, features=lambda trainer, x: export()(x),
                               every=int(cfg.probe_every), total_steps=cfg.steps, at_start=not resume))
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, cfg.horizon // 10)
    t0 = time.time()
    trainer, result = run_steps(
        model, hook, n_rows=sampler.n, batch_size=cfg.batch_size, lr=cfg.lr,
        weight_decay=cfg.weight_decay, warmup=warmup, seed=cfg.seed, device=cfg.device,
        amp=cfg.amp, checkpoint_dir=out / "checkpoint", resume=resume, progress=progress,
        track_emissions=cfg.track_emissions, country=cfg.country, extra_hooks=extra)
    wall = time.time() - t0
    log_frame = _write_log(out, old_log, hook.records)
    composition = tracker.table()
    write_table_atomic(out / "composition.csv", composition, report=True)
    probe_summary = None
    if probe_tracker is not None:
        probe_summary = probe_tracker.finish(out / "encoder_selected.safetensors" if cfg.select else None)
    return {
        "probe": probe_summary,
        "objective": kind,
        "steps": cfg.steps,
        "resumed_from_step": steps_done if resume else None,
        "first_loss": float(log_frame["loss"].iloc[0]),
        "final_loss": float(log_frame["loss"].iloc[-1]),
        "images_per_s": hook.images / hook.train_seconds if hook.train_seconds else None,
        "train_seconds": hook.train_seconds,
        "wall_seconds": wall,
        "device": str(trainer.device),
        "n_images": sampler.n,
        "sampler": sampler.describe(),
        "composition": composition.to_dict(orient="records"),
        "emissions": result.emissions,
    }


def make_probe(cfg: DataConfig, frame: pd.DataFrame, *, min_side: int = 1):
    """The run's fairness probe (:class:`~._probe.ProbeData` with its images decoded once at
    ``image_size``), or None without ``probe_every``. Validates the probe manifest (label and
    attribute columns, validation rows only) and warns when probe images are training images."""
    if cfg.probe_every is None:
        return None
    from ._data import ImageBank
    from ._probe import ProbeOptions, load_probe_data

    opts = ProbeOptions(manifest=str(cfg.probe_manifest), label=str(cfg.probe_label),
                        sensitive=tuple(cfg.probe_sensitive), every=int(cfg.probe_every),
                        max_samples=cfg.probe_max_samples, folds=cfg.probe_folds,
                        bootstrap=cfg.probe_bootstrap, permutations=cfg.probe_permutations, select=cfg.select, path_column=cfg.path_column,
                        age_bins=tuple(cfg.age_bins), seed=cfg.seed)
    data = load_probe_data(opts, train_paths=frame[cfg.path_column].astype(str).tolist())
    t0 = time.time()
    bank = ImageBank(data.frame[cfg.path_column].tolist(), size=cfg.image_size, min_side=min_side)
    log.info("probe: %d validation images decoded once at %d px (%.1f s)", len(bank), cfg.image_size,
             time.time() - t0)
    data.inputs = lambda idx, device: (bank.batch(idx, device=device) - 0.5) / 0.5
    return data


def resume_record(cfg_json: dict) -> dict:
    """The config a resume is checked against: the run config plus the manifest's SHA-256, so
    an edited manifest at the same path is a changed config too."""
    manifest = Path(str(cfg_json.get("manifest", "")))
    return {**cfg_json,
            "manifest_sha256": file_fingerprint(manifest) if manifest.is_file() else None}


def start_resume(out: Path, cfg_json: dict, *, overwrite: bool, resume: bool) -> int:
    """Check ``out`` for a new run or a resume; return the number of steps already done."""
    from ._train import check_resume_config

    saved = out / "checkpoint" / "run_config.json"
    if resume:
        state = out / "checkpoint" / "last" / "state.json"
        if not state.exists() or not saved.exists():
            raise FairfoundryError(f"--resume: no checkpoint in {out / 'checkpoint'}",
                                   hint="run without --resume to start a new run")
        check_resume_config(json.loads(saved.read_text()), resume_record(cfg_json), path=out)
        done = int(json.loads(state.read_text())["step"])
        if done >= int(cfg_json["steps"]):
            raise FairfoundryError(f"{out} already holds {done} steps; nothing to resume",
                                   hint=f"pass --steps larger than {done}")
        return done
    prepare_out_dir(out, overwrite=overwrite, outputs=OUTPUTS)
    return 0


def finish_run(out: Path, cfg, cfg_json: dict, *, kind: str, summary: dict) -> None:
    import yaml

    write_text_atomic(out / "config.yaml", yaml.safe_dump(cfg_json, sort_keys=False))
    inputs = {"manifest": str(cfg.manifest)}
    if Path(cfg.manifest).exists():
        inputs["manifest_sha256"] = file_fingerprint(cfg.manifest)
    if cfg.probe_manifest and Path(cfg.probe_manifest).exists():
        inputs["probe_manifest"] = str(cfg.probe_manifest)
        inputs["probe_manifest_sha256"] = file_fingerprint(cfg.probe_manifest)
    from ._report import write_run_report

    write_run_report(out, kind=kind, config=cfg_json, summary=summary)
    from ._card import write_run_card

    write_run_card(out, kind=kind, config=cfg_json, summary=summary)
    write_sidecar(out / "run.json", kind=kind, config=cfg_json, seed=cfg.seed, inputs=inputs,
                  summary=summary)


def _old_log(out: Path, steps_done: int):
    if steps_done and (out / "loss_log.csv").exists():
        old = pd.read_csv(out / "loss_log.csv")
        return old[old["step"] < steps_done]
    return None


def _write_log(out: Path, old: pd.DataFrame | None, records: list) -> pd.DataFrame:
    frame = pd.DataFrame(records)
    if old is not None and len(old):
        frame = pd.concat([old, frame], ignore_index=True)
    write_table_atomic(out / "loss_log.csv", frame)
    return frame


def _validate(model_cls, data: dict):
    from pydantic import ValidationError

    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        from .._values import pydantic_error

        raise pydantic_error(exc, where="the pretrain config", model=model_cls) from exc
