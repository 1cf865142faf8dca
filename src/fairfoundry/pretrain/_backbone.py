"""ViT backbones for pre-training: any timm VisionTransformer, with token-level access.

This module imports torch; :mod:`fairfoundry.pretrain` imports it lazily.

Every objective works on a :class:`ViTBackbone`, a thin wrapper around a timm
``VisionTransformer`` that exposes what self-supervised objectives need and timm's
``forward_features`` does not: running the encoder on a *subset* of patch tokens (MAE,
I-JEPA), positional embeddings resampled to any input grid (DINO's local crops), and the
patch grid of an input. The wrapped model is a plain timm model, so the exported weights load
back with ``timm.create_model(**spec) + load_state_dict`` and need no fairfoundry code.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
from torch import nn

from .._errors import FairfoundryError

__all__ = ["ViTBackbone", "build_vit", "parse_model_name", "check_image_size", "patchify"]


def parse_model_name(model: str) -> str:
    """Strip the ``timm:`` prefix from a model name (``timm:vit_tiny_patch16_224``)."""
    name = str(model).strip()
    if name.startswith("timm:"):
        name = name[len("timm:"):]
    if ":" in name:
        raise FairfoundryError(
            f"model {model!r} is not a timm model name",
            hint="pre-training builds a timm ViT from scratch: use e.g. timm:vit_tiny_patch16_224",
        )
    return name


def check_image_size(image_size: int, patch_size: int, *, what: str = "--image-size") -> int:
    """Validate that ``image_size`` holds a whole, non-empty grid of patches; return the grid side.

    Raises
    ------
    FairfoundryError
        If the image is smaller than one patch or not a multiple of the patch size.
    """
    image_size, patch_size = int(image_size), int(patch_size)
    if image_size < patch_size:
        raise FairfoundryError(
            f"{what} {image_size} is smaller than the patch size {patch_size}: the patch grid "
            "would be empty",
            hint=f"use an image size of at least {patch_size} (a multiple of {patch_size}), "
            "or a model with smaller patches (--patch-size)",
        )
    if image_size % patch_size:
        lo = max(patch_size, image_size // patch_size * patch_size)
        raise FairfoundryError(
            f"{what} {image_size} is not a multiple of the patch size {patch_size}",
            hint=f"use {lo} or {lo + patch_size}",
        )
    return image_size // patch_size


def build_vit(model: str = "vit_tiny_patch16_224", *, image_size: int = 224,
              patch_size: int | None = None, embed_dim: int | None = None,
              depth: int | None = None, num_heads: int | None = None, in_chans: int = 3,
              **kwargs: Any):
    """Create a randomly initialised timm ViT for pre-training.

    Parameters
    ----------
    model : str
        A timm VisionTransformer architecture name, optionally prefixed ``timm:``
        (``vit_tiny_patch16_224``, ``vit_small_patch16_224``, ``vit_base_patch16_224``, ...).
    image_size : int
        Training resolution; positional embeddings are created for this grid and resampled on
        the fly for other grids.
    patch_size, embed_dim, depth, num_heads : int, optional
        Overrides of the architecture (for tiny test models, e.g. ``patch_size=8,
        embed_dim=32, depth=2, num_heads=2``).

    Returns
    -------
    ViTBackbone
    """
    import timm
    from timm.models.vision_transformer import VisionTransformer

    name = parse_model_name(model)
    overrides: dict[str, Any] = {"img_size": int(image_size), "in_chans": int(in_chans)}
    for key, value in (("patch_size", patch_size), ("embed_dim", embed_dim), ("depth", depth),
                       ("num_heads", num_heads)):
        if value is not None:
            overrides[key] = int(value)
    overrides.update(kwargs)
    if not timm.is_model(name):
        raise FairfoundryError(f"unknown timm model {name!r}",
                               hint="list ViTs with: python -c \"import timm; print(timm.list_models('vit_*'))\"")
    spec = {"architecture": name, **overrides, "num_classes": 0, "dynamic_img_size": True}
    try:
        net = timm.create_model(name, pretrained=False, **{k: v for k, v in spec.items()
                                                            if k != "architecture"})
    except (TypeError, ValueError, AssertionError) as exc:
        if "img_size" in str(exc):  # CNNs and other non-ViT families take no image size
            raise FairfoundryError(
                f"--model {name} is not a Vision Transformer: pre-training and distillation "
                "train timm ViTs (patch grids, class token)",
                hint="use a timm ViT, e.g. timm:vit_tiny_patch16_224 or timm:vit_small_patch16_224",
            ) from exc
        raise FairfoundryError(f"cannot build {name} with {overrides}: {exc}".splitlines()[0]) from exc
    if not isinstance(net, VisionTransformer):
        raise FairfoundryError(
            f"{name} is a {type(net).__name__}, not a VisionTransformer",
            hint="pre-training objectives need a timm ViT (vit_tiny/small/base/large_patch*)",
        )
    return ViTBackbone(net, spec=spec)


def patchify(images, patch_size: int):
    """Cut ``(B, C, H, W)`` images into ``(B, N, p*p*C)`` patch vectors (row-major grid)."""
    b, c, h, w = images.shape
    p = int(patch_size)
    gh, gw = h // p, w // p
    x = images[:, :, : gh * p, : gw * p].reshape(b, c, gh, p, gw, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, gh * gw, p * p * c)


class ViTBackbone(nn.Module):
    """Token-level access to a timm ``VisionTransformer``.

    Parameters
    ----------
    net : timm.models.vision_transformer.VisionTransformer
    spec : dict
        The ``timm.create_model`` arguments that rebuild ``net`` (stored in checkpoints).
    """

    def __init__(self, net, *, spec: dict):
        super().__init__()
        self.net = net
        self.spec = dict(spec)
        self.embed_dim = int(net.embed_dim)
        self.patch_size = int(net.patch_embed.patch_size[0])
        self.image_size = int(net.patch_embed.img_size[0])
        self.num_prefix_tokens = int(net.num_prefix_tokens)

    # -- geometry -------------------------------------------------------------------------
    def grid(self, images) -> tuple[int, int]:
        """Patch grid ``(rows, cols)`` of a batch of images (checked, never empty)."""
        h, w = int(images.shape[-2]), int(images.shape[-1])
        check_image_size(h, self.patch_size, what="image height")
        check_image_size(w, self.patch_size, what="image width")
        return h // self.patch_size, w // self.patch_size

    def pos_embed_for(self, grid: tuple[int, int]):
        """Positional embeddings ``(1, prefix + rows*cols, D)`` for a patch grid."""
        from timm.layers import resample_abs_pos_embed

        net = self.net
        prefix = 0 if net.no_embed_class else self.num_prefix_tokens
        base = tuple(net.patch_embed.grid_size)
        pos = net.pos_embed
        if tuple(grid) != base:
            pos = resample_abs_pos_embed(pos, new_size=list(grid), old_size=list(base),
                                         num_prefix_tokens=prefix)
        if net.no_embed_class:
            # no positional entry for the prefix tokens: pad with zeros
            zeros = pos.new_zeros(1, self.num_prefix_tokens, pos.shape[-1])
            pos = torch.cat([zeros, pos], dim=1)
        return pos

    # -- forward --------------------------------------------------------------------------
    def embed_patches(self, images):
        """Patch embeddings with positions: ``(tokens (B, N, D), prefix (B, P, D), grid)``."""
        net = self.net
        grid = self.grid(images)
        x = net.patch_embed(images)
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        pos = self.pos_embed_for(grid)
        prefix_pos, patch_pos = pos[:, : self.num_prefix_tokens], pos[:, self.num_prefix_tokens:]
        x = x + patch_pos
        prefix = []
        if net.cls_token is not None:
            prefix.append(net.cls_token.expand(x.shape[0], -1, -1))
        if net.reg_token is not None:
            prefix.append(net.reg_token.expand(x.shape[0], -1, -1))
        prefix_tokens = torch.cat(prefix, dim=1) + prefix_pos if prefix else x[:, :0]
        return x, prefix_tokens, grid

    def run_blocks(self, prefix, tokens):
        """Run the transformer on ``prefix + tokens``; return ``(prefix_out, tokens_out)``."""
        net = self.net
        x = torch.cat([prefix, tokens], dim=1)
        x = net.norm_pre(x)
        x = net.blocks(x)
        x = net.norm(x)
        p = prefix.shape[1]
        return x[:, :p], x[:, p:]

    def forward_tokens(self, images, keep=None):
        """Encode images, optionally keeping only some patch tokens.

        Parameters
        ----------
        images : Tensor ``(B, C, H, W)``
        keep : LongTensor ``(B, K)``, optional
            Indices (row-major in the patch grid) of the patch tokens to feed the encoder; the
            others are dropped before the first block (MAE encoder, I-JEPA context encoder).

        Returns
        -------
        summary : Tensor ``(B, D)``
            The class token (or the mean of the patch tokens for models without one).
        tokens : Tensor ``(B, K or N, D)``
            Output patch tokens, in the order of ``keep``.
        """
        tokens, prefix, _ = self.embed_patches(images)
        if keep is not None:
            tokens = gather_tokens(tokens, keep)
        prefix_out, tokens_out = self.run_blocks(prefix, tokens)
        if self.net.cls_token is not None:
            summary = prefix_out[:, 0]
        else:
            summary = tokens_out.mean(dim=1)
        return summary, tokens_out

    def forward(self, images):
        """Summary embedding ``(B, D)`` of a batch of images."""
        return self.forward_tokens(images)[0]

    # -- export ---------------------------------------------------------------------------
    def export_metadata(self, **extra: Any) -> dict[str, str]:
        """Safetensors metadata (strings only) that rebuild this backbone without fairfoundry."""
        meta = {"format": "fairfoundry-vit", "timm_spec": json.dumps(self.spec, sort_keys=True)}
        meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()})
        return meta


def gather_tokens(tokens, index):
    """``tokens[b, index[b]]`` for ``tokens (B, N, D)`` and ``index (B, K)``."""
    return tokens.gather(1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def grid_side(n_tokens: int) -> int:
    """Side of a square grid of ``n_tokens`` (raises when the tokens are not a square grid)."""
    side = int(round(math.sqrt(n_tokens)))
    if side * side != n_tokens:
        raise FairfoundryError(f"{n_tokens} patch tokens do not form a square grid")
    return side
