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
           "init_share_after", "sincos_2d", "EMATeacherMixin"]

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

    def export_report(self) -> dict:
        """What :meth:`export_encoder` ships: ``{"network": ...}`` plus objective diagnostics."""
        return {"network": "student"}

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - 0.5) / 0.5``: the pixel normalisation recorded in exported checkpoints."""
        return (x - 0.5) / 0.5

    @classmethod
    def options(cls) -> dict[str, Any]:
        """Keyword options of the objective with their defaults (the paper's)."""
        sig = inspect.signature(cls.__init__)
        return {k: p.default for k, p in sig.parameters.items()
                if p.kind is p.KEYWORD_ONLY and k != "augment"}


class EMATeacherMixin:
    """Export choice and initialisation tracking for objectives with an EMA teacher (DINO, I-JEPA).

    ``export="teacher"`` ships the EMA teacher (the papers' choice); ``"student"`` the trained
    student. The buffer ``teacher_init_share`` is :func:`init_share_after` of the momenta
    applied so far (checkpointed, so it survives a resume); :meth:`export_report` carries a
    warning when an exported teacher is more than ``warn_init_share`` its initialisation (after
    100 steps of a 0.996 -> 1 cosine schedule it is 82 %, after 1,000 steps 13.5 %).
    """

    def _init_teacher(self, export: str, warn_init_share: float) -> None:
        if export not in ("teacher", "student"):
            raise FairfoundryError(f"export must be 'teacher' or 'student', got {export!r}")
        self.export = export
        self.warn_init_share = float(warn_init_share)
        self.register_buffer("teacher_init_share", torch.ones(()))

    def _track_ema(self, momentum: float) -> None:
        self.teacher_init_share.mul_(momentum)

    def export_report(self) -> dict:
        share = float(self.teacher_init_share)
        rep = {"network": self.export, "teacher_init_share": share}
        if self.export == "teacher" and share > self.warn_init_share:
            rep["warning"] = (
                f"the exported {self.name} teacher is still {share:.0%} its random initialisation (its EMA "
                "momentum rises to 1 over the run, so a short run barely moves it); train longer, lower "
                "the base momentum, or export the student (--option export=student)")
        return rep


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


def ema_momentum(step: int, total_steps: int, *, base: float, final: float = 1.0,
                 schedule: str = "cosine") -> float:
    r"""Schedule of the EMA momentum, from ``base`` at step 0 to ``final`` at the end.

    ``schedule="cosine"`` (BYOL, Grill et al., NeurIPS 2020; DINO):

    .. math:: m_t = m_{\mathrm{final}} - (m_{\mathrm{final}} - m_0)\,\frac{1 + \cos(\pi t / T)}{2}

    ``schedule="linear"`` (I-JEPA, Assran et al., CVPR 2023):
    :math:`m_t = m_0 + (m_{\mathrm{final}} - m_0)\, t / T`.
    """
    t = min(max(step, 0), max(total_steps, 1)) / max(total_steps, 1)
    if schedule == "linear":
        return base + (final - base) * t
    if schedule != "cosine":
        raise FairfoundryError(f"unknown EMA schedule {schedule!r}", hint="use cosine or linear")
    return final - (final - base) * (1 + math.cos(math.pi * t)) / 2


def init_share_after(momenta) -> float:
    r"""Share of an EMA teacher that is still its initialisation: :math:`\prod_t m_t`.

    After updates :math:`\theta_T \leftarrow m_t \theta_T + (1 - m_t) \theta_S` from
    :math:`\theta_T = \theta_0`, the teacher is :math:`\prod_t m_t \cdot \theta_0` plus a
    weighted average of student iterates.
    """
    return float(math.prod(momenta))


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
