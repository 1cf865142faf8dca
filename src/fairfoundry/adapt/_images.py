"""Adaptation from images: full, partial or LoRA fine-tuning or a frozen backbone, through the one loop.

:class:`ImageDataset` reads a manifest's images with :func:`fairfoundry.data.load_image`,
resizes, converts to 3 channels and normalises; items are dicts ``x, y, group``.
:class:`ImageClassifier` puts a linear head on a backbone that maps images to features
(``timm.create_model(..., num_classes=0)``, an open_clip ``visual`` tower, a HF model's pooled
output through ``feature_fn``); it exposes ``features`` and ``out`` so per-group hooks
(group heads, FIN) work on it. :func:`fit_images` trains with ``mode="full"``, ``"lora"``,
``"partial"`` (the last blocks, see :mod:`fairfoundry.adapt._partial`) or ``"frozen"`` and returns
the trained model and the :class:`TrainResult`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError

__all__ = ["ImageDataset", "ImageClassifier", "EncoderClassifier", "fit_images", "predict_images"]

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
    transform : ``transform(image_array) -> (C, H, W)`` array/tensor used instead of the built-in
        resize + normalisation (e.g. an encoder's ``preprocess``)
    """

    def __init__(self, paths: Sequence, *, y=None, groups=None, root: str | os.PathLike | None = None, size: int = 224,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, augment: bool = False, seed: int = 0,
                 cache: bool = False, transform: Callable | None = None):
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
        self.transform = transform
        #: labels and groups of every sample, for hooks that need them without loading images
        self.columns = {"y": self.y, "group": self.groups}

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> np.ndarray:
        """Image ``i`` as a float32 ``(3, size, size)`` array, normalised."""
        from PIL import Image

        from ..data import load_image

        if self._cache is not None and i in self._cache:
            return self._cache[i]
        arr = load_image(self.paths[i])
        if self.transform is not None:
            x = self.transform(arr)
            x = np.ascontiguousarray(x.numpy() if hasattr(x, "numpy") else np.asarray(x), dtype=np.float32)
            if self._cache is not None:
                self._cache[i] = x
            return x
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


MODES = ("full", "lora", "partial", "frozen")


def prepare_backbone(net, *, mode: str, seed: int, lora_r: int = 8, lora_alpha: float = 16.0,
                     lora_target: Sequence[str] | None = None, partial_blocks: int = 2) -> None:
    """Make ``net`` trainable for ``mode``: LoRA adapters (initialised from ``seed``), the last
    ``partial_blocks`` blocks, nothing (``frozen``) or everything (``full``)."""
    import torch

    from ._lora import DEFAULT_TARGETS, apply_lora
    from ._partial import freeze_all_but_last_blocks

    if mode not in MODES:
        raise FairfoundryError(f"unknown adaptation mode {mode!r}", hint=f"use {', '.join(MODES)}")
    if mode == "lora":
        with torch.random.fork_rng(devices=[]):  # the adapters' initialisation draws from the run's seed
            torch.manual_seed(int(seed))
            apply_lora(net, r=lora_r, alpha=lora_alpha, target=tuple(lora_target or DEFAULT_TARGETS))
    elif mode == "partial":
        freeze_all_but_last_blocks(net, partial_blocks)
    elif mode == "frozen":
        from ._partial import keep_frozen_norms_in_eval

        for p in net.parameters():
            p.requires_grad_(False)
        keep_frozen_norms_in_eval(net)


def fit_images(model, train: ImageDataset, *, val: ImageDataset | None = None, mode: str = "full",
               lora_r: int = 8, lora_alpha: float = 16.0, lora_target: Sequence[str] | None = None,
               partial_blocks: int = 2, hooks: Sequence = (), select: str = "overall_auc", config=None,
               progress=None, track_emissions: bool = False):
    """Fine-tune an :func:`ImageClassifier` on images with the one training loop.

    Parameters
    ----------
    mode : ``"full"`` (every parameter), ``"lora"`` (LoRA on the backbone, head trainable),
        ``"partial"`` (the backbone's last ``partial_blocks`` blocks and the layers after them, see
        :func:`~fairfoundry.adapt.freeze_all_but_last_blocks`) or ``"frozen"`` (head only: a
        linear probe from images).
    select : validation criterion (see :mod:`fairfoundry.adapt._selection`); needs ``val``.
    config : :class:`~fairfoundry.adapt.TrainConfig` (``select`` and ``mode`` are filled in).

    Returns
    -------
    (model, TrainResult)
    """
    import dataclasses

    from ._loop import SupervisedObjective, TrainConfig, Trainer
    from ._selection import criterion_mode, selection_scores

    if train.y is None:
        raise FairfoundryError("the training ImageDataset has no labels")
    prepare_backbone(model.backbone, mode=mode, seed=(config or TrainConfig()).seed, lora_r=lora_r,
                     lora_alpha=lora_alpha, lora_target=lora_target, partial_blocks=partial_blocks)
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


