r"""The one training loop of fairfoundry, with hooks.

Every adaptation (linear probe, MLP head, full fine-tuning, LoRA, CLIP-adapter), every
in-processing mitigation (GroupDRO, adversarial removal, fairness penalties, per-group heads,
Fair Identity Normalisation, FairCLIP alignment) and every pre-training objective (MAE, DINO,
I-JEPA, CLIP, with EMA teachers) runs through :class:`Trainer`. A method is a small
:class:`Hook` subclass, never a copy of the loop.

The loop
--------
For each step::

    batch   = next batch of the train data          (dict of tensors, plus "index")
    out     = objective(model, batch)               (dict: "loss" or "per_sample_loss", ...)
    for h in hooks: out = h.on_output(trainer, batch, out)
    per     = out["per_sample_loss"]                (if the objective gives one)
    w       = batch["weight"] * prod(h.batch_weights(...))   (sample weights, e.g. reweighing)
    loss    = first non-None h.loss(trainer, batch, out, per, w)      (e.g. GroupDRO)
              else  sum(w * per) / sum(w)  (or out["loss"])
    loss   += sum(h.regularizer(trainer, batch, out))                 (penalties, adversary)
    loss.backward(); clip; optimizer.step(); scheduler
    for h in hooks: h.on_step_end(trainer, step)    (e.g. EMA teacher update)

After every ``eval_every`` epochs the ``evaluator`` (a callable ``trainer -> dict of floats``)
is called on validation data; the value of ``select`` in that dict decides the best checkpoint
(``mode="max"`` or ``"min"``) and early stopping (``patience`` evaluations without
improvement). The best weights are restored at the end. Selection sees only what the
evaluator computes: pass validation data to it, never test data.

Hook API
--------
Subclass :class:`Hook` and override any of (all optional; defaults do nothing):

``wrap_model(model) -> model``
    Replace or wrap the model before training (per-group heads, per-group normalisation).
``modules() -> dict[str, nn.Module]``
    Extra trainable modules (an adversary); they are moved to the device, their parameters
    join the optimizer, and they are checkpointed under ``hook.<name>.<module>``.
``on_fit_start(trainer)``
    Called once with the train data available as ``trainer.train_data``; read whole columns
    with ``trainer.column("y")`` / ``trainer.column("group")`` and a probe batch with
    ``trainer.sample_batch()`` (both work for in-memory arrays and image datasets).
``sample_weights(trainer) -> array (n,) | None``
    Sampling probabilities over the training rows (group-balanced resampling). The loop
    draws each epoch's indices with replacement from them using the seeded generator.
``batch_plan(trainer) -> iterable of index arrays | None``
    The batches (row indices) of the coming epoch, replacing shuffling and
    ``sample_weights`` (per-batch stratified sampling of pre-training; the plan may start
    from ``trainer.step`` so a resumed run draws the same batches).
``batch_weights(trainer, batch) -> Tensor (b,) | None``
    Per-sample loss weights multiplied into ``batch["weight"]`` (reweighing).
``on_output(trainer, batch, out) -> dict``
    Modify the objective's output (rarely needed).
``loss(trainer, batch, out, per_sample_loss, weights) -> Tensor | None``
    Replace the aggregation of the per-sample loss (GroupDRO). The first hook that returns
    a tensor wins.
``regularizer(trainer, batch, out) -> Tensor | None``
    A scalar added to the loss (fairness penalties, gradient-reversal adversary).
``on_step_end(trainer, step)``
    After the optimizer step (EMA teacher updates, schedules).
``on_epoch_end(trainer, epoch)``
    After each epoch; may set ``trainer.should_stop = True``.
``state_dict() / load_state_dict(state)``
    JSON-able hook state saved with checkpoints (e.g. GroupDRO's group weights).

Objectives
----------
An objective is any callable ``objective(model, batch) -> dict`` returning ``"loss"``
(scalar) and/or ``"per_sample_loss"`` (shape ``(b,)``) plus anything hooks need
(``"logits"``, ``"features"``). :class:`SupervisedObjective` is binary / multi-label
cross-entropy on ``batch["x"]``, ``batch["y"]``.

Data
----
``train_data`` is either a :class:`ArrayData` (a dict of equally long tensors; batches are
fancy-indexed slices, fast for cached embeddings) or any ``torch.utils.data.Dataset`` whose
items are dicts of tensors (images). Every batch carries ``"index"``: the row numbers in the
train data, so hooks can look up groups or labels.

Reproducibility
---------------
All randomness (shuffling, resampling, dropout through ``torch.manual_seed`` in a fork of
the RNG state) comes from an explicit seed; on CPU the same seed gives bit-identical weights.
Mixed precision (``amp=True``) is used only on CUDA. Checkpoints are safetensors (model,
optimizer tensors, generator state) plus a JSON state file; :meth:`Trainer.fit` with
``resume=dir`` continues from one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._errors import FairfoundryError
from .._io import write_atomic, write_json_atomic

__all__ = [
    "ArrayData",
    "Hook",
    "SupervisedObjective",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "resolve_device",
]

log = logging.getLogger(__name__)


def resolve_device(device: str | None = None):
    """Return a ``torch.device``: ``"auto"``/None picks CUDA, then MPS, then CPU."""
    import torch

    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise FairfoundryError(f"unknown device {device!r}", hint="use cpu, cuda, cuda:0, mps or auto") from exc


class ArrayData:
    """Equally long tensors kept in memory, batched by fancy indexing.

    Parameters
    ----------
    **arrays : array-likes of the same length (numpy arrays or tensors). ``x`` is float32,
        other floating arrays keep float32, integer arrays become int64.
    """

    def __init__(self, **arrays):
        import numpy as np
        import torch

        if not arrays:
            raise FairfoundryError("ArrayData needs at least one array")
        self.arrays: dict[str, Any] = {}
        n = None
        for key, arr in arrays.items():
            if arr is None:
                continue
            t = arr if isinstance(arr, torch.Tensor) else torch.as_tensor(np.asarray(arr))
            if t.is_floating_point():
                t = t.float()
            elif t.dtype != torch.bool:
                t = t.long()
            if n is None:
                n = t.shape[0]
            elif t.shape[0] != n:
                raise FairfoundryError(f"array {key!r} has {t.shape[0]} rows, expected {n}")
            self.arrays[key] = t
        self.n = int(n or 0)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: str):
        return self.arrays[key]

    def __contains__(self, key: str) -> bool:
        return key in self.arrays

    def batch(self, index) -> dict:
        out = {k: v[index] for k, v in self.arrays.items()}
        out["index"] = index
        return out


class Hook:
    """Base class of training hooks; every method is optional (see the module docstring)."""

    #: name used in checkpoints and logs (the mitigation registry sets it)
    name: str = "hook"
    #: whether predictions need the group (per-group normalisation, per-group thresholds)
    needs_groups_at_predict: bool = False

    def wrap_model(self, model):
        return model

    def modules(self) -> dict:
        return {}

    def on_fit_start(self, trainer: Trainer) -> None:
        return None

    def sample_weights(self, trainer: Trainer):
        return None

    def batch_plan(self, trainer: Trainer):
        return None

    def batch_weights(self, trainer: Trainer, batch: dict):
        return None

    def on_output(self, trainer: Trainer, batch: dict, out: dict) -> dict:
        return out

    def loss(self, trainer: Trainer, batch: dict, out: dict, per_sample_loss, weights):
        return None

    def regularizer(self, trainer: Trainer, batch: dict, out: dict):
        return None

    def on_step_end(self, trainer: Trainer, step: int) -> None:
        return None

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: Mapping) -> None:
        return None


class SupervisedObjective:
    r"""Binary / multi-label cross-entropy with logits.

    ``model(batch["x"])`` may return logits ``(b,)``/``(b, k)`` or a dict with ``"logits"``
    (and optionally ``"features"``). ``batch["y"]`` holds 0/1 targets; NaN targets (a label
    missing for a sample in multi-label data) are masked out of the loss.

    .. math:: \ell_i = -\frac{1}{|K_i|}\sum_{k \in K_i} y_{ik}\log\sigma(z_{ik}) + (1-y_{ik})\log(1-\sigma(z_{ik}))
    """

    def __init__(self, *, pos_weight=None, model_kwargs: Callable[[dict], dict] | None = None):
        self.pos_weight = pos_weight
        self.model_kwargs = model_kwargs

    def __call__(self, model, batch: dict) -> dict:
        import torch
        import torch.nn.functional as F

        kwargs = self.model_kwargs(batch) if self.model_kwargs else {}
        raw = model(batch["x"], **kwargs)
        out = dict(raw) if isinstance(raw, Mapping) else {"logits": raw}
        logits = out["logits"]
        y = batch["y"].to(logits.dtype)
        if y.dim() == 1 and logits.dim() == 2 and logits.shape[1] == 1:
            logits = logits[:, 0]
            out["logits"] = logits
        y = y.reshape(logits.shape)
        mask = ~torch.isnan(y)
        pw = None
        if self.pos_weight is not None:
            pw = torch.as_tensor(self.pos_weight, dtype=logits.dtype, device=logits.device)
        elem = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(y), reduction="none",
                                                  pos_weight=pw)
        elem = elem * mask
        if elem.dim() > 1:
            per = elem.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        else:
            per = elem
        out["per_sample_loss"] = per
        return out


@dataclass
class TrainConfig:
    """Settings of one training run (all recorded in the run's JSON).

    Attributes
    ----------
    epochs : maximum number of passes over the train data.
    max_steps : stop after this many optimizer steps (None: no limit).
    batch_size : samples per step.
    lr, weight_decay : AdamW (or SGD) settings.
    optimizer : ``"adamw"``, ``"sgd"`` (momentum 0.9) or ``"lbfgs"`` (full-batch L-BFGS with a
        strong-Wolfe line search, ``lbfgs_max_iter`` iterations per epoch; ``lr`` is its initial
        step, 1.0 is usual; ``weight_decay`` becomes an L2 penalty ``wd/2 * ||theta||^2``; for
        deterministic objectives without inner state, e.g. a linear probe: set ``batch_size`` >= n).
    lbfgs_max_iter : L-BFGS iterations per epoch; training stops early once an epoch converges
        (fewer iterations than this were needed).
    scheduler : ``"constant"`` or ``"cosine"`` (over all planned steps, with ``warmup_steps``).
    schedule_steps : length of the cosine / warm-up schedule (None: the planned steps). A
        checkpoint records it; resuming with another length is refused (the learning rate of
        every later step would differ from an uninterrupted run's), so set it once when a run is
        to be trained in chunks.
    grad_clip : clip the global gradient norm (None: no clipping).
    seed : seeds shuffling, resampling and parameter initialisation done inside ``fit``.
    device : ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"auto"``.
    amp : bfloat16 autocast, only used when the device is CUDA.
    eval_every : evaluate every this many epochs.
    eval_every_steps : or every this many steps (overrides ``eval_every`` when set).
    select : key of the evaluator's dict that picks the best checkpoint (None: last).
    mode : ``"max"`` or ``"min"`` for ``select``.
    patience : stop after this many evaluations without improvement (None: never).
    min_delta : an improvement smaller than this does not reset patience.
    checkpoint_dir : write ``last`` (and ``best``) checkpoints here (None: keep in memory).
    keep_history_states : keep every evaluated state in memory (for DTO selection over all
        candidates; only for small models).
    drop_last : drop a last incomplete batch (useful for batch-statistics objectives).
    """

    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    lbfgs_max_iter: int = 10
    scheduler: str = "constant"
    warmup_steps: int = 0
    schedule_steps: int | None = None
    grad_clip: float | None = None
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    eval_every: int = 1
    eval_every_steps: int | None = None
    select: str | None = None
    mode: str = "max"
    patience: int | None = None
    min_delta: float = 0.0
    checkpoint_dir: str | None = None
    keep_history_states: bool = False
    drop_last: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise FairfoundryError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise FairfoundryError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in ("adamw", "sgd", "lbfgs"):
            raise FairfoundryError(f"unknown optimizer {self.optimizer!r}", hint="use adamw, sgd or lbfgs")
        if self.scheduler not in ("constant", "cosine"):
            raise FairfoundryError(f"unknown scheduler {self.scheduler!r}", hint="use constant or cosine")
        if self.mode not in ("max", "min"):
            raise FairfoundryError(f"mode must be 'max' or 'min', got {self.mode!r}")
        if not (self.lr > 0):
            raise FairfoundryError(f"lr must be > 0, got {self.lr}")


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    ``history`` holds one dict per evaluation (epoch, step, the evaluator's values);
    ``best`` is the history entry that was selected (None without evaluator);
    ``losses`` the mean training loss per epoch; ``stopped_early`` whether patience ran out;
    ``emissions`` codecarbon's estimate when tracking was on.
    """

    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    losses: list[float] = field(default_factory=list)
    epochs_run: int = 0
    steps: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    emissions: dict | None = None
    states: list[dict] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("states")
        return d


def _flatten_optimizer(state: dict) -> tuple[dict, dict]:
    """Split an optimizer state_dict into tensors (for safetensors) and JSON."""
    import torch

    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, st in state["state"].items():
        meta["state"][str(pid)] = {}
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
                meta["state"][str(pid)][k] = "__tensor__"
            elif isinstance(v, list) and any(isinstance(t, torch.Tensor) for t in v):  # L-BFGS history
                for i, t in enumerate(v):
                    if isinstance(t, torch.Tensor):
                        tensors[f"opt.{pid}.{k}.{i}"] = t.detach().cpu().contiguous()
                meta["state"][str(pid)][k] = {"__tensors__": [isinstance(t, torch.Tensor) for t in v]}
            else:
                meta["state"][str(pid)][k] = v
    return tensors, meta


def _unflatten_optimizer(tensors: dict, meta: dict) -> dict:
    state = {}

    def value(pid, k, v):
        if v == "__tensor__":
            return tensors[f"opt.{pid}.{k}"]
        if isinstance(v, dict) and "__tensors__" in v:
            return [tensors[f"opt.{pid}.{k}.{i}"] if is_t else None for i, is_t in enumerate(v["__tensors__"])]
        return v

    for pid, st in meta["state"].items():
        state[int(pid)] = {k: value(pid, k, v) for k, v in st.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


class Trainer:
    """Train ``model`` with ``objective`` and ``hooks`` (see the module docstring).

    Parameters
    ----------
    model : torch.nn.Module
    objective : callable ``(model, batch) -> dict``; default :class:`SupervisedObjective`.
    hooks : iterable of :class:`Hook`.
    config : :class:`TrainConfig` (or keyword arguments for one via ``**kwargs``).
    params : parameters to optimise (default: every parameter of the model with
        ``requires_grad``, plus those of the hooks' modules).
    evaluator : callable ``trainer -> dict[str, float]`` run on validation data.
    progress : callable ``progress(n)`` called with the number of finished steps.
    track_emissions : measure energy and CO2 with codecarbon's offline tracker.
    wrap : apply the hooks' ``wrap_model`` (False when the caller already did).
    country_iso_code : for the offline tracker's carbon intensity (ISO 3166 alpha-3).
    """

    def __init__(self, model, objective=None, *, hooks: Iterable[Hook] = (), config: TrainConfig | None = None,
                 params=None, evaluator: Callable[[Trainer], dict] | None = None,
                 progress: Callable[[int], None] | None = None, track_emissions: bool = False,
                 country_iso_code: str = "USA", wrap: bool = True, **kwargs):
        if config is None:
            config = TrainConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either config or keyword settings, not both")
        self.config = config
        self.device = resolve_device(config.device)
        self.hooks: list[Hook] = list(hooks)
        if wrap:  # wrap=False: the caller already applied the hooks' wrap_model
            for h in self.hooks:
                model = h.wrap_model(model)
        self.model = model.to(self.device)
        self.objective = objective if objective is not None else SupervisedObjective()
        self.evaluator = evaluator
        self.progress = progress
        self.track_emissions = track_emissions
        self.country_iso_code = country_iso_code
        self._params = params
        self.train_data = None
        self.epoch = 0
        self.step = 0
        self.should_stop = False
        self.generator = None
        self.optimizer = None
        self.scheduler = None
        self.result = TrainResult()

    # ------------------------------------------------------------------ data access for hooks
    def column(self, key: str):
        """A whole column of the train data as a CPU tensor (``"y"``, ``"group"``, ...).

        Works for :class:`ArrayData` and for datasets exposing ``columns`` (a dict of arrays,
        as :class:`~fairfoundry.adapt.ImageDataset` does), so pre-processing hooks need not load
        images to read labels and groups.
        """
        import torch

        data = self.train_data
        if isinstance(data, ArrayData):
            if key not in data:
                raise FairfoundryError(f"the training data has no {key!r} column (it has {', '.join(data.arrays)})")
            return data[key]
        cols = getattr(data, "columns", None)
        if not isinstance(cols, Mapping) or key not in cols or cols[key] is None:
            raise FairfoundryError(f"this method needs the {key!r} of every training sample, which the dataset "
                                   "does not expose", hint="give the dataset a `columns` dict (ImageDataset does)")
        return torch.as_tensor(cols[key])

    def sample_batch(self, n: int = 2) -> dict:
        """The first ``n`` training samples as a batch on the device (for shape probes)."""
        import torch

        data = self.train_data
        idx = torch.arange(min(n, len(data)))
        if isinstance(data, ArrayData):
            batch = data.batch(idx)
        else:
            from torch.utils.data import default_collate

            batch = default_collate([{**data[int(i)], "index": i} for i in idx])
        return {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}

    # ------------------------------------------------------------------ setup
    def hook_modules(self) -> dict:
        mods = {}
        for i, h in enumerate(self.hooks):
            for name, m in h.modules().items():
                mods[f"hook{i}.{getattr(h, 'name', 'hook')}.{name}"] = m
        return mods

    def _build_optimizer(self, planned_steps: int) -> None:
        import torch

        if self._params is not None:
            params = [p for p in self._params if p.requires_grad]
        else:
            params = [p for p in self.model.parameters() if p.requires_grad]
        for m in self.hook_modules().values():
            m.to(self.device)
            params += [p for p in m.parameters() if p.requires_grad]
        if not params:
            raise FairfoundryError("nothing to train: the model has no parameter with requires_grad=True")
        cfg = self.config
        if cfg.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "lbfgs":
            self.optimizer = torch.optim.LBFGS(params, lr=cfg.lr, max_iter=int(cfg.lbfgs_max_iter), history_size=20,
                                               line_search_fn="strong_wolfe", tolerance_grad=1e-5,
                                               tolerance_change=1e-8)
        else:
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        warm = max(0, int(cfg.warmup_steps))
        total = max(1, int(cfg.schedule_steps) if cfg.schedule_steps else planned_steps)
        self.schedule_steps = total

        def factor(step: int) -> float:
            if warm and step < warm:
                return (step + 1) / warm
            if cfg.scheduler == "cosine":
                t = min(1.0, (step - warm) / max(1, total - warm))
                return 0.5 * (1.0 + math.cos(math.pi * t))
            return 1.0

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    def _epoch_indices(self) -> Iterator:
        import numpy as np
        import torch

        n = len(self.train_data)
        for h in self.hooks:  # a hook may plan the epoch's batches itself (stratified batches)
            plan = h.batch_plan(self)
            if plan is not None:
                yield from (torch.as_tensor(b, dtype=torch.long) for b in plan)
                return
        probs = None
        for h in self.hooks:
            w = h.sample_weights(self)
            if w is not None:
                w = np.asarray(w, dtype=np.float64)
                probs = w if probs is None else probs * w
        if probs is None and self.config.optimizer == "lbfgs":  # deterministic full batches: views, no shuffle
            bs = self.config.batch_size
            yield from (slice(s, min(s + bs, n)) for s in range(0, n, bs))
            return
        if probs is not None:
            if probs.shape != (n,) or not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.sum() <= 0:
                raise FairfoundryError("sampling weights must be finite, non-negative and not all zero")
            order = torch.multinomial(torch.as_tensor(probs / probs.sum()), n, replacement=True,
                                      generator=self.generator)
        else:
            order = torch.randperm(n, generator=self.generator)
        bs = self.config.batch_size
        stop = n - (n % bs) if (self.config.drop_last and n >= bs) else n
        for s in range(0, stop, bs):
            yield order[s:s + bs]

    def _batches(self) -> Iterator[dict]:
        import torch

        if isinstance(self.train_data, ArrayData):
            for idx in self._epoch_indices():
                batch = self.train_data.batch(idx)
                yield {k: (v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                       for k, v in batch.items()}
            return
        # a generic torch Dataset of dict items
        from torch.utils.data import DataLoader

        indices = list(self._epoch_indices())
        order = torch.cat(indices) if indices else torch.empty(0, dtype=torch.long)
        loader = DataLoader(_IndexedSubset(self.train_data, order.tolist()),
                            batch_size=self.config.batch_size, shuffle=False,
                            drop_last=self.config.drop_last and len(order) >= self.config.batch_size)
        for batch in loader:
            yield {k: (v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                   for k, v in batch.items()}

    # ------------------------------------------------------------------ step
    def compute_loss(self, batch: dict):
        """Objective + hooks for one batch; returns ``(loss, out)``."""
        import torch

        out = self.objective(self.model, batch)
        for h in self.hooks:
            out = h.on_output(self, batch, out)
        per = out.get("per_sample_loss")
        loss = None
        if per is not None:
            w = batch.get("weight")
            w = torch.ones_like(per) if w is None else w.to(per.dtype)
            for h in self.hooks:
                bw = h.batch_weights(self, batch)
                if bw is not None:
                    w = w * bw.to(per.dtype)
            for h in self.hooks:
                replaced = h.loss(self, batch, out, per, w)
                if replaced is not None:
                    loss = replaced
                    break
            if loss is None:
                loss = (w * per).sum() / w.sum().clamp(min=1e-12)
        elif "loss" in out:
            loss = out["loss"]
        else:
            raise FairfoundryError("the objective returned neither 'loss' nor 'per_sample_loss'")
        for h in self.hooks:
            reg = h.regularizer(self, batch, out)
            if reg is not None:
                loss = loss + reg
        return loss, out

    def _train_step(self, batch: dict) -> float:
        import torch

        self.model.train()
        for m in self.hook_modules().values():
            m.train()
        use_amp = self.config.amp and self.device.type == "cuda"
        if self.config.optimizer == "lbfgs":
            return self._lbfgs_step(batch, use_amp)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
            loss, _ = self.compute_loss(batch)
        if not torch.isfinite(loss):
            raise FairfoundryError(f"training loss became {loss.item()} at step {self.step}",
                                   hint="lower the learning rate or check the inputs for NaN/inf")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.optimizer.step()
        return self._end_step(loss)

    def _end_step(self, loss) -> float:
        """After an optimizer step: scheduler, step count, ``on_step_end`` hooks, progress."""
        self.scheduler.step()
        self.step += 1
        for h in self.hooks:
            h.on_step_end(self, self.step)
        if self.progress is not None:
            self.progress(1)
        return float(loss.detach())

    def _lbfgs_step(self, batch: dict, use_amp: bool) -> float:
        """One L-BFGS step (``lbfgs_max_iter`` iterations with line search) on ``batch``."""
        import torch

        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        wd = float(self.config.weight_decay)

        def closure():
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
                loss, _ = self.compute_loss(batch)
            if wd:
                loss = loss + 0.5 * wd * sum((p * p).sum() for p in params)
            if not torch.isfinite(loss):
                raise FairfoundryError(f"training loss became {loss.item()} at step {self.step}",
                                       hint="check the inputs for NaN/inf")
            loss.backward()
            return loss

        state = self.optimizer.state[self.optimizer.param_groups[0]["params"][0]]
        before = int(state.get("n_iter", 0)), int(state.get("func_evals", 0))
        loss = self.optimizer.step(closure)
        group = self.optimizer.param_groups[0]
        iters, evals = int(state.get("n_iter", 0)) - before[0], int(state.get("func_evals", 0)) - before[1]
        cur, prev = float(loss.detach()), getattr(self, "_lbfgs_prev_loss", None)
        self._lbfgs_prev_loss = cur  # (the loss at the start of this step: prev - cur is the last epoch's gain)
        if (iters < int(group["max_iter"]) and evals < int(group["max_eval"])) or (
                prev is not None and abs(prev - cur) <= 1e-6 * max(1.0, abs(cur))):
            self.should_stop = True  # converged (gradient or change below tolerance): more epochs change nothing
        return self._end_step(loss)

    # ------------------------------------------------------------------ state
    def state_tensors(self) -> dict:
        """All trainable state as a flat dict of CPU tensors (model + hook modules)."""
        out = {f"model.{k}": v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        for prefix, m in self.hook_modules().items():
            out.update({f"{prefix}.{k}": v.detach().cpu().clone() for k, v in m.state_dict().items()})
        return out

    def load_state_tensors(self, tensors: Mapping) -> None:
        model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_sd)
        for prefix, m in self.hook_modules().items():
            sd = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
            if sd:
                m.load_state_dict(sd)

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write ``weights.safetensors`` (model, hooks, optimizer, RNG) and ``state.json``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.contiguous() for k, v in self.state_tensors().items()}
        opt_t, opt_meta = _flatten_optimizer(self.optimizer.state_dict()) if self.optimizer else ({}, None)
        tensors.update(opt_t)
        if self.generator is not None:
            tensors["rng.generator"] = self.generator.get_state()
        write_atomic(path / "weights.safetensors", lambda p: save_file(tensors, str(p)))
        state = {
            "epoch": self.epoch, "step": self.step, "config": asdict(self.config),
            "optimizer": opt_meta,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "schedule_steps": getattr(self, "schedule_steps", None),
            "hooks": [h.state_dict() for h in self.hooks],
            "history": self.result.history, "losses": self.result.losses,
            "best": self.result.best,
        }
        write_json_atomic(path / "state.json", state)
        return path

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` (call after setup)."""
        from safetensors.torch import load_file

        path = Path(path)
        wfile, sfile = path / "weights.safetensors", path / "state.json"
        if not wfile.exists() or not sfile.exists():
            raise FairfoundryError(f"no checkpoint in {path}", hint="expected weights.safetensors and state.json")
        tensors = load_file(str(wfile))
        state = json.loads(sfile.read_text())
        self.load_state_tensors(tensors)
        if state.get("optimizer") and self.optimizer is not None:
            self.optimizer.load_state_dict(_unflatten_optimizer(tensors, state["optimizer"]))
        saved_total = state.get("schedule_steps")
        cfg = self.config
        step_dependent = cfg.scheduler == "cosine" or int(cfg.warmup_steps) > 0
        if (saved_total is not None and step_dependent and self.scheduler is not None
                and int(saved_total) != self.schedule_steps):
            raise FairfoundryError(
                f"cannot resume {path}: its learning-rate schedule runs over {saved_total} steps, this "
                f"run's over {self.schedule_steps}; the cosine / warm-up values of every later step would "
                "differ from an uninterrupted run's",
                hint=f"resume with the same length (schedule_steps={saved_total}), or start the run with "
                     "schedule_steps set to the final length to train it in chunks")
        if state.get("scheduler") and self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if "rng.generator" in tensors and self.generator is not None:
            self.generator.set_state(tensors["rng.generator"])
        for h, hs in zip(self.hooks, state.get("hooks", []), strict=False):
            h.load_state_dict(hs)
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.result.history = state.get("history", [])
        self.result.losses = state.get("losses", [])
        self.result.best = state.get("best")

    # ------------------------------------------------------------------ eval
    def _is_better(self, value: float, best: float | None) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if best is None:
            return True
        d = self.config.min_delta
        return value > best + d if self.config.mode == "max" else value < best - d

    def _evaluate(self, best_state: dict) -> None:
        import torch

        self.model.eval()
        for m in self.hook_modules().values():
            m.eval()
        with torch.no_grad():
            metrics = dict(self.evaluator(self))
        entry = {"epoch": self.epoch, "step": self.step, **{k: _num(v) for k, v in metrics.items()}}
        self.result.history.append(entry)
        if self.config.keep_history_states:
            self.result.states.append(self.state_tensors())
        key = self.config.select
        if key is None:
            best_state["tensors"] = self.state_tensors()
            self.result.best = entry
            return
        if key not in metrics:
            raise FairfoundryError(f"the evaluator did not return the selection criterion {key!r}",
                                   hint=f"it returned: {', '.join(metrics)}")
        best_value = None if self.result.best is None else self.result.best.get(key)
        if self._is_better(entry[key], best_value):
            self.result.best = entry
            best_state["tensors"] = self.state_tensors()
            best_state["bad"] = 0
            if self.config.checkpoint_dir:
                self.save_checkpoint(Path(self.config.checkpoint_dir) / "best")
        else:
            best_state["bad"] = best_state.get("bad", 0) + 1
            if self.config.patience is not None and best_state["bad"] >= self.config.patience:
                self.should_stop = True
                self.result.stopped_early = True
        log.info("eval epoch %d step %d: %s", self.epoch, self.step,
                 ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float))))

    # ------------------------------------------------------------------ fit
    def fit(self, train_data, *, resume: str | os.PathLike | None = None) -> TrainResult:
        """Train; return a :class:`TrainResult`. The best (or last) weights are loaded at the end."""
        import torch

        if not isinstance(train_data, ArrayData) and not hasattr(train_data, "__getitem__"):
            raise FairfoundryError("train_data must be an ArrayData or a torch Dataset of dict items")
        if len(train_data) == 0:
            raise FairfoundryError("the training data is empty")
        self.train_data = train_data
        cfg = self.config
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(cfg.seed))
        n = len(train_data)
        per_epoch = (n // cfg.batch_size) if (cfg.drop_last and n >= cfg.batch_size) else math.ceil(n / cfg.batch_size)
        planned = per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps, per_epoch * cfg.epochs)
        import torch as _t

        with _t.random.fork_rng(devices=[]):  # modules hooks create here are seeded too
            _t.manual_seed(int(cfg.seed))
            for h in self.hooks:
                h.on_fit_start(self)
        self._build_optimizer(planned)
        if resume is not None:
            self.load_checkpoint(resume)
        best_state: dict = {}
        if self.result.best is not None:
            best_file = Path(resume).parent / "best" / "weights.safetensors" if resume is not None else None
            if best_file is not None and best_file.exists():  # the best checkpoint of the interrupted run
                from safetensors.torch import load_file

                best_state["tensors"] = {k: v for k, v in load_file(str(best_file)).items()
                                         if not k.startswith(("opt.", "rng."))}
            else:
                best_state["tensors"] = self.state_tensors()
        tracker = _start_tracker(self.country_iso_code) if self.track_emissions else None
        t0 = time.perf_counter()
        self.should_stop = False
        # parameters initialised lazily inside hooks/objectives draw from a seeded fork
        with torch.random.fork_rng(devices=[]):
            try:
                while self.epoch < cfg.epochs and not self.should_stop:
                    if cfg.max_steps is not None and self.step >= cfg.max_steps:
                        break  # a resumed run that already reached max_steps takes no further step
                    # dropout etc. draw from a per-epoch seed, so a resumed run matches
                    torch.manual_seed(int(cfg.seed) * 1_000_003 + self.epoch)
                    total, count = 0.0, 0
                    for batch in self._batches():
                        total += self._train_step(batch)
                        count += 1
                        if cfg.eval_every_steps and self.evaluator and self.step % cfg.eval_every_steps == 0:
                            self._evaluate(best_state)
                        if (cfg.max_steps is not None and self.step >= cfg.max_steps) or self.should_stop:
                            break
                    self.epoch += 1
                    self.result.losses.append(total / max(count, 1))
                    for h in self.hooks:
                        h.on_epoch_end(self, self.epoch)
                    if self.evaluator is not None and not cfg.eval_every_steps and self.epoch % cfg.eval_every == 0:
                        self._evaluate(best_state)
                    if cfg.checkpoint_dir:
                        self.save_checkpoint(Path(cfg.checkpoint_dir) / "last")
                    if cfg.max_steps is not None and self.step >= cfg.max_steps:
                        break
            finally:
                emissions = _stop_tracker(tracker) if tracker is not None else None
        self.result.seconds = time.perf_counter() - t0
        self.result.emissions = emissions
        self.result.epochs_run = self.epoch
        self.result.steps = self.step
        if best_state.get("tensors") is not None and cfg.select is not None:
            self.load_state_tensors(best_state["tensors"])
        self.model.eval()
        return self.result


class _IndexedSubset:
    """A view of a Dataset in a given order that adds ``"index"`` to each dict item."""

    def __init__(self, data, order: list[int]):
        self.data, self.order = data, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> dict:
        import torch

        j = self.order[i]
        item = dict(self.data[j])
        item["index"] = torch.tensor(j)
        return item


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _start_tracker(country_iso_code: str):
    """codecarbon's offline tracker (never uses the network); None when codecarbon is absent."""
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        log.warning("codecarbon is not installed; emissions are not tracked (pip install 'fairfoundry[carbon]')")
        return None
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    try:
        kwargs = {"country_iso_code": country_iso_code, "log_level": "error",
                  "measure_power_secs": 15, "tracking_mode": "process"}
        try:  # codecarbon >= 3 selects outputs by list; nothing is written to disk or network
            tracker = OfflineEmissionsTracker(output_methods=[], **kwargs)
        except TypeError:
            tracker = OfflineEmissionsTracker(save_to_file=False, **kwargs)
        tracker.start()
    except Exception as exc:  # codecarbon probes hardware; a failure must not break training
        log.warning("codecarbon could not start: %s", exc)
        return None
    return tracker


def _stop_tracker(tracker) -> dict | None:
    try:
        kg = tracker.stop()
        data = tracker.final_emissions_data
    except Exception as exc:
        log.warning("codecarbon could not stop: %s", exc)
        return None
    out = {
        "emissions_kg_co2eq": _num(kg),
        "energy_kwh": _num(getattr(data, "energy_consumed", float("nan"))),
        "duration_s": _num(getattr(data, "duration", float("nan"))),
        "country_iso_code": getattr(data, "country_iso_code", None),
        "cpu_model": getattr(data, "cpu_model", None),
        "gpu_model": getattr(data, "gpu_model", None),
        "tracker": "codecarbon OfflineEmissionsTracker",
        "note": "estimate: codecarbon uses a TDP-based model when no power sensor (RAPL/NVML) is readable",
    }
    return out
