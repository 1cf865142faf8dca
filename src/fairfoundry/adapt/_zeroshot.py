r"""CLIP-style zero-shot classification with prompt templates, and the few-shot CLIP-Adapter.

Zero-shot (Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021): each class is described by prompts (``templates`` formatted with the
class names); its text embedding is the normalised mean of the normalised prompt embeddings.
With normalised image embedding :math:`v` and class embeddings :math:`t_c`,

.. math:: P(c \mid x) = \mathrm{softmax}_c(\tau\, v^\top t_c)

and the binary score is :math:`P(\text{positive} \mid x)`.

CLIP-Adapter (Gao et al., "CLIP-Adapter: Better Vision-Language Models with Feature
Adapters", IJCV 2023): a small residual MLP on the frozen image features,
:math:`v' = \rho\, A(v) + (1 - \rho)\, v`, trained on a few labelled examples, then classified
against the frozen class text embeddings as above. It trains with the one loop, so mitigation
hooks apply; its output carries ``"similarity"`` (positive-class image-text similarity) for
FairCLIP's distribution alignment.

Where it differs from the paper: the adapter's input is the L2-normalised image embedding (the
authors' code feeds the raw CLIP feature; the two differ by a per-sample scale). The default
``activation="relu"`` is the paper's ``Linear-ReLU-Linear-ReLU``. A bias-free ReLU adapter can
die: when the zero-shot classifier is confidently wrong for most samples, the gradient drives
every bottleneck unit negative, the adapter outputs 0 for every sample, and because the blend is
then :math:`(1-\rho)\,v` and L2 normalisation cancels :math:`1-\rho`, the scores are exactly the
zero-shot scores. :meth:`CLIPAdapterClassifier.fit` measures this (``active_fraction_``: the
share of training samples with a non-zero adapter output) and warns; ``activation="leaky_relu"``
(slope 0.01, not in the paper) keeps a gradient through dead units and is what the docs example
uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from .._errors import FairfoundryError

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_TEMPLATES", "text_classifier", "zero_shot_scores", "CLIPAdapterClassifier"]

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a chest x-ray showing {}.",
    "a radiograph with {}.",
    "a medical image of {}.",
    "{}.",
)


def text_classifier(encode_text: Callable, tokenizer: Callable, classnames: Sequence[str], *,
                    templates: Sequence[str] = DEFAULT_TEMPLATES, device="cpu") -> np.ndarray:
    """Class text embeddings ``(C, d)``: normalised mean over templates of normalised prompts.

    Parameters
    ----------
    encode_text : e.g. an open_clip model's ``encode_text``
    tokenizer : e.g. ``open_clip.get_tokenizer(name)``
    classnames : one description per class, e.g. ``["no pleural effusion", "pleural effusion"]``
        (binary: negative first, positive second).
    templates : prompt templates with one ``{}``.
    """
    import torch

    if not classnames:
        raise FairfoundryError("zero-shot needs at least one class name")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise FairfoundryError(f"prompt template {bad[0]!r} has no '{{}}' for the class name")
    rows = []
    with torch.no_grad():
        for name in classnames:
            tokens = tokenizer([t.format(name) for t in templates])
            if hasattr(tokens, "to"):
                tokens = tokens.to(device)
            e = encode_text(tokens).float()
            e = e / e.norm(dim=-1, keepdim=True)
            m = e.mean(dim=0)
            rows.append((m / m.norm()).cpu().numpy())
    return np.stack(rows)


def zero_shot_scores(image_embeddings, class_embeddings, *, logit_scale: float = 100.0) -> np.ndarray:
    """Class probabilities ``(n, C)`` from image and class embeddings (both normalised here).

    For two classes ``[negative, positive]`` the binary score is column 1.
    """
    v = np.asarray(image_embeddings, dtype=np.float64)
    t = np.asarray(class_embeddings, dtype=np.float64)
    if v.ndim != 2 or t.ndim != 2 or v.shape[1] != t.shape[1]:
        raise FairfoundryError(f"image embeddings {v.shape} and class embeddings {t.shape} do not match")
    v = v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-12)
    t = t / np.linalg.norm(t, axis=1, keepdims=True).clip(1e-12)
    z = logit_scale * v @ t.T
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _bce(p, y) -> float:
    """Mean binary cross-entropy of probabilities ``p`` (clipped to [1e-7, 1 - 1e-7])."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