class EncoderClassifier:
    """Fine-tune an encoder of the zoo with a linear head from images (LoRA, full, partial or frozen).

    The counterpart of :class:`~fairfoundry.adapt.HeadClassifier` for adaptation from pixels:
    same ``fit`` / ``predict_score`` / ``save`` interface, same hooks and validation-only
    selection (``overall_auc``, ``worst_group_auc``, ``dto``).

    Parameters
    ----------
    encoder : a loaded :class:`fairfoundry.models.Encoder` (its ``module``, ``image_features``,
        ``preprocess`` and ``embed_dim`` are used).
    mode : ``"lora"``, ``"full"``, ``"partial"`` or ``"frozen"`` (see :func:`fit_images`).
    lora_r, lora_alpha, lora_target : LoRA settings (see :func:`~fairfoundry.adapt.apply_lora`).
    partial_blocks : ``mode="partial"``: how many of the backbone's last blocks are trained.
    """

    def __init__(self, encoder, *, mode: str = "lora", lora_r: int = 8, lora_alpha: float = 16.0,
                 lora_target: Sequence[str] | None = None, partial_blocks: int = 2, epochs: int = 10,
                 batch_size: int = 32, lr: float = 1e-4, weight_decay: float = 1e-4, hooks: Sequence = (), select: str = "overall_auc",
                 patience: int | None = 5, seed: int = 0, device: str = "cpu", track_emissions: bool = False,
                 country_iso_code: str = "USA", progress=None, cache_images: bool = True):
        from ._selection import criterion_mode

        if mode not in MODES:
            raise FairfoundryError(f"unknown adaptation mode {mode!r}", hint=f"use {', '.join(MODES)}")
        criterion_mode(select)
        self.encoder, self.mode = encoder, mode
        self.lora_r, self.lora_alpha, self.lora_target = lora_r, lora_alpha, lora_target
        self.partial_blocks = partial_blocks
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, lr, weight_decay
        self.hooks, self.select, self.patience, self.seed, self.device = list(hooks), select, patience, seed, device
        self.track_emissions, self.progress, self.cache_images = track_emissions, progress, cache_images
        self.country_iso_code = country_iso_code

    def _dataset(self, paths, y, codes):
        return ImageDataset(paths, y=y, groups=codes, transform=self.encoder.preprocess, cache=self.cache_images)

    def _backbone(self):
        import torch
        from torch import nn

        enc = self.encoder

        class _Backbone(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = enc.module
                self.num_features = int(enc.embed_dim)

            def forward(self, x):
                return enc.image_features(x)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return _Backbone()

    def fit(self, paths, y, *, groups=None, paths_val=None, y_val=None, groups_val=None):
        """Fine-tune on the images at ``paths`` with labels ``y``; select on the validation images."""
        import torch

        from ._heads import encode_groups
        from ._loop import SupervisedObjective, TrainConfig, Trainer
        from ._lora import trainable_share
        from ._selection import criterion_mode, dto, selection_scores

        y = np.asarray(y, dtype=np.float32)
        self.n_labels_ = 1 if y.ndim == 1 else y.shape[1]
        codes, self.groups_ = encode_groups(groups) if groups is not None else (np.zeros(len(y), np.int64), ["all"])
        self.n_groups_ = len(self.groups_)
        for h in self.hooks:
            if hasattr(h, "n_groups") and getattr(h, "n_groups", None) is None:
                h.n_groups = self.n_groups_
            if hasattr(h, "unknown"):  # names let fairness terms leave out the group 'unknown'
                h.group_names = list(self.groups_)
        backbone = self._backbone()
        prepare_backbone(backbone.net, mode=self.mode, seed=self.seed, lora_r=self.lora_r, lora_alpha=self.lora_alpha,
                         lora_target=self.lora_target, partial_blocks=self.partial_blocks)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = ImageClassifier(backbone, self.n_labels_, feature_dim=backbone.num_features)
            for h in self.hooks:
                model = h.wrap_model(model)
        self.trainable_share_ = trainable_share(model)
        train = self._dataset(paths, y, codes)
        val = None
        if paths_val is not None:
            gv = encode_groups(groups_val, categories=self.groups_)[0] if groups_val is not None else None
            val = self._dataset(paths_val, np.asarray(y_val, dtype=np.float32), gv)
        names = np.array([*self.groups_, "(unseen)"], dtype=object)
        history_aucs: list[list[float]] = []

        def evaluator(trainer) -> dict:
            s, _ = predict_images(trainer.model, val, device=trainer.device, batch_size=self.batch_size,
                                  groups=True)
            sc = selection_scores(val.y, s, names[val.groups] if groups_val is not None else None)
            history_aucs.append([sc.get(f"auc[{g}]", float("nan")) for g in self.groups_])
            sc["dto"] = float(dto(np.array(history_aucs))[-1]) if groups_val is not None else 1 - sc["overall_auc"]
            return sc

        select = self.select if val is not None and self.select != "loss" else None
        cfg = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                          seed=self.seed, device=self.device, select=select,
                          mode=criterion_mode(select) if select else "max",
                          patience=self.patience if select else None, keep_history_states=select == "dto")
        self.trainer_ = Trainer(model, SupervisedObjective(model_kwargs=lambda b: {"group": b.get("group")}),
                                hooks=self.hooks, config=cfg, evaluator=evaluator if select else None,
                                progress=self.progress, track_emissions=self.track_emissions, wrap=False,
                                country_iso_code=self.country_iso_code)
        self.result_ = self.trainer_.fit(train)
        self.model_ = self.trainer_.model
        self.history_ = self.result_.history
        self.selected_ = self.result_.best
        if select == "dto" and self.result_.states:
            final = dto(np.array(history_aucs))
            i = int(np.argmin(final))
            for j, h in enumerate(self.history_):
                h["dto"] = float(final[j])
            self.trainer_.load_state_tensors(self.result_.states[i])
            self.selected_ = self.history_[i]
            self.result_.states.clear()
        return self

    def predict_score(self, paths, *, groups=None) -> np.ndarray:
        """Sigmoid scores ``(n,)`` / ``(n, k)`` for the images at ``paths``."""
        from ._heads import encode_groups

        if not hasattr(self, "model_"):
            raise FairfoundryError("this EncoderClassifier is not fitted yet")
        codes = encode_groups(groups, categories=self.groups_)[0] if groups is not None else None
        data = self._dataset(paths, None, codes)
        s, _ = predict_images(self.model_, data, device=self.trainer_.device, batch_size=self.batch_size,
                              groups=groups is not None)
        return s

    def save(self, directory) -> Path:
        """``head.safetensors`` (classifier), ``adapter.safetensors`` (LoRA tensors) or
        ``model.safetensors`` (full or partial fine-tuning), and ``head.json``."""
        from safetensors.torch import save_file

        from .._io import write_atomic, write_json_atomic
        from ._lora import lora_parameters

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        sd = {k: v.detach().cpu().contiguous() for k, v in self.model_.state_dict().items()}
        head = {k: v for k, v in sd.items() if not k.startswith(("backbone.", "base.backbone."))}
        write_atomic(d / "head.safetensors", lambda p: save_file(head, str(p)))
        if self.mode == "lora":
            ad = {k: v.contiguous() for k, v in lora_parameters(self.model_).items()}
            write_atomic(d / "adapter.safetensors", lambda p: save_file(ad, str(p)))
        elif self.mode in ("full", "partial"):
            write_atomic(d / "model.safetensors", lambda p: save_file(sd, str(p)))
        write_json_atomic(d / "head.json", {
            "adaptation": self.mode, "encoder": getattr(self.encoder, "name", None), "n_labels": self.n_labels_,
            "groups": self.groups_, "seed": self.seed, "trainable_share": self.trainable_share_,
            "lora": {"r": self.lora_r, "alpha": self.lora_alpha} if self.mode == "lora" else None,
            "partial_blocks": self.partial_blocks if self.mode == "partial" else None,
            "hooks": [getattr(h, "name", type(h).__name__) for h in self.hooks], "selected": self.selected_})
        return d
