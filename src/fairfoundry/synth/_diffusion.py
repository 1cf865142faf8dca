r"""A class x attribute-conditional denoising diffusion model with classifier-free guidance.

Training (Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020): with
:math:`\bar\alpha_t = \prod_{s \le t}(1-\beta_s)`, an image :math:`x_0`, noise
:math:`\epsilon \sim N(0, I)` and a uniform step :math:`t`,

.. math:: x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon, \qquad
          \mathcal{L} = \lVert \epsilon - \epsilon_\theta(x_t, t, c) \rVert^2 .

The condition :math:`c` is one value per condition column (a label and protected attributes);
each column has an embedding table whose rows are summed and added to the time embedding.
With probability ``p_uncond`` all columns are replaced by their "no condition" token, so one
network learns the conditional and the unconditional model (Ho & Salimans, "Classifier-Free
Diffusion Guidance", 2022). Sampling mixes them with guidance scale :math:`s`:

.. math:: \tilde\epsilon = \epsilon_\theta(x_t, t, \varnothing) + s\,(\epsilon_\theta(x_t, t, c) - \epsilon_\theta(x_t, t, \varnothing))

(:math:`s = 1`: the plain conditional model; Ho & Salimans' :math:`w` is :math:`s - 1`), with
DDIM's deterministic updates (Song et al., "Denoising Diffusion Implicit Models", ICLR 2021,
:math:`\eta = 0`) or ancestral DDPM steps. Samples come from an exponential moving average of
the weights (decay ``min(ema_decay, (1 + k) / (10 + k))`` at step ``k``).

The network is ``diffusers``' ``UNet2DModel``; the noise schedules are ``diffusers``' DDPM and
DDIM schedulers. Training runs through fairfoundry's one loop
(:class:`fairfoundry.adapt.Trainer`): seeded, checkpointed to safetensors, resumable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError
from ._conditions import Conditions
from ._registry import register_generator

__all__ = ["DiffusionConfig", "DiffusionGenerator"]

log = logging.getLogger(__name__)

#: config fields that may change between a checkpoint and its resumed run
RUNTIME_FIELDS = ("steps", "device", "checkpoint_every")


@dataclass
class DiffusionConfig:
    """Settings of :class:`DiffusionGenerator` (all recorded in ``generator.json``).

    Attributes
    ----------
    image_size : side of the square images the model sees and produces (28-64 on CPU).
    channels : 1 (grayscale, X-rays) or 3.
    base_channels : width of the first U-Net level; level ``i`` has ``base_channels * channel_mult[i]``.
    channel_mult : widths of the U-Net levels (one down-sampling between consecutive levels).
    layers_per_block : residual blocks per level.
    attention : self-attention at the lowest-resolution level.
    norm_groups : GroupNorm groups (must divide every level's width).
    timesteps : diffusion steps :math:`T` of training.
    beta_schedule : ``"squaredcos_cap_v2"`` (cosine, Nichol & Dhariwal 2021) or ``"linear"``
        (Ho et al. 2020: :math:`\\beta` from 1e-4 to 0.02).
    p_uncond : probability of dropping the condition in training (classifier-free guidance).
    ema_decay : maximum decay of the weight average used for sampling.
    steps : optimizer steps (AdamW), ``batch_size`` images each.
    batch_size, lr, weight_decay, grad_clip : optimisation.
    seed : seeds initialisation, batches, noise and time steps.
    device : ``cpu``, ``cuda``, ``mps`` or ``auto``.
    checkpoint_every : write a resumable checkpoint at the first epoch end after this many steps.
    balance : ``"none"`` (images drawn uniformly) or ``"cells"``: each image is drawn with
        probability :math:`1 / (K n_c)` where :math:`n_c` is the size of its condition cell (the
        intersection of all condition columns) and :math:`K` the number of cells, so every cell is
        seen equally often however small it is (the weights go through the training loop's
        ``sample_weights`` hook; draws are with replacement).
    joint_embedding : also give every condition cell (the intersection of all condition columns)
        its own learned embedding, added to the per-column ones. With per-column embeddings only,
        the condition is additive (``ring`` + ``bright``), and a small cell is drawn toward what its
        attributes look like in the large cells; the joint embedding lets the model learn the cell
        itself. The no-condition row of guidance is a cell of its own.
    scale_shift : condition the residual blocks by adaptive group normalisation (Dhariwal & Nichol,
        "Diffusion Models Beat GANs on Image Synthesis", 2021: :math:`h = \\mathrm{GN}(h)(1 + s) + b`
        with :math:`(s, b)` a linear map of the time + condition embedding; ``diffusers``'
        ``resnet_time_scale_shift="scale_shift"``) instead of adding the embedding as a channel bias
        (Ho et al. 2020). A multiplicative condition lets the small network switch features on and
        off per cell, not only shift them.
    snr_gamma : Min-SNR-:math:`\\gamma` loss weighting (Hang et al., "Efficient Diffusion Training via
        Min-SNR Weighting Strategy", ICCV 2023): the noise-prediction loss of step :math:`t` is
        weighted by :math:`\\min(\\mathrm{SNR}_t, \\gamma) / \\mathrm{SNR}_t` with
        :math:`\\mathrm{SNR}_t = \\bar\\alpha_t / (1 - \\bar\\alpha_t)`, so the nearly clean steps,
        whose noise is hardest to predict and matters least, no longer dominate the gradient
        and the noisy steps, where the global layout (which shape) is decided, get more of it.
        The paper uses :math:`\\gamma = 5`. ``None``: unweighted (Ho et al.).
    """

    image_size: int = 32
    channels: int = 1
    base_channels: int = 16
    channel_mult: tuple[int, ...] = (1, 2, 2)
    layers_per_block: int = 1
    attention: bool = True
    norm_groups: int = 8
    timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    p_uncond: float = 0.1
    ema_decay: float = 0.999
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 200
    balance: str = "none"
    joint_embedding: bool = False
    scale_shift: bool = False
    snr_gamma: float | None = None

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        checks = [
            (self.image_size >= 8, f"image_size must be >= 8, got {self.image_size}"),
            (self.channels in (1, 3), f"channels must be 1 or 3, got {self.channels}"),
            (len(self.channel_mult) >= 1, "channel_mult must not be empty"),
            (self.image_size % (2 ** (len(self.channel_mult) - 1)) == 0,
             f"image_size {self.image_size} must be divisible by 2**{len(self.channel_mult) - 1} "
             f"(one halving per extra level of channel_mult={self.channel_mult})"),
            (all(self.base_channels * m % self.norm_groups == 0 for m in self.channel_mult),
             f"norm_groups={self.norm_groups} must divide every level width"),
            (self.timesteps >= 2, f"timesteps must be >= 2, got {self.timesteps}"),
            (self.beta_schedule in ("squaredcos_cap_v2", "linear"),
             f"unknown beta_schedule {self.beta_schedule!r} (use squaredcos_cap_v2 or linear)"),
            (0.0 <= self.p_uncond < 1.0, f"p_uncond must be in [0, 1), got {self.p_uncond}"),
            (0.0 <= self.ema_decay < 1.0, f"ema_decay must be in [0, 1), got {self.ema_decay}"),
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.balance in ("none", "cells"), f"unknown balance {self.balance!r} (use none or cells)"),
            (self.snr_gamma is None or self.snr_gamma > 0, f"snr_gamma must be > 0, got {self.snr_gamma}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise FairfoundryError(msg)

    @classmethod
    def from_user(cls, **kw) -> DiffusionConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kw) - names)
        if unknown:
            raise FairfoundryError(f"unknown generator setting(s) {', '.join(unknown)}",
                                   hint=f"valid settings: {', '.join(sorted(names))}")
        return cls(**{k: v for k, v in kw.items() if v is not None})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channel_mult"] = list(self.channel_mult)
        return d

    def identity(self) -> dict:
        """The fields a checkpoint must share with the run that resumes or loads it."""
        out = {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}
        # generators trained before these settings existed keep their hash
        if out["balance"] == "none":
            del out["balance"]
        for key in ("joint_embedding", "scale_shift", "snr_gamma"):
            if not out[key]:
                del out[key]
        return out


def config_hash(config: DiffusionConfig, conditions: Conditions) -> str:
    """sha256 (16 hex) of the architecture/training identity and the condition vocabulary."""
    payload = {"config": config.identity(), "columns": list(conditions.columns),
               "values": [list(v) for v in conditions.values]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _make_schedulers(cfg: DiffusionConfig):
    from diffusers import DDIMScheduler, DDPMScheduler

    kw = {"num_train_timesteps": cfg.timesteps, "beta_schedule": cfg.beta_schedule, "clip_sample": True,
          "prediction_type": "epsilon"}
    return DDPMScheduler(**kw), DDIMScheduler(**kw, set_alpha_to_one=True)


def _build_net(cfg: DiffusionConfig, sizes: list[int]):
    import torch
    from diffusers import UNet2DModel

    levels = len(cfg.channel_mult)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if cfg.attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    widths = tuple(cfg.base_channels * m for m in cfg.channel_mult)
    temb = widths[0] * 4

    class CondUNet(torch.nn.Module):
        """``UNet2DModel`` + one embedding table per condition column (last row: no condition)."""

        def __init__(self):
            super().__init__()
            self.unet = UNet2DModel(sample_size=cfg.image_size, in_channels=cfg.channels, out_channels=cfg.channels,
                                    block_out_channels=widths, layers_per_block=cfg.layers_per_block,
                                    down_block_types=tuple(down), up_block_types=tuple(up),
                                    norm_num_groups=cfg.norm_groups, class_embed_type="identity",
                                    attention_head_dim=min(8, widths[-1]),
                                    resnet_time_scale_shift="scale_shift" if cfg.scale_shift else "default")
            self.cond = torch.nn.ModuleList([torch.nn.Embedding(k + 1, temb) for k in sizes])
            if cfg.joint_embedding:  # one row per combination of codes, "no condition" included
                strides, total = [], 1
                for k in sizes:
                    strides.append(total)
                    total *= k + 1
                self.register_buffer("strides", torch.as_tensor(strides, dtype=torch.long), persistent=False)
                self.joint = torch.nn.Embedding(total, temb)
                torch.nn.init.normal_(self.joint.weight, std=0.02)
            for e in self.cond:
                torch.nn.init.normal_(e.weight, std=0.02)

        def forward(self, x, t, codes):
            emb = sum(e(codes[:, j]) for j, e in enumerate(self.cond))
            if cfg.joint_embedding:
                emb = emb + self.joint((codes * self.strides).sum(dim=1))
            return self.unet(x, t, class_labels=emb).sample

    class DiffusionModule(torch.nn.Module):
        """The trained network and its EMA copy (no gradients) in one module, checkpointed together."""

        def __init__(self):
            super().__init__()
            self.net = CondUNet()
            self.ema = CondUNet()
            self.ema.load_state_dict(self.net.state_dict())
            self.ema.requires_grad_(False)

        def forward(self, x, t, codes):
            return self.net(x, t, codes)

    return DiffusionModule()


class _DiffusionObjective:
    """Noise-prediction MSE per sample at a uniform time step, with condition dropout."""

    def __init__(self, scheduler, *, sizes: list[int], p_uncond: float, timesteps: int,
                 snr_gamma: float | None = None):
        self.scheduler, self.sizes, self.p_uncond, self.timesteps = scheduler, sizes, p_uncond, timesteps
        self.snr_gamma = snr_gamma

    def __call__(self, model, batch: dict) -> dict:
        import torch

        x0, codes = batch["x"], batch["c"].clone()
        b = x0.shape[0]
        noise = torch.randn(x0.shape).to(x0.device)
        t = torch.randint(0, self.timesteps, (b,)).to(x0.device)
        drop = (torch.rand(b) < self.p_uncond).to(x0.device)
        null = torch.as_tensor(self.sizes, device=codes.device).expand_as(codes)
        codes = torch.where(drop[:, None], null, codes)
        xt = self.scheduler.add_noise(x0, noise, t)
        eps = model(xt, t, codes)
        loss = ((eps - noise) ** 2).flatten(1).mean(dim=1)
        if self.snr_gamma is not None:
            loss = loss * min_snr_weights(self.scheduler, t, self.snr_gamma).to(loss)
        return {"per_sample_loss": loss}


def min_snr_weights(scheduler, t, gamma: float):
    r"""Min-SNR-:math:`\gamma` weights :math:`\min(\mathrm{SNR}_t, \gamma) / \mathrm{SNR}_t` of the
    noise-prediction loss at steps ``t`` (Hang et al. 2023), from the scheduler's
    :math:`\bar\alpha_t`."""
    import torch

    abar = scheduler.alphas_cumprod.to(torch.float64)[t.cpu()]
    snr = abar / (1.0 - abar)
    return (torch.clamp(snr, max=float(gamma)) / snr).to(torch.float32)


def _hooks(cfg: DiffusionConfig, checkpoint_dir: Path | None, state_extra: dict):
    from ..adapt import Hook

    class EMA(Hook):
        """Exponential moving average of the weights, updated after every step."""

        name = "ema"

        def on_step_end(self, trainer, step):
            import torch

            decay = min(cfg.ema_decay, (1.0 + step) / (10.0 + step))
            with torch.no_grad():
                for pe, p in zip(trainer.model.ema.parameters(), trainer.model.net.parameters(), strict=True):
                    pe.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
                for be, b in zip(trainer.model.ema.buffers(), trainer.model.net.buffers(), strict=True):
                    be.copy_(b)

    class Checkpoint(Hook):
        """A resumable checkpoint (``checkpoints/last``) every ``checkpoint_every`` steps, at epoch ends."""

        name = "checkpoint"

        def __init__(self):
            self.saved = 0

        def on_epoch_end(self, trainer, epoch):
            if checkpoint_dir is None:
                return
            if trainer.step - self.saved >= cfg.checkpoint_every or trainer.step >= cfg.steps:
                self.saved = trainer.step
                from .._io import write_json_atomic

                trainer.save_checkpoint(checkpoint_dir / "last")
                write_json_atomic(checkpoint_dir / "config.json", state_extra)

        def state_dict(self):
            return {"saved": self.saved}

        def load_state_dict(self, state):
            self.saved = int(state.get("saved", 0))

    class CellBalance(Hook):
        """Draw images so that every condition cell is seen equally often (``balance="cells"``)."""

        name = "cell_balance"

        def sample_weights(self, trainer):
            return cell_balance_weights(trainer.train_data["c"].numpy())

    return [EMA(), Checkpoint()] + ([CellBalance()] if cfg.balance == "cells" else [])


def cell_balance_weights(codes) -> np.ndarray:
    """Sampling weights :math:`1 / (K n_c)` that make every condition cell (a distinct row of
    ``codes`` ``[n, k]``) equally likely; they sum to 1."""
    codes = np.asarray(codes)
    _, inverse, counts = np.unique(codes.reshape(len(codes), -1), axis=0, return_inverse=True,
                                   return_counts=True)
    return 1.0 / (len(counts) * counts[inverse.reshape(-1)].astype(float))


@register_generator("ddpm")
class DiffusionGenerator:
    """Conditional DDPM/DDIM generator with classifier-free guidance (see the module docstring).

    Parameters
    ----------
    config : DiffusionConfig
    conditions : Conditions
        Condition columns and their value vocabularies (from the training manifest).

    Examples
    --------
    >>> from fairfoundry.synth import DiffusionConfig, DiffusionGenerator, make_toy_shapes
    >>> toy = make_toy_shapes(size=16, n_per_cell=4, seed=0)
    >>> gen = DiffusionGenerator(DiffusionConfig(image_size=16, channel_mult=(1, 2), steps=2,
    ...                                          batch_size=8, attention=False), toy.conditions)
    >>> _ = gen.fit(toy.images, toy.codes)
    >>> gen.sample([[0, 1]] * 2, seed=0, sample_steps=2).shape
    torch.Size([2, 1, 16, 16])
    """

    Config = DiffusionConfig

    def __init__(self, config: DiffusionConfig, conditions: Conditions):
        self.config = config
        self.conditions = conditions
        self.module = _build_net(config, conditions.sizes)
        self.train_info: dict = {}

    @property
    def hash(self) -> str:
        return config_hash(self.config, self.conditions)

    def fit(self, images, codes, *, checkpoint_dir=None, resume: bool = False, progress=None) -> DiffusionGenerator:
        """Train on ``images`` ``[n, C, S, S]`` in ``[-1, 1]`` with condition codes ``[n, k]``.

        ``checkpoint_dir``: write resumable checkpoints there; ``resume``: continue from its
        ``last`` checkpoint (same config identity required, checked by the caller).
        """
        import torch

        from ..adapt import ArrayData, TrainConfig, Trainer

        cfg = self.config
        x = torch.as_tensor(images, dtype=torch.float32)
        c = torch.as_tensor(codes, dtype=torch.long)
        if x.ndim != 4 or tuple(x.shape[1:]) != (cfg.channels, cfg.image_size, cfg.image_size):
            raise FairfoundryError(f"images must be [n, {cfg.channels}, {cfg.image_size}, {cfg.image_size}], "
                                   f"got {list(x.shape)}")
        n = x.shape[0]
        per_epoch = math.ceil(n / cfg.batch_size)
        # one spare epoch: a run extended with --resume from a partial last epoch still ends at `steps`
        tcfg = TrainConfig(epochs=math.ceil(cfg.steps / per_epoch) + 1, max_steps=cfg.steps, batch_size=cfg.batch_size,
                           lr=cfg.lr, weight_decay=cfg.weight_decay, optimizer="adamw", grad_clip=cfg.grad_clip,
                           seed=cfg.seed, device=cfg.device)
        ddpm, _ = _make_schedulers(cfg)
        objective = _DiffusionObjective(ddpm, sizes=self.conditions.sizes, p_uncond=cfg.p_uncond,
                                        timesteps=cfg.timesteps, snr_gamma=cfg.snr_gamma)
        ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
        extra = {"config": cfg.to_dict(), "conditions": self.conditions.to_dict(), "hash": self.hash}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.module = _build_net(cfg, self.conditions.sizes)  # seeded initialisation
        trainer = Trainer(self.module, objective, hooks=_hooks(cfg, ckpt, extra), config=tcfg, progress=progress)
        resume_from = ckpt / "last" if (resume and ckpt is not None) else None
        result = trainer.fit(ArrayData(x=x, c=c), resume=resume_from)
        self.module = trainer.model.cpu().eval()
        self.train_info = {"steps": result.steps, "epochs": result.epochs_run, "seconds": result.seconds,
                           "loss_per_epoch": result.losses, "n_images": int(n),
                           "resumed_from_step": None}
        return self

    def sample(self, codes, *, seed: int = 0, guidance: float = 2.0, sample_steps: int = 25,
               sampler: str = "ddim", batch_size: int = 64, device: str | None = None, progress=None):
        """Generate one image per row of ``codes`` ``[m, k]``; returns ``[m, C, S, S]`` in ``[-1, 1]`` (CPU).

        ``sampler``: ``"ddim"`` (deterministic, ``sample_steps`` steps) or ``"ddpm"`` (ancestral,
        ``sample_steps`` steps spaced over the schedule). ``guidance``: the scale :math:`s` above.
        """
        import torch

        from ..adapt import resolve_device

        if sampler not in ("ddim", "ddpm"):
            raise FairfoundryError(f"unknown sampler {sampler!r}", hint="use ddim or ddpm")
        if sample_steps < 1 or sample_steps > self.config.timesteps:
            raise FairfoundryError(f"sample_steps must be in 1..{self.config.timesteps}, got {sample_steps}")
        cfg = self.config
        dev = resolve_device(device or cfg.device)
        codes = torch.as_tensor(codes, dtype=torch.long)
        ddpm, ddim = _make_schedulers(cfg)
        sched = ddim if sampler == "ddim" else ddpm
        net = self.module.ema.to(dev).eval()
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        null = torch.as_tensor(self.conditions.sizes, dtype=torch.long)
        outs = []
        with torch.inference_mode():
            for s in range(0, codes.shape[0], batch_size):
                c = codes[s:s + batch_size]
                b = c.shape[0]
                x = torch.randn((b, cfg.channels, cfg.image_size, cfg.image_size), generator=gen).to(dev)
                cc = torch.cat([c, null.expand(b, -1)]).to(dev)
                sched.set_timesteps(sample_steps)
                for t in sched.timesteps:
                    tt = torch.full((2 * b,), int(t), dtype=torch.long, device=dev)
                    eps_c, eps_u = net(torch.cat([x, x]), tt, cc).chunk(2)
                    eps = eps_u + guidance * (eps_c - eps_u)
                    kw = {"eta": 0.0} if sampler == "ddim" else {}
                    x = sched.step(eps, t, x, generator=gen, **kw).prev_sample
                outs.append(x.clamp(-1, 1).cpu())
                if progress is not None:
                    progress(b)
        self.module.ema.cpu()
        return torch.cat(outs)

    # ------------------------------------------------------------------ persistence
    def save_weights(self, path) -> Path:
        """EMA weights as safetensors, with the config hash in the metadata."""
        from safetensors.torch import save_file

        from .._io import write_atomic

        tensors = {k: v.detach().cpu().contiguous() for k, v in self.module.ema.state_dict().items()}
        meta = {"generator": self.name, "config_hash": self.hash}
        return write_atomic(Path(path), lambda p: save_file(tensors, str(p), metadata=meta))

    def load_weights(self, path) -> None:
        """Load EMA weights written by :meth:`save_weights`; another config's file is an error."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.exists():
            raise FairfoundryError(f"generator weights not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
        except Exception as exc:
            raise FairfoundryError(f"cannot read generator weights {path}: {exc}".splitlines()[0]) from exc
        if meta.get("config_hash") != self.hash:
            raise FairfoundryError(
                f"generator checkpoint {path} was written for another config (hash {meta.get('config_hash')}, "
                f"expected {self.hash} from generator.json)", hint="use the generator.json saved with these weights")
        try:
            self.module.ema.load_state_dict(tensors)
            self.module.net.load_state_dict(tensors)
        except RuntimeError as exc:
            raise FairfoundryError(f"generator checkpoint {path} does not fit its config: "
                                   f"{str(exc).splitlines()[0]}") from exc