class CLIPAdapterClassifier:
    """Few-shot CLIP-Adapter on cached image embeddings (binary; see the module docstring).

    Parameters
    ----------
    class_embeddings : ``(2, d)`` text embeddings ``[negative, positive]`` (from
        :func:`text_classifier`).
    ratio : residual ratio :math:`\\rho` (0.2 in the paper).
    reduction : bottleneck reduction of the adapter MLP (4 in the paper).
    logit_scale : :math:`\\tau`.
    hooks : training hooks (mitigations), e.g. ``[DistributionAlignment()]`` for FairCLIP.
    activation : ``"relu"`` (the paper's) or ``"leaky_relu"`` (slope 0.01; survives the dead-adapter
        failure described in the module docstring).

    Attributes
    ----------
    active_fraction_ : share of training samples whose adapter output is non-zero after training
        (0: the adapter is dead and the scores are the zero-shot scores; a warning is logged).
    """

    def __init__(self, class_embeddings, *, ratio: float = 0.2, reduction: int = 4, logit_scale: float = 100.0,
                 epochs: int = 50, lr: float = 1e-3, batch_size: int = 64, hooks: Sequence = (), seed: int = 0,
                 device: str = "cpu", activation: str = "relu"):
        if activation not in ("relu", "leaky_relu"):
            raise FairfoundryError(f"unknown CLIP-Adapter activation {activation!r}", hint="use relu or leaky_relu")
        self.activation = activation
        t = np.asarray(class_embeddings, dtype=np.float32)
        if t.ndim != 2 or t.shape[0] != 2:
            raise FairfoundryError("CLIPAdapterClassifier needs two class embeddings [negative, positive]")
        self.class_embeddings = t / np.linalg.norm(t, axis=1, keepdims=True)
        self.ratio, self.reduction, self.logit_scale = ratio, reduction, logit_scale
        self.epochs, self.lr, self.batch_size = epochs, lr, batch_size
        self.hooks, self.seed, self.device = list(hooks), seed, device

    def _build(self):
        import torch
        from torch import nn

        d = self.class_embeddings.shape[1]
        T = torch.as_tensor(self.class_embeddings)
        ratio, scale, red = self.ratio, self.logit_scale, self.reduction
        act = nn.ReLU if self.activation == "relu" else (lambda: nn.LeakyReLU(0.01))

        class Adapter(nn.Module):
            def __init__(self):
                super().__init__()
                self.adapter = nn.Sequential(nn.Linear(d, max(1, d // red), bias=False), act(),
                                             nn.Linear(max(1, d // red), d, bias=False), act())
                self.register_buffer("text", T)

            def features(self, x):
                x = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)
                return ratio * self.adapter(x) + (1 - ratio) * x

            def forward(self, x, group=None):
                f = self.features(x)
                f = f / f.norm(dim=-1, keepdim=True).clamp(min=1e-12)
                sims = f @ self.text.t()
                logits2 = scale * sims
                return {"logits": logits2[:, 1] - logits2[:, 0], "features": f, "similarity": sims[:, 1]}

        return Adapter()

    def fit(self, X, y, *, groups=None, X_val=None, y_val=None, groups_val=None, select: str = "loss",
            patience: int | None = None, progress=None):
        """Train the adapter on image embeddings ``X`` (n, d) and 0/1 labels ``y``.

        With validation data (``X_val``, ``y_val``, optionally ``groups_val``) every epoch is
        evaluated on it (``loss``: binary cross-entropy; ``overall_auc``, ``worst_group_auc``,
        ``auc_gap`` of :func:`~fairfoundry.adapt.selection_scores`), the epoch with the best
        ``select`` value (``loss`` lowest, otherwise highest) is restored and ``patience``
        evaluations without improvement stop training. ``history_`` holds the evaluations,
        ``selected_`` the chosen one and ``val_loss_zero_shot_`` the validation loss of the
        zero-shot classifier the adapter starts from (the class embeddings with no adapter).
        """
        import torch

        from ._heads import encode_groups
        from ._loop import ArrayData, SupervisedObjective, TrainConfig, Trainer
        from ._selection import selection_scores

        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        if X.shape[1] != self.class_embeddings.shape[1]:
            raise FairfoundryError(f"image embeddings have {X.shape[1]} dims, text embeddings "
                                   f"{self.class_embeddings.shape[1]}")
        codes, names = (np.zeros(len(X), dtype=np.int64), ["all"]) if groups is None else encode_groups(groups)
        for h in self.hooks:
            if hasattr(h, "n_groups") and getattr(h, "n_groups", None) is None:
                h.n_groups = len(names)
            if hasattr(h, "unknown"):  # names let fairness terms leave out the group 'unknown'
                h.group_names = list(names)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self._build()
        self._adapter = model.adapter
        evaluator, sel = None, None
        if X_val is not None:
            Xv = np.asarray(X_val, dtype=np.float32)
            yv = np.asarray(y_val, dtype=np.float32)
            gv = None if groups_val is None else np.asarray(groups_val, dtype=object)
            self.val_loss_zero_shot_ = _bce(zero_shot_scores(Xv, self.class_embeddings,
                                                             logit_scale=self.logit_scale)[:, 1], yv)

            def evaluator(trainer) -> dict:
                with torch.no_grad():
                    xb = torch.as_tensor(Xv, device=trainer.device)
                    z = trainer.model(xb)["logits"].float()
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(
                        z, torch.as_tensor(yv, device=trainer.device))
                sc = selection_scores(yv, torch.sigmoid(z).cpu().numpy(), gv)
                sc["loss"] = float(loss)
                return sc

            sel = select
        mode = "min" if sel == "loss" else "max"
        cfg = TrainConfig(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=self.seed,
                          device=self.device, select=sel, mode=mode, patience=patience if sel else None)
        self.trainer_ = Trainer(model, SupervisedObjective(), hooks=self.hooks, config=cfg,
                                evaluator=evaluator, progress=progress)
        self.result_ = self.trainer_.fit(ArrayData(x=X, y=y, group=codes))
        self.history_ = self.result_.history
        self.selected_ = self.result_.best
        self.model_ = self.trainer_.model
        self.active_fraction_ = float(np.mean(np.abs(self.adapter_output(X)).max(axis=1) > 0))
        if self.active_fraction_ == 0.0:
            log.warning("CLIP-Adapter: the adapter outputs 0 for every training sample (all bottleneck units "
                        "are dead), so its scores equal the zero-shot scores; try activation='leaky_relu' or a "
                        "lower lr")
        return self

    def adapter_output(self, X) -> np.ndarray:
        r"""The adapter's output :math:`A(v)` ``(n, d)`` before the residual blend."""
        import torch

        if not hasattr(self, "model_"):
            raise FairfoundryError("this CLIPAdapterClassifier is not fitted yet")
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(X, dtype=np.float32), device=self.trainer_.device)
            x = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            return self._adapter(x).cpu().numpy()

    def predict_score(self, X) -> np.ndarray:
        """Positive-class probability ``(n,)``."""
        import torch

        if not hasattr(self, "model_"):
            raise FairfoundryError("this CLIPAdapterClassifier is not fitted yet")
        with torch.no_grad():
            z = self.model_(torch.as_tensor(np.asarray(X, dtype=np.float32), device=self.trainer_.device))["logits"]
        return torch.sigmoid(z).cpu().numpy()

    def predict_proba(self, X) -> np.ndarray:
        p = self.predict_score(X)
        return np.column_stack([1 - p, p])
