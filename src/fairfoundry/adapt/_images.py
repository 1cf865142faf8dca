"""Adaptation from images: full fine-tuning, LoRA or a frozen backbone, through the one loop.

:class:`ImageDataset` reads a manifest's images with :func:`fairfoundry.data.load_image`,
resizes, converts to 3 channels and normalises; items are dicts ``x, y, group``.
:class:`ImageClassifier` puts a linear head on a backbone that maps images to features
(``timm.create_model(..., num_classes=0)``, an open_clip ``visual`` tower, a HF model's pooled
output through ``feature_fn``); it exposes ``features`` and ``out`` so per-group hooks
(group heads, FIN) work on it. :func:`fit_images` trains with ``mode="full"``, ``"lora"`` or
``"frozen"`` and returns the trained model and the :class:`TrainResult`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError

__all__ = ["ImageDataset", "ImageClassifier", "fit_images", "predict_images"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageDataset:
    """Images of a manifest as dict items ``{"x": (3, S, S) float, "y": ..., "group": int}``.

    Parameters
    ----------
    paths : image paths (absolute, or relative to ``root``)
    y : labels (n,) or (n, k), optional
    groups : integer group codes (n,), optional (default 0)
    size : output side in pixels
    mean, std : per-channel normalisation (ImageNet by default)
    augment : random horizontal flip (seeded per item from ``seed`` and the index)
    cache : keep decoded, resized images in memory after the first read (small datasets)
    """

    def __init__(self, paths: Sequence, *, y=None, groups=None, root: str | os.PathLike | None = None, size: int = 224,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, augment: bool = False, seed: int = 0,
                 cache: bool = False):
        self.paths = [Path(root) / p if root is not None else Path(p) for p in paths]
        n = len(self.paths)
        self.y = None if y is None else np.asarray(y, dtype=np.float32)
        self.groups = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
        if self.y is not None and len(self.y) != n:
            raise FairfoundryError(f"{n} images but {len(self.y)} labels")
        self.size, self.mean, self.std = int(size), np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.augment, self.seed = augment, seed
        self.epoch = 0
        self._cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> np.ndarray:
        """Image ``i`` as a float32 ``(3, size, size)`` array, normalised."""
        from PIL import Image

        from ..data import load_image

        if self._cache is not None and i in self._cache:
            return self._cache[i]
        arr = load_image(self.paths[i])
        if arr.dtype == np.uint16:
            arr = (arr / 257).astype(np.uint8)
        im = Image.fromarray(arr).convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        x = np.asarray(im, dtype=np.float32) / 255.0
        x = np.ascontiguousarray(((x - self.mean) / self.std).transpose(2, 0, 1))
        if self._cache is not None:
            self._cache[i] = x
        return x

    def __getitem__(self, i: int) -> dict:
        import torch

        x = self.load(i)
        if self.augment and np.random.default_rng((self.seed, i, self.epoch)).random() < 0.5:
            x = x[:, :, ::-1]
        item = {"x": torch.from_numpy(np.ascontiguousarray(x)), "group": torch.tensor(int(self.groups[i]))}
        if self.y is not None:
            item["y"] = torch.as_tensor(self.y[i])
        return item


def ImageClassifier(backbone, n_out: int = 1, *, feature_dim: int | None = None,
                    feature_fn: Callable | None = None):
    """A module ``images -> {"logits", "features"}``: ``backbone`` then a linear head.

    Parameters
    ----------
    backbone : module mapping a batch of images to features ``(b, d)`` (or use ``feature_fn``).
    n_out : number of labels.
    feature_dim : ``d`` (inferred from ``backbone.num_features`` / ``output_dim`` or a dry run).
    feature_fn : ``feature_fn(backbone, x) -> (b, d)`` for backbones whose forward returns more
        (e.g. ``lambda m, x: m(pixel_values=x).pooler_output`` for Hugging Face).
    """
    import torch
    from torch import nn

    class _ImageClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self._feature_fn = feature_fn
            d = feature_dim or getattr(backbone, "num_features", None) or getattr(backbone, "output_dim", None)
            if d is None:
                with torch.no_grad():
                    d = self._feats(torch.zeros(1, 3, 224, 224)).shape[1]
            self.out = nn.Linear(int(d), n_out)
            self.n_out = n_out

        def _feats(self, x):
            f = self._feature_fn(self.backbone, x) if self._feature_fn else self.backbone(x)
            return f.flatten(1) if f.dim() > 2 else f

        def features(self, x):
            return self._feats(x)

        def forward(self, x, group=None):
            f = self._feats(x)
            z = self.out(f)
            return {"logits": z[:, 0] if self.n_out == 1 else z, "features": f}

    return _ImageClassifier()


def fit_images(model, train: ImageDataset, *, val: ImageDataset | None = None, mode: str = "full",
               lora_r: int = 8, lora_alpha: float = 16.0, lora_target: Sequence[str] | None = None,
               hooks: Sequence = (), select: str = "overall_auc", config=None, progress=None,
               track_emissions: bool = False):
    """Fine-tune an :func:`ImageClassifier` on images with the one training loop.

    Parameters
    ----------
    mode : ``"full"`` (every parameter), ``"lora"`` (LoRA on the backbone, head trainable) or
        ``"frozen"`` (head only: a linear probe from images).
    select : validation criterion (see :mod:`fairfoundry.adapt._selection`); needs ``val``.
    config : :class:`~fairfoundry.adapt.TrainConfig` (``select`` and ``mode`` are filled in).

    Returns
    -------
    (model, TrainResult)
    """
    import dataclasses

    from ._loop import SupervisedObjective, TrainConfig, Trainer
    from ._lora import DEFAULT_TARGETS, apply_lora
    from ._selection import criterion_mode, selection_scores

    if mode not in ("full", "lora", "frozen"):
        raise FairfoundryError(f"unknown adaptation mode {mode!r}", hint="use full, lora or frozen")
    if train.y is None:
        raise FairfoundryError("the training ImageDataset has no labels")
    if mode == "lora":
        apply_lora(model.backbone, r=lora_r, alpha=lora_alpha, target=tuple(lora_target or DEFAULT_TARGETS))
    elif mode == "frozen":
        for p in model.backbone.parameters():
            p.requires_grad_(False)
    cfg = config or TrainConfig()
    use_val = val is not None and val.y is not None
    cfg = dataclasses.replace(cfg, select=select if use_val else None,
                              mode=criterion_mode(select) if use_val else "max")

    def evaluator(trainer):
        s, _ = predict_images(trainer.model, val, device=trainer.device, batch_size=cfg.batch_size)
        return selection_scores(val.y, s, val.groups)

    trainer = Trainer(model, SupervisedObjective(model_kwargs=lambda b: {"group": b.get("group")}),
                      hooks=list(hooks), config=cfg, evaluator=evaluator if use_val else None, progress=progress,
                      track_emissions=track_emissions)
    result = trainer.fit(train)
    return trainer.model, result


def predict_images(model, data: ImageDataset, *, device="cpu", batch_size: int = 64, groups: bool = False):
    """Sigmoid scores ``(n,)``/``(n, k)`` and features ``(n, d)`` for every image of ``data``."""
    import torch

    from ._loop import resolve_device

    dev = resolve_device(device) if isinstance(device, str) else device
    model.eval()
    scores, feats = [], []
    with torch.no_grad():
        for s in range(0, len(data), batch_size):
            items = [data[i] for i in range(s, min(s + batch_size, len(data)))]
            x = torch.stack([it["x"] for it in items]).to(dev)
            g = torch.stack([it["group"] for it in items]).to(dev) if groups else None
            out = model(x, group=g)
            scores.append(torch.sigmoid(out["logits"].float()).cpu().numpy())
            feats.append(out["features"].float().cpu().numpy())
    return np.concatenate(scores), np.concatenate(feats)
