"""I-JEPA: joint-embedding predictive pre-training, re-implemented from the paper.

Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture", CVPR 2023. From one *context* block of an image, a narrow transformer
*predictor* predicts the representations of several *target* blocks, as computed by a
*target encoder*, the EMA of the context encoder. Targets are removed from the context, so the
model must infer missing regions in representation space rather than pixel space.

Paper defaults: 4 target blocks of area 0.15-0.2 and aspect ratio 0.75-1.5; one context
block of area 0.85-1 (square) minus the targets; predictor depth 12, width 384; EMA momentum
0.996 rising linearly to 1 (``ema_schedule="linear"``); augmentation random resized crop (area 0.3-1) only. Block sizes are drawn
once per batch (positions per image) and context sets are cut to the batch's smallest, as in
the paper's collator, so a batch is one tensor. Exported weights are the target encoder's
(``export="teacher"``; ``"student"``: the context encoder); the run summary records how much of
it is still the initialisation and warns above ``warn_init_share``.

Follows the paper's mask collator in drawing the aspect ratio uniformly and keeping every block
side strictly shorter than the grid's (before issue 18: log-uniform aspect, blocks up to the whole
grid). Differs from the paper in: block scale and aspect are two independent draws (the authors'
collator reuses one uniform number for both).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._errors import FairfoundryError
from ._backbone import ViTBackbone, gather_tokens
from ._objective import (
    EMATeacherMixin,
    Objective,
    ema_momentum,
    ema_update,
    make_ema,
    register,
    sincos_2d,
    transformer_blocks,
)
from .losses import ijepa_loss

__all__ = ["IJEPA", "sample_block_masks"]


def _block_shape(rows, cols, scale, aspect, generator):
    """Block of area ``scale`` x grid and aspect ratio h/w, both uniform in their ranges, each side
    strictly shorter than the grid's (as the paper's mask collator; grids of side 1 excepted)."""
    s = float(torch.empty(1).uniform_(*scale, generator=generator))
    a = float(torch.empty(1).uniform_(*aspect, generator=generator))
    area = s * rows * cols
    h = int(round(math.sqrt(area * a)))
    w = int(round(math.sqrt(area / a)))
    return min(max(h, 1), max(rows - 1, 1)), min(max(w, 1), max(cols - 1, 1))


def _block_at(rows, cols, h, w, generator) -> torch.Tensor:
    top = int(torch.randint(0, rows - h + 1, (1,), generator=generator))
    left = int(torch.randint(0, cols - w + 1, (1,), generator=generator))
    r = torch.arange(top, top + h)
    c = torch.arange(left, left + w)
    return (r[:, None] * cols + c[None, :]).reshape(-1)


def sample_block_masks(batch: int, rows: int, cols: int, *, n_targets: int = 4,
                       target_scale=(0.15, 0.2), target_aspect=(0.75, 1.5),
                       context_scale=(0.85, 1.0), generator=None, tries: int = 20):
    """Context and target token indices for a batch (row-major in the patch grid).

    Returns
    -------
    context : LongTensor ``(B, Kc)``
        Context tokens (context block minus all targets), the same count for every image.
    targets : LongTensor ``(B, M, Kt)``
        ``M = n_targets`` blocks of the same shape for every image of the batch.

    If the targets cover the whole context block after ``tries`` placements (possible only
    on very small grids), the context falls back to the context block itself.
    """
    th, tw = _block_shape(rows, cols, target_scale, target_aspect, generator)
    ch, cw = _block_shape(rows, cols, context_scale, (1.0, 1.0), generator)
    contexts, targets = [], []
    for _ in range(batch):
        for _attempt in range(tries):
            blocks = [_block_at(rows, cols, th, tw, generator) for _ in range(n_targets)]
            ctx = _block_at(rows, cols, ch, cw, generator)
            covered = torch.cat(blocks).unique()
            ctx_only = ctx[~torch.isin(ctx, covered)]
            if len(ctx_only):
                break
        else:
            ctx_only = ctx
        targets.append(torch.stack(blocks))
        contexts.append(ctx_only)
    k = min(len(c) for c in contexts)
    cut = []
    for c in contexts:
        pick = torch.randperm(len(c), generator=generator)[:k]
        cut.append(c[pick].sort().values)
    return torch.stack(cut), torch.stack(targets)


class _Predictor(nn.Module):
    def __init__(self, embed_dim: int, dim: int, depth: int, heads: int):
        super().__init__()
        self.dim = dim
        self.embed = nn.Linear(embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.blocks = transformer_blocks(dim, depth, heads)
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, embed_dim)

    def forward(self, ctx_tokens, ctx_idx, tgt_idx, grid):
        # ctx_tokens (B, Kc, D), ctx_idx (B, Kc), tgt_idx (B, M, Kt)
        b, m, kt = tgt_idx.shape
        pos = sincos_2d(self.dim, *grid).to(ctx_tokens.device, ctx_tokens.dtype)
        pos = pos.unsqueeze(0).expand(b, -1, -1)
        z = self.embed(ctx_tokens) + gather_tokens(pos, ctx_idx)
        z = z.repeat_interleave(m, dim=0)                       # (B*M, Kc, d)
        flat_tgt = tgt_idx.reshape(b * m, kt)
        q = self.mask_token.to(z.dtype) + gather_tokens(pos.repeat_interleave(m, dim=0), flat_tgt)
        y = self.norm(self.blocks(torch.cat([z, q], dim=1)))[:, -kt:]
        return self.proj(y)                                      # (B*M, Kt, D)


@register("ijepa")
class IJEPA(EMATeacherMixin, Objective):
    """I-JEPA objective (context encoder, EMA target encoder, block masks, predictor).

    Parameters
    ----------
    backbone : ViTBackbone
    predictor_dim, predictor_depth, predictor_heads : int
        Narrow predictor transformer (384, 12, 12).
    n_targets : int
        Target blocks per image (4).
    target_scale, target_aspect, context_scale : (float, float)
        Block-area and aspect-ratio ranges ((0.15, 0.2), (0.75, 1.5), (0.85, 1.0)).
    ema_momentum : float
        Base momentum of the target encoder (0.996), raised to 1 over the run.
    ema_schedule : ``"linear"`` (the paper's) or ``"cosine"`` (DINO's; fairfoundry's default
        before issue 18).
    export : ``"teacher"`` (the target encoder, the paper's) or ``"student"`` (context encoder).
    warn_init_share : warn when the exported target encoder is more than this share its
        initialisation.
    """

    augment_overrides = {"scale": (0.3, 1.0), "rotation": 0.0, "brightness": 0.0,
                         "contrast": 0.0, "gamma": 0.0, "color_jitter": 0.0, "grayscale": 0.0,
                         "blur": 0.0, "noise": 0.0}

    def __init__(self, backbone: ViTBackbone, *, augment=None, predictor_dim: int = 384,
                 predictor_depth: int = 12, predictor_heads: int = 12, n_targets: int = 4,
                 target_scale: tuple = (0.15, 0.2), target_aspect: tuple = (0.75, 1.5),
                 context_scale: tuple = (0.85, 1.0), ema_momentum: float = 0.996,
                 ema_schedule: str = "linear", export: str = "teacher", warn_init_share: float = 0.5):
        super().__init__(backbone, augment=augment)
        self._init_teacher(export, warn_init_share)
        if ema_schedule not in ("linear", "cosine"):
            raise FairfoundryError(f"ema_schedule must be 'linear' or 'cosine', got {ema_schedule!r}")
        self.ema_schedule = ema_schedule
        self.target_encoder = make_ema(backbone)
        self.predictor = _Predictor(backbone.embed_dim, predictor_dim, predictor_depth,
                                    predictor_heads)
        self.n_targets = int(n_targets)
        self.target_scale, self.target_aspect = tuple(target_scale), tuple(target_aspect)
        self.context_scale = tuple(context_scale)
        self.momentum = float(ema_momentum)

    def compute_loss(self, images, *, text=None, generator=None):
        x = self.normalize(self.augment(images, size=images.shape[-1], generator=generator))
        grid = self.backbone.grid(x)
        ctx_idx, tgt_idx = sample_block_masks(
            x.shape[0], *grid, n_targets=self.n_targets, target_scale=self.target_scale,
            target_aspect=self.target_aspect, context_scale=self.context_scale,
            generator=generator)
        ctx_idx, tgt_idx = ctx_idx.to(x.device), tgt_idx.to(x.device)
        b, m, kt = tgt_idx.shape
        with torch.no_grad():
            _, h = self.target_encoder.forward_tokens(x)
            h = gather_tokens(h.repeat_interleave(m, dim=0), tgt_idx.reshape(b * m, kt))
        _, z = self.backbone.forward_tokens(x, keep=ctx_idx)
        pred = self.predictor(z, ctx_idx, tgt_idx, grid)
        return ijepa_loss(pred.float(), h.float()), {"context_tokens": float(ctx_idx.shape[1])}

    def on_step_end(self, step: int, total_steps: int) -> None:
        m = ema_momentum(step, total_steps, base=self.momentum, schedule=self.ema_schedule)
        ema_update(self.target_encoder, self.backbone, m)
        self._track_ema(m)

    def export_encoder(self) -> ViTBackbone:
        return self.target_encoder if self.export == "teacher" else self.backbone
