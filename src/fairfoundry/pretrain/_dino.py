"""DINO self-distillation with no labels, re-implemented from the paper.

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021.
A student network (backbone + projection head) is trained to match the output distribution
of a teacher network, an exponential moving average (EMA) of the student, across crops: the
teacher sees the global crops, the student all crops (multi-crop: global and small local crops).
Collapse is avoided by *centring* the teacher outputs (subtracting a running mean) and
*sharpening* them (low teacher temperature); see :func:`~fairfoundry.pretrain.losses.dino_loss`.

Paper defaults: head MLP 2048-2048-256 then a weight-normalised linear layer to 65,536
prototypes; student temperature 0.1; teacher temperature warmed up linearly from 0.04 to its
final value over the first 30 % of training (the paper: 0.04 -> 0.07 over the first 30 of 100
epochs; its code's default final value is 0.04, i.e. no warm-up, and 0.04 is the default here
because a higher teacher temperature can collapse short runs); centre momentum 0.9; teacher EMA momentum
0.996 rising to 1 on a cosine schedule; 2 global crops (area 0.4-1, full resolution) and
8 local crops (area 0.05-0.4, 96/224 of the resolution). Exported weights are the teacher's,
as in the paper's evaluations (``export="teacher"``); ``export="student"`` ships the student.
A short run's teacher is mostly its initialisation (82 % after 100 steps): the run summary
records the share and warns.

Differs from the paper in: no freezing of the last layer during the first epoch, and a
constant weight decay (the runner's ``weight_decay``; the paper's is cosine 0.04 -> 0.4).
"""

from __future__ import annotations

import torch
from torch import nn

from .._errors import FairfoundryError
from ._backbone import ViTBackbone, check_image_size
from ._objective import EMATeacherMixin, Objective, ema_momentum, ema_update, make_ema, register
from .losses import dino_loss

__all__ = ["DINO", "DINOHead"]


class DINOHead(nn.Module):
    """MLP (GELU) to a bottleneck, L2-normalised, then a weight-normalised linear layer."""

    def __init__(self, in_dim: int, out_dim: int, *, hidden: int = 2048, bottleneck: int = 256,
                 layers: int = 3, norm_last_layer: bool = True):
        super().__init__()
        dims = [in_dim] + [hidden] * (layers - 1)
        mods: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            mods += [nn.Linear(a, b), nn.GELU()]
        mods.append(nn.Linear(dims[-1], bottleneck))
        self.mlp = nn.Sequential(*mods)
        last = nn.Linear(bottleneck, out_dim, bias=False)
        self.last_layer = nn.utils.parametrizations.weight_norm(last)
        self.last_layer.parametrizations.weight.original0.data.fill_(1.0)
        if norm_last_layer:
            self.last_layer.parametrizations.weight.original0.requires_grad_(False)

    def forward(self, x):
        x = nn.functional.normalize(self.mlp(x), dim=-1)
        return self.last_layer(x)


