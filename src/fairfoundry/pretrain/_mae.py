"""Masked autoencoder (MAE) pre-training, re-implemented from the paper.

He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022. A random 75 % of
the patches is hidden; the encoder sees only the visible patches; a light decoder gets the
encoded visible tokens plus a shared mask token at every hidden position (with fixed sin-cos
positions) and predicts the hidden patches' pixels. The loss is the mean squared error on the
hidden patches only (:func:`~fairfoundry.pretrain.losses.mae_loss`), optionally against
per-patch normalised pixels (``norm_pix_loss``, the paper's better-representations variant).

Paper defaults: mask ratio 0.75, decoder width 512, depth 8, 16 heads; augmentation is
random resized crop (area 0.2-1) only.
"""

from __future__ import annotations

import torch
from torch import nn

from ._backbone import ViTBackbone, gather_tokens, patchify
from ._objective import Objective, register, sincos_2d, transformer_blocks
from .losses import mae_loss

__all__ = ["MAE"]


@register("mae")
class MAE(Objective):
    """Masked autoencoder objective.

    Parameters
    ----------
    backbone : ViTBackbone
    mask_ratio : float
        Fraction of patches hidden from the encoder (0.75).
    decoder_dim, decoder_depth, decoder_heads : int
        Decoder transformer (512, 8, 16).
    norm_pix_loss : bool
        Standardise each target patch by its own mean and variance (False).
    """

    augment_overrides = {"scale": (0.2, 1.0), "rotation": 0.0, "brightness": 0.0,
                         "contrast": 0.0, "gamma": 0.0, "color_jitter": 0.0, "grayscale": 0.0,
                         "blur": 0.0, "noise": 0.0}

    def __init__(self, backbone: ViTBackbone, *, augment=None, mask_ratio: float = 0.75,
                 decoder_dim: int = 512, decoder_depth: int = 8, decoder_heads: int = 16,
                 norm_pix_loss: bool = False):
        super().__init__(backbone, augment=augment)
        if not 0 < mask_ratio < 1:
            from .._errors import FairfoundryError

            raise FairfoundryError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.mask_ratio = float(mask_ratio)
        self.norm_pix_loss = bool(norm_pix_loss)
        p, c = backbone.patch_size, int(backbone.net.patch_embed.proj.in_channels)
        self.decoder_embed = nn.Linear(backbone.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.decoder = transformer_blocks(decoder_dim, decoder_depth, decoder_heads)
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, p * p * c)
        self.decoder_dim = decoder_dim

    def random_mask(self, batch: int, n: int, *, generator=None, device="cpu"):
        """Per-image random masks: ``(keep (B, K) indices, mask (B, N) with 1 = hidden)``."""
        n_keep = max(1, int(round(n * (1 - self.mask_ratio))))
        noise = torch.rand(batch, n, generator=generator).to(device)
        order = noise.argsort(dim=1)
        keep = order[:, :n_keep].sort(dim=1).values
        mask = torch.ones(batch, n, device=device)
        mask.scatter_(1, keep, 0.0)
        return keep, mask

    def forward_pred(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Decoder predictions ``(B, N, p*p*C)`` from normalised images and kept indices."""
        tokens, prefix, grid = self.backbone.embed_patches(x)
        b, n, _ = tokens.shape
        prefix_out, enc = self.backbone.run_blocks(prefix, gather_tokens(tokens, keep))
        enc = self.decoder_embed(enc)
        full = self.mask_token.to(enc.dtype).expand(b, n, -1).clone()
        full.scatter_(1, keep.unsqueeze(-1).expand(-1, -1, self.decoder_dim), enc)
        full = full + sincos_2d(self.decoder_dim, *grid).to(full.device, full.dtype)
        y = torch.cat([self.decoder_embed(prefix_out), full], dim=1)
        y = self.decoder_norm(self.decoder(y))[:, prefix_out.shape[1]:]
        return self.decoder_pred(y)

    def compute_loss(self, images, *, text=None, generator=None):
        x = self.normalize(self.augment(images, size=images.shape[-1], generator=generator))
        grid = self.backbone.grid(x)
        keep, mask = self.random_mask(x.shape[0], grid[0] * grid[1], generator=generator,
                                      device=x.device)
        pred = self.forward_pred(x, keep)
        target = patchify(x, self.backbone.patch_size)
        loss = mae_loss(pred.float(), target.float(), mask, norm_pix_loss=self.norm_pix_loss)
        return loss, {}
