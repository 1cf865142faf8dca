"""SimCLR contrastive pre-training, re-implemented from the paper.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
ICML 2020. Two augmented views of each image go through the encoder and a projection MLP;
NT-Xent (:func:`~fairfoundry.pretrain.losses.nt_xent_loss`) pulls the two views of an image
together and pushes the other images of the batch away.

Paper defaults: projection MLP with a 2048-wide hidden layer (batch norm, ReLU) to 128
dimensions, temperature 0.1. The augmentations are the modality preset's (no colour jitter on
X-rays unless asked; see :class:`~fairfoundry.pretrain.Augment`). Both views pass through the
encoder and projector as one batch of 2N images, so the projector's batch norm sees one set
of statistics, as in the reference implementation (before issue 18: each view separately).
"""

from __future__ import annotations

import torch
from torch import nn

from ._backbone import ViTBackbone
from ._objective import Objective, register
from .losses import nt_xent_loss

__all__ = ["SimCLR"]


@register("simclr")
class SimCLR(Objective):
    """SimCLR objective.

    Parameters
    ----------
    backbone : ViTBackbone
    proj_hidden, proj_dim : int
        Projection head widths (2048, 128).
    temperature : float
        NT-Xent temperature (0.1).
    """

    def __init__(self, backbone: ViTBackbone, *, augment=None, proj_hidden: int = 2048,
                 proj_dim: int = 128, temperature: float = 0.1):
        super().__init__(backbone, augment=augment)
        self.temperature = float(temperature)
        self.projector = nn.Sequential(
            nn.Linear(backbone.embed_dim, proj_hidden), nn.BatchNorm1d(proj_hidden),
            nn.ReLU(inplace=True), nn.Linear(proj_hidden, proj_dim),
        )

    def compute_loss(self, images, *, text=None, generator=None):
        size = images.shape[-1]
        v1 = self.normalize(self.augment(images, size=size, generator=generator))
        v2 = self.normalize(self.augment(images, size=size, generator=generator))
        # one 2N batch, as the reference implementation: the projector's batch norm normalises
        # both views with the same statistics (two separate N batches would leak which view a
        # sample is through per-view statistics)
        z1, z2 = self.projector(self.backbone(torch.cat([v1, v2]))).chunk(2)
        return nt_xent_loss(z1.float(), z2.float(), temperature=self.temperature), {}
