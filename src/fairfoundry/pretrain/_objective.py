"""The objective interface, its registry, and helpers shared by objectives (EMA, sin-cos).

Adding an objective is one file: subclass :class:`Objective`, implement
:meth:`Objective.compute_loss`, and decorate the class with ``@register("name")`` in a module
``pretrain/_<name>.py``. :mod:`._registry` imports every module that declares an objective
(found by :mod:`._names`, which also gives the CLI's ``--objective`` help without importing
torch); the runner reads :data:`OBJECTIVES`.
"""

from __future__ import annotations

import abc
import copy
import inspect
import math
from typing import Any, ClassVar

import torch
from torch import nn

from .._errors import FairfoundryError, did_you_mean
from ._augment import Augment
from ._backbone import ViTBackbone

__all__ = ["OBJECTIVES", "Objective", "register", "build_objective", "ema_momentum",
           "sincos_2d"]

OBJECTIVES: dict[str, type[Objective]] = {}

#: pixel normalisation of every fairfoundry pre-trained ViT: ``(x - 0.5) / 0.5``
PIXEL_MEAN = (0.5, 0.5, 0.5)
PIXEL_STD = (0.5, 0.5, 0.5)


def register(name: str):
    """Class decorator adding an :class:`Objective` to :data:`OBJECTIVES` under ``name``."""

    def deco(cls):
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} registered twice")
        OBJECTIVES[name] = cls
        cls.name = name
        return cls

    return deco


class Objective(nn.Module, abc.ABC):
    """A self-supervised or vision-language objective around a :class:`ViTBackbone`.

    Parameters
    ----------
    backbone : ViTBackbone
        The encoder being pre-trained (exported by :meth:`export_encoder`).
    augment : Augment
        Augmentation recipe (see :class:`~fairfoundry.pretrain.Augment`).
    """

    name: ClassVar[str] = ""
    #: True for objectives that need a caption per image (CLIP, SigLIP)
    needs_text: ClassVar[bool] = False
    #: fields of :class:`Augment` this objective's paper sets (applied over the modality preset)
    augment_overrides: ClassVar[dict[str, Any]] = {}

    def __init__(self, backbone: ViTBackbone, *, augment: Augment | None = None):
        super().__init__()
        self.backbone = backbone
        self.augment = augment if augment is not None else Augment.preset("xray")

    @abc.abstractmethod
    def compute_loss(self, images: torch.Tensor, *, text: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Loss of one batch.

        Parameters
        ----------
        images : Tensor ``(B, C, S, S)`` in ``[0, 1]``, not augmented
        text : LongTensor ``(B, L)``, tokens (objectives with ``needs_text``)
        generator : torch.Generator
            Randomness for augmentation and masking (seeded by the runner).

        Returns
        -------
        (scalar loss Tensor, dict of floats to log)
        """

    def on_step_start(self, step: int, total_steps: int) -> None:
        """Called before each step's loss (schedules such as DINO's teacher temperature)."""

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Called after each optimiser step (EMA teachers update here)."""

    def export_encoder(self) -> ViTBackbone:
        """The encoder whose weights are shipped (the EMA teacher for DINO and I-JEPA)."""
        return self.backbone

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - 0.5) / 0.5``: the pixel normalisation recorded in exported checkpoints."""
        return (x - 0.5) / 0.5

    @classmethod
    def options(cls) -> dict[str, Any]:
        """Keyword options of the objective with their defaults (the paper's)."""
        sig = inspect.signature(cls.__init__)
        return {k: p.default for k, p in sig.parameters.items()
                if p.kind is p.KEYWORD_ONLY and k != "augment"}


def build_objective(name: str, backbone: ViTBackbone, *, augment: Augment | None = None,
                    **options: Any) -> Objective:
    """Instantiate a registered objective, with a clear error for unknown names/options."""
    from . import _registry  # noqa: F401  (fills OBJECTIVES)

    if name not in OBJECTIVES:
        raise FairfoundryError(f"unknown objective {name!r}",
                               hint=did_you_mean(name, OBJECTIVES, what="objectives"))
    cls = OBJECTIVES[name]
    valid = cls.options()
    bad = sorted(set(options) - set(valid))
    if bad:
        raise FairfoundryError(
            f"unknown option(s) for objective {name!r}: {', '.join(bad)}",
            hint=f"options are: {', '.join(f'{k}={v}' for k, v in valid.items())}",
        )
    return cls(backbone, augment=augment, **options)


def ema_momentum(step: int, total_steps: int, *, base: float, final: float = 1.0) -> float:
    r"""Cosine schedule of the EMA momentum, from ``base`` at step 0 to ``final`` at the end.

    .. math:: m_t = m_{\mathrm{final}} - (m_{\mathrm{final}} - m_0)\,\frac{1 + \cos(\pi t / T)}{2}

    Source: Grill et al., BYOL (NeurIPS 2020), used by DINO and I-JEPA.
    """
    t = min(max(step, 0), max(total_steps, 1)) / max(total_steps, 1)
    return final - (final - base) * (1 + math.cos(math.pi * t)) / 2


def make_ema(module: nn.Module) -> nn.Module:
    """A frozen deep copy of ``module`` (an EMA teacher / target encoder)."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``teacher = m * teacher + (1 - m) * student`` for every parameter."""
    t_params = list(teacher.parameters())
    s_params = list(student.parameters())
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, [s.detach() for s in s_params], alpha=1 - momentum)


def sincos_2d(dim: int, rows: int, cols: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine positional embeddings ``(rows*cols, dim)`` (MAE, I-JEPA).

    Half of the channels encode the row, half the column, each as sines and cosines of
    geometrically spaced frequencies (Vaswani et al. 2017, extended to 2-D by MAE).
    """
    if dim % 4:
        raise FairfoundryError(f"sin-cos positional embeddings need a width divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter))
    ys, xs = torch.meshgrid(torch.arange(rows, dtype=torch.float32),
                            torch.arange(cols, dtype=torch.float32), indexing="ij")
    out = []
    for coord in (ys.reshape(-1), xs.reshape(-1)):
        ang = coord[:, None] * omega[None, :]
        out += [torch.sin(ang), torch.cos(ang)]
    return torch.cat(out, dim=1)


def transformer_blocks(dim: int, depth: int, num_heads: int, *, mlp_ratio: float = 4.0) -> nn.Sequential:
    """``depth`` pre-norm transformer blocks (timm's ViT ``Block``)."""
    from timm.models.vision_transformer import Block

    if dim % num_heads:
        raise FairfoundryError(f"width {dim} is not divisible by {num_heads} heads")
    return nn.Sequential(*[Block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True)
                           for _ in range(depth)])
