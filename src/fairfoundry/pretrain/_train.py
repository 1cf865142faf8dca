"""How pre-training and distillation run on fairfoundry's one training loop
(:class:`fairfoundry.adapt.Trainer`).

The loop brings the optimiser, schedule, mixed precision on CUDA, safetensors checkpoints,
resume, progress and codecarbon emissions. Pre-training plugs in through one hook,
:class:`StepHook`, which

- plans each epoch's batches with the fairness-aware :class:`~._sampling.BatchSampler`
  (the loop's ``batch_plan`` hook), starting at the loop's current step;
- computes each step's loss from the batch's row indices (images come from an
  :class:`~._data.ImageBank`), with every random draw of step ``t`` taken from a generator
  seeded with ``(seed, t)``;
- counts the groups seen (:class:`~._sampling.CompositionTracker`), logs the loss of every
  step with its time, and updates EMA teachers after each optimiser step.

So a run is a pure function of its config and seed, and a resumed run draws exactly the
batches and augmentations the uninterrupted run would have drawn.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .._errors import FairfoundryError
from ..adapt._loop import Hook

__all__ = ["StepHook", "step_generator", "check_resume_config", "RESUMABLE_KEYS"]

log = logging.getLogger(__name__)

#: config keys that may change when a run is resumed: ``steps`` only within the schedule length
#: fixed at the start (``schedule_steps``, checked separately), the others do not change what is
#: learned
RESUMABLE_KEYS = frozenset({"steps", "log_every", "device", "track_emissions", "country",
                            "num_threads", "checkpoint_every", "schedule_steps"})


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, step)``: every step's randomness, reproducibly."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step)) % (2**63 - 1))


def check_resume_config(saved: dict, current: dict, *, path: Path) -> None:
    """Raise if a resumed run's config differs from the saved one beyond :data:`RESUMABLE_KEYS`,
    or if it changes the length of the step-dependent schedules (``schedule_steps``, default
    ``steps``): the cosine learning rate, the EMA momentum and DINO's teacher-temperature warm-up
    are functions of ``step / length``, so a new length would restart them mid-run."""
    keys = sorted((set(saved) | set(current)) - RESUMABLE_KEYS)
    changed = [k for k in keys if _norm(saved.get(k)) != _norm(current.get(k))]
    if changed:
        detail = "; ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed[:6])
        raise FairfoundryError(
            f"cannot resume {path}: the config changed ({detail})",
            hint="resume with the same config (only " + ", ".join(sorted(RESUMABLE_KEYS))
            + " may change; steps up to schedule_steps), or start a new run with --overwrite / another --out",
        )

    def horizon(c):
        return c.get("schedule_steps") or c.get("steps")

    if saved.get("steps") is not None and horizon(saved) != horizon(current):
        raise FairfoundryError(
            f"cannot resume {path} with steps={current.get('steps')}: its learning-rate, EMA-momentum and "
            f"teacher-temperature schedules run over {horizon(saved)} steps, and a new length "
            f"({horizon(current)}) would change their value at every later step (e.g. the EMA "
            "momentum would fall back from ~1 to its mid-schedule value), so the result would match "
            "neither run",
            hint=f"resume with --steps up to the schedule length ({horizon(saved)}); to train a run in "
                 "chunks, start it with --schedule-steps FINAL_STEPS; or start a new run")


def _norm(v):
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _norm(x) for k, x in v.items()}
    return v


class StepHook(Hook):
    """Connects a pre-training or distillation step to the adapt :class:`Trainer`.

    Parameters
    ----------
    sampler : BatchSampler
        Plans the batches (pure function of seed and step).
    steps : int
        Total optimiser steps of the run.
    step_loss : callable(model, indices, generator, device) -> (loss, logs)
        The loss of one batch of manifest rows.
    tracker : CompositionTracker
        Counts the groups seen.
    seed : int
    on_step : callable(step, steps), optional
        Called after each optimiser step (EMA teacher updates).
    log_every : int
        Keep every ``log_every``-th step in :attr:`records` (and the last).
    on_epoch : callable(records), optional
        Called at the end of each epoch, just before the loop writes its checkpoint (the
        runner writes the loss log there, so a resumed run keeps the steps before the cut),
        and before every ``checkpoint_every`` checkpoint.
    on_step_start : callable(step, steps), optional
        Called before each step's loss (schedules inside an objective, e.g. DINO's teacher
        temperature warm-up).
    schedule_steps : int, optional
        Length passed to ``on_step`` / ``on_step_start`` and of the LR schedule (default
        ``steps``).
    weight_decay : float
        Decoupled (AdamW) weight decay, applied here after each optimiser step to weight
        matrices only: biases, norms, positional embeddings, class / mask tokens and the
        CLIP/SigLIP logit scale and bias are not decayed, as in the papers' recipes (the loop's
        own optimiser then runs with weight decay 0).
    checkpoint_every : int, optional
        Also write the loop's ``last`` checkpoint every this many steps, inside an epoch
        (the loop itself writes one per epoch): long runs on large manifests lose at most
        ``checkpoint_every`` steps when interrupted.
    """

    name = "pretrain"

    def __init__(self, *, sampler, steps: int, step_loss: Callable, tracker, seed: int,
                 on_step: Callable | None = None, log_every: int = 1,
                 on_epoch: Callable | None = None, on_step_start: Callable | None = None,
                 checkpoint_every: int | None = None, weight_decay: float = 0.0,
                 schedule_steps: int | None = None):
        self.sampler, self.steps, self.step_loss = sampler, int(steps), step_loss
        self.schedule_steps = int(schedule_steps or steps)
        self.weight_decay = float(weight_decay)
        self._decay_params: list = []
        self.on_step_start = on_step_start
        if checkpoint_every is not None and int(checkpoint_every) < 1:
            raise FairfoundryError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self.checkpoint_every = int(checkpoint_every) if checkpoint_every else None
        self.tracker, self.seed, self.on_step = tracker, int(seed), on_step
        self.log_every = max(int(log_every), 1)
        self.on_epoch = on_epoch
        self.records: list[dict] = []
        self.trainer = None
        self._pending = None
        self._t = None
        self.train_seconds = 0.0
        self.images = 0

    # -- loop hooks -----------------------------------------------------------------------
    def on_fit_start(self, trainer) -> None:
        self.trainer = trainer
        self._decay_params = decay_parameters(trainer.model) if self.weight_decay else []

    def batch_plan(self, trainer):
        per_epoch = math.ceil(len(trainer.train_data) / trainer.config.batch_size)
        start = trainer.step
        return [self.sampler.batch(s) for s in range(start, min(start + per_epoch, self.steps))]

    def objective(self, model, batch: dict) -> dict:
        """The loop's objective callable: ``{"loss": ...}`` of the batch's rows."""
        step = self.trainer.step
        idx = np.asarray(batch["index"].cpu())
        self.tracker.update(idx)
        self._t = time.perf_counter()
        if self.on_step_start is not None:
            self.on_step_start(step, self.schedule_steps)
        loss, logs = self.step_loss(model, idx, step_generator(self.seed, step),
                                    self.trainer.device)
        self._pending = (step, loss, logs, len(idx),
                         float(self.trainer.optimizer.param_groups[0]["lr"]))
        return {"loss": loss}

    def on_step_end(self, trainer, step: int) -> None:
        s, loss, logs, n, lr = self._pending
        if self._decay_params:
            with torch.no_grad():
                torch._foreach_mul_(self._decay_params, 1.0 - lr * self.weight_decay)
        if self.on_step is not None:
            self.on_step(s, self.schedule_steps)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        dt = time.perf_counter() - self._t
        self.train_seconds += dt
        self.images += n
        if s % self.log_every == 0 or s == self.steps - 1:
            self.records.append({"step": s, "loss": float(loss.detach()),
                                 "lr": lr,
                                 "seconds": dt, "images_per_s": n / dt if dt > 0 else float("nan"),
                                 **{k: float(v) for k, v in logs.items()}})
        every = self.checkpoint_every
        if every and step % every == 0 and step < self.steps and trainer.config.checkpoint_dir:
            if self.on_epoch is not None:
                self.on_epoch(self.records)
            trainer.save_checkpoint(Path(trainer.config.checkpoint_dir) / "last")

    def on_epoch_end(self, trainer, epoch: int) -> None:
        if self.on_epoch is not None:
            self.on_epoch(self.records)

    def replay(self, steps_done: int) -> None:
        """Count the groups of the batches of steps ``0 .. steps_done-1`` (after a resume)."""
        for s in range(steps_done):
            self.tracker.update(self.sampler.batch(s))


#: parameter names never decayed (timm's ``no_weight_decay`` and the papers' recipes)
NO_DECAY_NAMES = ("pos_embed", "cls_token", "reg_token", "dist_token", "mask_token",
                  "positional_embedding", "logit_scale", "logit_bias")


def decay_parameters(model) -> list:
    """Trainable weight matrices of ``model``: parameters with 2+ dimensions whose name holds
    none of :data:`NO_DECAY_NAMES` (biases, norm gains and tokens are not decayed)."""
    return [p for name, p in model.named_parameters()
            if p.requires_grad and p.ndim >= 2
            and not any(part in name for part in NO_DECAY_NAMES)]


def run_steps(model, hook: StepHook, *, n_rows: int, batch_size: int, lr: float,
              weight_decay: float, warmup: int, seed: int, device: str, amp: bool,
              checkpoint_dir: Path, resume: bool, progress=None, track_emissions: bool = False,
              country: str | None = None, grad_clip: float | None = 3.0, extra_hooks=()):
    """Train ``model`` for ``hook.steps`` steps on the adapt :class:`Trainer`; return its result.

    ``extra_hooks`` run after ``hook`` (a :class:`~._probe.ProbeHook` sees the EMA teacher the
    step hook has just updated)."""
    from ..adapt._loop import ArrayData, TrainConfig, Trainer

    per_epoch = math.ceil(n_rows / batch_size)
    hook.weight_decay = float(weight_decay)  # applied by the hook, to weight matrices only
    cfg = TrainConfig(epochs=math.ceil(hook.steps / per_epoch) + 1, max_steps=hook.steps,
                      batch_size=batch_size, lr=lr, weight_decay=0.0,
                      optimizer="adamw", scheduler="cosine", warmup_steps=warmup,
                      schedule_steps=hook.schedule_steps,
                      grad_clip=grad_clip, seed=seed, device=device, amp=amp,
                      checkpoint_dir=str(checkpoint_dir))
    trainer = Trainer(model, hook.objective, hooks=[hook, *extra_hooks], config=cfg, progress=progress,
                      track_emissions=track_emissions, country_iso_code=country or "USA")
    if trainer.device.type == "cuda":
        log.info("training on %s with bfloat16 autocast=%s", trainer.device, amp)
    data = ArrayData(row=np.arange(n_rows))
    last = checkpoint_dir / "last"
    result = trainer.fit(data, resume=last if resume else None)
    return trainer, result
