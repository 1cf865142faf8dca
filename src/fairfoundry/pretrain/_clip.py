"""CLIP and SigLIP image-text pre-training on the captions (reports, labels) of a manifest.

- CLIP: Radford et al., ICML 2021. Symmetric InfoNCE over the batch's image-text similarity
  matrix (:func:`~fairfoundry.pretrain.losses.clip_loss`) with a learnable temperature:
  the log logit scale starts at :math:`\\log(1/0.07)` and the scale is clamped at 100.
- SigLIP: Zhai et al., ICCV 2023. An independent sigmoid per image-text pair
  (:func:`~fairfoundry.pretrain.losses.siglip_loss`) with a learnable scale (log scale starts at
  :math:`\\log 10`) and bias (starts at -10).

The image tower is the ViT backbone plus a linear projection; the text tower is a small
transformer over UTF-8 bytes (:func:`~fairfoundry.pretrain.byte_tokenize`: no vocabulary to
download or fit), mean-pooled over its tokens and projected to the shared space. The text
tower is smaller than the papers' (12 layers, width 512) by default, because manifest captions
are short; ``text_width`` / ``text_depth`` set it. Augmentation is open_clip's: a random
resized crop of 90-100 % of the image only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._backbone import ViTBackbone
from ._data import VOCAB_SIZE
from ._objective import Objective, register
from .losses import clip_loss, siglip_loss

__all__ = ["CLIP", "SigLIP", "TextTransformer"]


class TextTransformer(nn.Module):
    """Byte-level text encoder: embeddings + positions, pre-norm transformer, mean pool.

    Mean pooling over the text's tokens rather than CLIP's end-token pooling: without a causal
    mask and a BPE vocabulary, a byte-level end token starts out nearly identical for every
    caption, and learning stalls on short, similar captions.
    """

    def __init__(self, *, width: int = 256, depth: int = 4, heads: int = 4,
                 context_length: int = 77, out_dim: int = 512):
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB_SIZE, width)
        self.positional_embedding = nn.Parameter(torch.randn(context_length, width) * 0.01)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width,
                                           activation="gelu", batch_first=True, norm_first=True,
                                           dropout=0.0)
        self.transformer = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.ln_final = nn.LayerNorm(width)
        self.proj = nn.Linear(width, out_dim, bias=False)
        self.context_length = context_length

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens[:, : self.context_length]
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        x = self.transformer(x, src_key_padding_mask=tokens == 0)
        x = self.ln_final(x)
        keep = (tokens != 0).unsqueeze(-1).to(x.dtype)
        return self.proj((x * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0))


class _ImageText(Objective):
    needs_text = True
    #: open_clip's training transform: random resized crop of 90-100 % of the image, nothing else
    augment_overrides = {"scale": (0.9, 1.0), "rotation": 0.0, "brightness": 0.0,
                         "contrast": 0.0, "gamma": 0.0, "color_jitter": 0.0, "grayscale": 0.0,
                         "blur": 0.0, "noise": 0.0}

    def __init__(self, backbone: ViTBackbone, *, augment=None, embed_dim: int = 512,
                 text_width: int = 256, text_depth: int = 4, text_heads: int = 4,
                 context_length: int = 77):
        super().__init__(backbone, augment=augment)
        self.image_proj = nn.Linear(backbone.embed_dim, embed_dim, bias=False)
        self.text = TextTransformer(width=text_width, depth=text_depth, heads=text_heads,
                                    context_length=context_length, out_dim=embed_dim)

    def encode(self, images, text, generator):
        x = self.normalize(self.augment(images, size=images.shape[-1], generator=generator))
        img = nn.functional.normalize(self.image_proj(self.backbone(x)).float(), dim=-1)
        txt = nn.functional.normalize(self.text(text).float(), dim=-1)
        return img, txt


@register("clip")
class CLIP(_ImageText):
    """CLIP objective: symmetric InfoNCE with a learnable temperature.

    Parameters
    ----------
    backbone : ViTBackbone
    embed_dim : int
        Shared embedding width (512).
    text_width, text_depth, text_heads, context_length : int
        Byte-level text transformer (256, 4, 4, 77).
    init_temperature : float
        Initial temperature (0.07): ``logit_scale = log(1 / 0.07)``.
    max_logit_scale : float
        Clamp of the exponentiated scale (100).
    """

    def __init__(self, backbone: ViTBackbone, *, augment=None, embed_dim: int = 512,
                 text_width: int = 256, text_depth: int = 4, text_heads: int = 4,
                 context_length: int = 77, init_temperature: float = 0.07,
                 max_logit_scale: float = 100.0):
        super().__init__(backbone, augment=augment, embed_dim=embed_dim, text_width=text_width,
                         text_depth=text_depth, text_heads=text_heads,
                         context_length=context_length)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)))
        self.max_log_scale = math.log(max_logit_scale)

    def compute_loss(self, images, *, text=None, generator=None):
        img, txt = self.encode(images, text, generator)
        scale = self.logit_scale.clamp(max=self.max_log_scale).exp()
        return clip_loss(img, txt, scale), {"logit_scale": float(scale.detach())}

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Clamp the log scale to ``[0, log 100]`` after each step, as open_clip does: a clamp
        only in the forward pass would stop its gradient for good once it passed the bound."""
        with torch.no_grad():
            self.logit_scale.clamp_(0.0, self.max_log_scale)


@register("siglip")
class SigLIP(_ImageText):
    """SigLIP objective: pairwise sigmoid loss with a learnable scale and bias.

    Parameters
    ----------
    backbone : ViTBackbone
    embed_dim, text_width, text_depth, text_heads, context_length : int
        As for :class:`CLIP`.
    init_logit_scale : float
        Initial exponentiated scale (10).
    init_logit_bias : float
        Initial bias (-10).
    """

    def __init__(self, backbone: ViTBackbone, *, augment=None, embed_dim: int = 512,
                 text_width: int = 256, text_depth: int = 4, text_heads: int = 4,
                 context_length: int = 77, init_logit_scale: float = 10.0,
                 init_logit_bias: float = -10.0):
        super().__init__(backbone, augment=augment, embed_dim=embed_dim, text_width=text_width,
                         text_depth=text_depth, text_heads=text_heads,
                         context_length=context_length)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(init_logit_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(init_logit_bias)))

    def compute_loss(self, images, *, text=None, generator=None):
        img, txt = self.encode(images, text, generator)
        scale = self.logit_scale.exp()
        return (siglip_loss(img, txt, scale, self.logit_bias),
                {"logit_scale": float(scale.detach()),
                 "logit_bias": float(self.logit_bias.detach())})
