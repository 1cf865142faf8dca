r"""Knowledge agglomeration: one student ViT distilled from several frozen teachers.

Following Ranzinger et al., "AM-RADIO: Agglomerative Vision Foundation Model -- Reduce All
Domains Into One", CVPR 2024 (re-implemented from the paper; their code is not used). The
student has, per teacher, a *summary head* (an MLP from its class token to the teacher's
summary vector) and a *feature head* (an MLP from each patch token to the teacher's patch
features). Per teacher :math:`t` with weight :math:`w_t`:

.. math::
    L = \sum_t w_t \Big[\big(1 - \cos(h^s_t(z), y_t)\big)
        + \lambda \big(1 - \overline{\cos}(h^f_t(Z), Y_t)\big)
        + \lambda\, \mathrm{SmoothL1}(h^f_t(Z), Y_t)\Big]

with :math:`y_t, Y_t` the teacher's summary and patch features, *standardised* per channel
over the training set (so teachers with large activations do not dominate; AM-RADIO's PHI-S
whitening goes further).

- **Teacher features are cached**: computed once per image (no augmentation, so student and
  teacher see the same view) and stored as safetensors keyed by teacher, weights and manifest.
- **Resolutions**: each teacher sees the images at its own input size; its patch-feature map is
  average-pooled to the coarser of its own grid and the student's (or to an explicit
  ``feature_grid``) when cached, and the student's feature map is average-pooled (or, for an
  explicit finer grid, bilinearly resized) to that grid. An explicit ``feature_grid`` finer than
  a teacher's own grid is refused (it would invent detail).
- **Teacher weighting**: equal, fixed weights, or by each teacher's measured *worst-group*
  performance (:func:`teacher_group_scores`: cross-validated linear probe AUC per group),
  :math:`w_t \propto \max(\mathrm{AUC}^{\min}_t - 0.5, 0.01)`.
- **Teacher dropping**: teachers whose worst-group AUC is below a threshold are left out, and
  ``teacher_dropout`` drops each teacher's loss at random per step (at least one kept).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .._errors import FairfoundryError
from ._backbone import ViTBackbone, grid_side

__all__ = ["Teacher", "TimmTeacher", "EncoderTeacher", "DistillStudent", "cache_teacher_features",
           "teacher_group_scores", "standardize_stats"]

log = logging.getLogger(__name__)


class Teacher(abc.ABC):
    """A frozen encoder giving a summary vector and (optionally) a patch-feature map.

    Subclasses set :attr:`name` and :attr:`image_size` and implement :meth:`encode`.
    """

    name: str = "teacher"
    #: side of the square input the teacher expects
    image_size: int = 224

    @abc.abstractmethod
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features of images in ``[0, 1]``, ``(B, 3, S, S)`` with ``S = image_size``.

        Returns
        -------
        summary : Tensor ``(B, D)``
        tokens : Tensor ``(B, h, w, D)`` or None (summary-only teacher)
        """

    def to(self, device) -> Teacher:
        return self

    @property
    def fingerprint(self) -> str:
        """Identifies the teacher's weights in cache keys."""
        return self.name


class TimmTeacher(Teacher):
    """A timm ViT (or :class:`ViTBackbone`) as a teacher: class token + patch tokens.

    Parameters
    ----------
    model : ViTBackbone or timm VisionTransformer
    name : str
    mean, std : per-channel normalisation of the model's inputs
    image_size : int, optional
        Default: the model's own input size.
    """

    def __init__(self, model, *, name: str = "timm", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                 image_size: int | None = None, fingerprint: str | None = None):
        if not isinstance(model, ViTBackbone):
            model = ViTBackbone(model, spec={})
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.name = name
        self.image_size = int(image_size or model.image_size)
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self._fp = fingerprint or name

    @property
    def fingerprint(self) -> str:
        return self._fp

    def to(self, device) -> TimmTeacher:
        self.model.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    @torch.no_grad()
    def encode(self, images):
        x = (images - self.mean) / self.std
        summary, tokens = self.model.forward_tokens(x)
        gh, gw = self.model.grid(x)
        return summary, tokens.reshape(tokens.shape[0], gh, gw, -1)