@register("dino")
class DINO(EMATeacherMixin, Objective):
    """DINO objective (student, EMA teacher, centring, sharpening, multi-crop).

    Parameters
    ----------
    backbone : ViTBackbone
    out_dim : int
        Number of prototypes (65,536).
    head_hidden, head_bottleneck : int
        Head widths (2048, 256).
    student_temp, teacher_temp : float
        Softmax temperatures (0.1, 0.04); ``teacher_temp`` is the value after the warm-up.
    warmup_teacher_temp : float
        Teacher temperature at step 0 (0.04), raised linearly to ``teacher_temp``.
    warmup_teacher_temp_frac : float
        Fraction of the run spent on that warm-up (0.3: 30 of the paper's 100 epochs).
    center_momentum : float
        Momentum of the running centre (0.9).
    teacher_momentum : float
        Base EMA momentum of the teacher (0.996), raised to 1 on a cosine schedule.
    local_crops : int
        Number of local crops (8); 0 gives plain two-view self-distillation.
    local_size : int, optional
        Side of local crops; default 96/224 of the image size rounded to whole patches.
    global_scale, local_scale : (float, float)
        Crop-area ranges ((0.4, 1), (0.05, 0.4)).
    export : ``"teacher"`` (the paper's evaluations) or ``"student"``.
    warn_init_share : warn when the exported teacher is more than this share its initialisation
        (:class:`~fairfoundry.pretrain._objective.EMATeacherMixin`).
    """

    def __init__(self, backbone: ViTBackbone, *, augment=None, out_dim: int = 65536,
                 head_hidden: int = 2048, head_bottleneck: int = 256, student_temp: float = 0.1,
                 teacher_temp: float = 0.04, warmup_teacher_temp: float = 0.04,
                 warmup_teacher_temp_frac: float = 0.3, center_momentum: float = 0.9,
                 teacher_momentum: float = 0.996, local_crops: int = 8,
                 local_size: int | None = None, global_scale: tuple = (0.4, 1.0),
                 local_scale: tuple = (0.05, 0.4), export: str = "teacher",
                 warn_init_share: float = 0.5):
        super().__init__(backbone, augment=augment)
        self._init_teacher(export, warn_init_share)
        self.head = DINOHead(backbone.embed_dim, out_dim, hidden=head_hidden,
                             bottleneck=head_bottleneck)
        self.teacher_backbone = make_ema(backbone)
        self.teacher_head = make_ema(self.head)
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.student_temp, self.teacher_temp = float(student_temp), float(teacher_temp)
        self.final_teacher_temp = float(teacher_temp)
        self.warmup_teacher_temp = float(warmup_teacher_temp)
        self.warmup_teacher_temp_frac = float(warmup_teacher_temp_frac)
        self.center_momentum = float(center_momentum)
        self.teacher_momentum = float(teacher_momentum)
        self.local_crops = int(local_crops)
        self.momentum_now = self.teacher_momentum
        p = backbone.patch_size
        if local_size is None:
            local_size = max(p, int(round(backbone.image_size * 96 / 224 / p)) * p)
        if self.local_crops:
            check_image_size(local_size, p, what="DINO local crop size")
        self.local_size = int(local_size)
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)
        if self.local_crops < 0:
            raise FairfoundryError(f"local_crops must be >= 0, got {local_crops}")

    def compute_loss(self, images, *, text=None, generator=None):
        size = images.shape[-1]
        g_aug = self.augment.with_scale(self.global_scale)
        l_aug = self.augment.with_scale(self.local_scale)
        globals_ = [self.normalize(g_aug(images, size=size, generator=generator)) for _ in range(2)]
        locals_ = [self.normalize(l_aug(images, size=self.local_size, generator=generator))
                   for _ in range(self.local_crops)]
        b = images.shape[0]
        with torch.no_grad():
            t_out = self.teacher_head(self.teacher_backbone(torch.cat(globals_))).float()
        student = [self.head(self.backbone(torch.cat(globals_))).float()]
        if locals_:
            student.append(self.head(self.backbone(torch.cat(locals_))).float())
        s_out = list(torch.cat(student).split(b))
        t_chunks = list(t_out.split(b))
        loss = dino_loss(s_out, t_chunks, self.center, student_temp=self.student_temp,
                         teacher_temp=self.teacher_temp)
        with torch.no_grad():
            q = torch.softmax((t_out - self.center) / self.teacher_temp, dim=-1)
            entropy = float(-(q * q.clamp_min(1e-12).log()).sum(-1).mean())
            batch_center = t_out.mean(dim=0, keepdim=True)
            self.center.mul_(self.center_momentum).add_(batch_center * (1 - self.center_momentum))
        # cross entropy = teacher entropy + KL(teacher || student): the KL is the part the
        # student controls, so it is what must go down while centring moves the teacher
        return loss, {"teacher_temp": self.teacher_temp, "teacher_entropy": entropy,
                      "kl": float(loss.detach()) - entropy, "teacher_momentum": self.momentum_now}

    def on_step_start(self, step: int, total_steps: int) -> None:
        """Teacher temperature of this step: linear warm-up, then constant (the paper's implementation details)."""
        warm = self.warmup_teacher_temp_frac * total_steps
        t = min(step / warm, 1.0) if warm > 0 else 1.0
        self.teacher_temp = (self.warmup_teacher_temp
                             + t * (self.final_teacher_temp - self.warmup_teacher_temp))
        self.momentum_now = ema_momentum(step, total_steps, base=self.teacher_momentum)

    def on_step_end(self, step: int, total_steps: int) -> None:
        m = ema_momentum(step, total_steps, base=self.teacher_momentum)
        ema_update(self.teacher_backbone, self.backbone, m)
        ema_update(self.teacher_head, self.head, m)
        self._track_ema(m)

    def export_encoder(self) -> ViTBackbone:
        return self.teacher_backbone if self.export == "teacher" else self.backbone