class EncoderTeacher(Teacher):
    """A model-zoo encoder (:func:`fairfoundry.models.load_encoder`) as a teacher.

    The summary is the encoder's embedding (``image_features``); timm ViT encoders also give
    their patch tokens (other backends are summary-only teachers). Images are resized (squashed)
    to the encoder's input size and normalised with its preprocessing.
    """

    def __init__(self, encoder, *, name: str | None = None):
        self.encoder = encoder
        self.name = name or str(encoder.name)
        p = encoder.preprocessing
        self.image_size = int(p.size)
        self._prep = p
        self._vit = None
        try:
            from timm.models.vision_transformer import VisionTransformer

            if isinstance(encoder.module, VisionTransformer):
                self._vit = encoder.module
        except ImportError:  # pragma: no cover - timm is in the torch extra
            self._vit = None

    @property
    def fingerprint(self) -> str:
        return f"{self.name}:{self.encoder.weights_id}"

    def to(self, device) -> EncoderTeacher:
        self.encoder.to(device)
        return self

    @torch.no_grad()
    def encode(self, images):
        p = self._prep
        x = images
        if p.channels == 1:
            x = x.mean(dim=1, keepdim=True)
        lo, hi = p.value_range
        x = lo + x * (hi - lo)
        mean = torch.tensor(p.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(p.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        x = (x - mean) / std
        summary = self.encoder.image_features(x).float()
        tokens = None
        if self._vit is not None:
            feats = self._vit.forward_features(x)[:, self._vit.num_prefix_tokens:]
            side = grid_side(feats.shape[1])
            tokens = feats.reshape(feats.shape[0], side, side, -1).float()
        return summary, tokens


def cache_teacher_features(teacher: Teacher, bank, *, batch_size: int = 64, device="cpu",
                           feature_grid: int | None = None, max_grid: int | None = None,
                           progress=None) -> dict[str, torch.Tensor]:
    """Run a teacher once over an :class:`~._data.ImageBank`; return its features on the CPU.

    Parameters
    ----------
    feature_grid : int, optional
        Pool the teacher's patch features to exactly this grid (an error when it is finer
        than the teacher's own grid).
    max_grid : int, optional
        Without ``feature_grid``: pool to ``min(teacher grid, max_grid)`` (the student's grid).

    Returns
    -------
    dict with ``summary`` ``(N, D)`` and, for teachers with patch features, ``tokens``
    ``(N, g, g, D)`` (float16).

    Raises
    ------
    FairfoundryError
        If ``feature_grid`` is finer than the teacher's own token grid.
    """
    teacher.to(device)
    summaries, tokens = [], []
    for start in range(0, len(bank), batch_size):
        idx = np.arange(start, min(start + batch_size, len(bank)))
        s, t = teacher.encode(bank.batch(idx, device=device))
        summaries.append(s.float().cpu())
        if t is not None:
            gh = t.shape[1]
            target = feature_grid if feature_grid is not None else (
                min(gh, max_grid) if max_grid is not None else None)
            if target is not None:
                if feature_grid is not None and feature_grid > gh:
                    raise FairfoundryError(
                        f"feature grid {feature_grid}x{feature_grid} is finer than teacher "
                        f"{teacher.name!r}'s {gh}x{t.shape[2]} patch grid (resolution mismatch)",
                        hint=f"use feature_grid <= {gh}, a student with fewer patches "
                        "(smaller image size or larger patches), or a summary-only distillation",
                    )
                if target < gh:
                    t = nn.functional.adaptive_avg_pool2d(t.permute(0, 3, 1, 2), target)
                    t = t.permute(0, 2, 3, 1)
            tokens.append(t.to(torch.float16).cpu())
        if progress is not None:
            progress(len(idx))
    out = {"summary": torch.cat(summaries)}
    if tokens:
        out["tokens"] = torch.cat(tokens)
    return out


def standardize_stats(features: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over every axis but the last."""
    flat = features.float().reshape(-1, features.shape[-1])
    return flat.mean(dim=0), flat.std(dim=0).clamp_min(eps)


def teacher_group_scores(features, y, groups, *, folds: int = 5, seed: int = 0) -> dict:
    r"""A teacher's cross-validated linear-probe AUC overall and per group.

    A logistic regression on the standardised features is fitted in ``folds`` stratified
    folds; the out-of-fold scores give the AUC of every group that holds both classes, and the
    worst of them (``worst_group_auc``), used to weight and drop teachers.

    Parameters
    ----------
    features : array ``(n, d)``
    y : array ``(n,)`` of 0/1 labels
    groups : array ``(n,)`` of group labels

    Returns
    -------
    dict with ``auc``, ``worst_group_auc``, ``worst_group`` and ``per_group`` (group -> AUC).
    Groups with one class only are left out of the minimum (their AUC is undefined).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(y).astype(int)
    groups = np.asarray(groups).astype(str)
    counts = np.bincount(y, minlength=2)
    if counts.min() < 2:
        raise FairfoundryError("teacher weighting needs both classes of the label (at least 2 each)")
    k = int(min(folds, counts.min()))
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    score = cross_val_predict(probe, x, y, cv=cv, method="predict_proba")[:, 1]
    per_group = {}
    for g in np.unique(groups):
        m = groups == g
        if len(np.unique(y[m])) == 2:
            per_group[str(g)] = float(roc_auc_score(y[m], score[m]))
    if not per_group:
        raise FairfoundryError("no group holds both classes: worst-group AUC is undefined")
    worst = min(per_group, key=per_group.get)
    return {"auc": float(roc_auc_score(y, score)), "worst_group_auc": per_group[worst],
            "worst_group": worst, "per_group": per_group}


def _mlp(d_in: int, d_out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class DistillStudent(nn.Module):
    """A student ViT with one summary head and one feature head per teacher.

    Parameters
    ----------
    backbone : ViTBackbone
    teachers : mapping name -> (summary_dim, feature_dim or None)
    head_hidden : int, optional
        Hidden width of the head MLPs (default: the student's width).
    """

    def __init__(self, backbone: ViTBackbone, teachers: dict[str, tuple[int, int | None]], *,
                 head_hidden: int | None = None):
        super().__init__()
        self.backbone = backbone
        hidden = int(head_hidden or backbone.embed_dim)
        d = backbone.embed_dim
        self.summary_heads = nn.ModuleDict({_key(n): _mlp(d, s, hidden)
                                            for n, (s, _) in teachers.items()})
        self.feature_heads = nn.ModuleDict({_key(n): _mlp(d, f, hidden)
                                            for n, (_, f) in teachers.items() if f})

    def forward(self, images):
        return self.backbone.forward_tokens(images)

    def summary(self, name: str, z):
        return self.summary_heads[_key(name)](z)

    def features(self, name: str, tokens, grid: tuple[int, int], target_grid: tuple[int, int]):
        """Predicted patch features of teacher ``name`` on ``target_grid``: ``(B, gh*gw, D)``."""
        y = self.feature_heads[_key(name)](tokens)
        if tuple(grid) != tuple(target_grid):
            b, _, dt = y.shape
            y = y.transpose(1, 2).reshape(b, dt, *grid)
            if all(t <= g for t, g in zip(target_grid, grid, strict=True)):
                y = nn.functional.adaptive_avg_pool2d(y, target_grid)  # coarser teacher
            else:
                y = nn.functional.interpolate(y, size=target_grid, mode="bilinear",
                                              align_corners=False)
            y = y.reshape(b, dt, -1).transpose(1, 2)
        return y


def _key(name: str) -> str:
    """A ModuleDict-safe key for a teacher name (``timm:vit.x`` -> ``timm_vit_x``)."""
    return "".join(c if c.isalnum() else "_" for c in str(name))


def active_teachers(names: Sequence[str], dropout: float, generator: torch.Generator) -> list[str]:
    """Teachers kept this step: each dropped with probability ``dropout``, at least one kept."""
    if dropout <= 0 or len(names) == 1:
        return list(names)
    keep = [n for n in names if float(torch.rand(1, generator=generator)) >= dropout]
    if not keep:
        keep = [names[int(torch.randint(len(names), (1,), generator=generator))]]
    return keep
