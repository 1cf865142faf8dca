"""Heads on cached embeddings: linear probe and MLP, as a scikit-learn-style estimator.

:class:`HeadClassifier` trains a linear or MLP head with the one training loop
(:class:`~fairfoundry.adapt.Trainer`), optionally with training hooks (in-processing
mitigations from :mod:`fairfoundry.mitigate`), and picks the checkpoint on validation data
with a criterion from :mod:`fairfoundry.adapt._selection` (overall AUC, worst-group AUC,
MEDFAIR's DTO). Binary (``y`` of shape ``(n,)``) and multi-label (``(n, k)``) targets.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError
from ..groups import encode_groups
from ._selection import criterion_mode, dto, selection_scores

__all__ = ["HeadClassifier", "build_head", "encode_groups"]

log = logging.getLogger(__name__)


def build_head(in_dim: int, n_out: int, *, kind: str = "linear", hidden: int = 256, dropout: float = 0.0,
               mean=None, std=None):
    """A torch module ``x -> {"logits", "features"}`` with input standardisation as buffers."""
    import torch
    from torch import nn

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.zeros(in_dim) if mean is None else torch.as_tensor(mean).float())
            self.register_buffer("std", torch.ones(in_dim) if std is None else torch.as_tensor(std).float())
            if kind == "linear":
                self.body = nn.Identity()
                self.feature_dim = in_dim
            elif kind == "mlp":
                self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout))
                self.feature_dim = hidden
            else:
                raise FairfoundryError(f"unknown head {kind!r}", hint="use linear or mlp")
            self.out = nn.Linear(self.feature_dim, n_out)
            self.n_out = n_out

        #: False while training on inputs that are already standardised (saves a pass per batch)
        normalize_inputs = True

        def features(self, x):
            if self.normalize_inputs:
                x = (x - self.mean) / self.std
            return self.body(x)

        def classify(self, f):
            z = self.out(f)
            return z[:, 0] if self.n_out == 1 else z

        def forward(self, x, group=None):
            f = self.features(x)
            return {"logits": self.classify(f), "features": f}

    return Head()


class HeadClassifier:
    """Linear probe or MLP head on embeddings, trained with the one loop and its hooks.

    Parameters
    ----------
    head : ``"linear"`` (logistic regression by gradient descent) or ``"mlp"`` (one hidden
        layer, GELU, dropout).
    hidden, dropout : MLP size and dropout.
    epochs, batch_size, lr, weight_decay, optimizer : training settings (AdamW by default).
        ``optimizer="lbfgs"``: full-batch L-BFGS (strong-Wolfe line search, ``lbfgs_max_iter``
        iterations per epoch, validation after each epoch, ``batch_size`` and ``lr`` ignored,
        ``weight_decay`` as an L2 penalty) -- the fast path for a plain linear probe, the same
        algorithm as scikit-learn's ``LogisticRegression``; only without hooks (mitigations
        train with AdamW, so compare methods with the same optimizer).
    hooks : training hooks (in-processing mitigations), e.g.
        ``[fairfoundry.mitigate.GroupDRO()]``.
    select : ``"overall_auc"``, ``"worst_group_auc"``, ``"dto"`` or ``"loss"``; evaluated on the
        validation data passed to :meth:`fit` (never on test). Without validation data the
        last epoch is kept.
    patience : early stopping after this many epochs without improvement of ``select``.
    seed : seeds initialisation and shuffling (same seed, same data -> identical output on CPU).
    device : ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``.
    standardize : standardise inputs with the training mean/std (stored with the weights).
    track_emissions, country_iso_code : codecarbon offline tracking and its grid's country.

    Attributes
    ----------
    model_ : the trained torch module; history_ : validation metrics per epoch;
    selected_ : the chosen history entry; groups_ : group labels seen in training.
    """

    def __init__(self, head: str = "linear", *, hidden: int = 256, dropout: float = 0.1, epochs: int = 30,
                 batch_size: int = 512, lr: float = 1e-3, weight_decay: float = 1e-4, optimizer: str = "adamw",
                 lbfgs_max_iter: int = 10,
                 hooks: Sequence = (), select: str = "overall_auc", patience: int | None = 5, seed: int = 0,
                 device: str = "cpu", standardize: bool = True, track_emissions: bool = False,
                 country_iso_code: str = "USA", progress: Callable[[int], None] | None = None):
        if head not in ("linear", "mlp"):
            raise FairfoundryError(f"unknown head {head!r}", hint="use linear or mlp")
        criterion_mode(select)
        if optimizer not in ("adamw", "sgd", "lbfgs"):
            raise FairfoundryError(f"unknown optimizer {optimizer!r}", hint="use adamw, sgd or lbfgs")
        if optimizer == "lbfgs" and (hooks or dropout and head == "mlp"):
            raise FairfoundryError(
                "optimizer='lbfgs' needs a deterministic full-batch loss: no mitigation hooks, no MLP dropout",
                hint="use optimizer='adamw' with mitigations (or dropout=0 for an MLP)")
        self.lbfgs_max_iter = lbfgs_max_iter
        self.head, self.hidden, self.dropout = head, hidden, dropout
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.weight_decay, self.optimizer = weight_decay, optimizer
        self.hooks = list(hooks)
        self.select, self.patience, self.seed, self.device = select, patience, seed, device
        self.standardize = standardize
        self.track_emissions = track_emissions
        self.country_iso_code = country_iso_code
        self.progress = progress

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_xy(X, y, what: str):
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise FairfoundryError(f"{what} embeddings must be 2-D (samples x dims), got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            bad = int(np.argwhere(~np.isfinite(X))[0, 0])
            raise FairfoundryError(f"{what} embeddings contain NaN or inf (row {bad})")
        if y is None:
            return X, None
        y = np.asarray(y, dtype=np.float32)
        if y.shape[0] != X.shape[0]:
            raise FairfoundryError(f"{what}: {X.shape[0]} embeddings but {y.shape[0]} labels")
        vals = np.unique(y[~np.isnan(y)])
        if not np.all(np.isin(vals, [0, 1])):
            raise FairfoundryError(f"{what} labels must be 0/1, found {vals[:5].tolist()}")
        return X, y

    def _model_groups(self, groups, n):
        if groups is None:
            return np.zeros(n, dtype=np.int64)
        codes, _ = encode_groups(groups, categories=self.groups_)
        return codes

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, *, groups=None, sample_weight=None, X_val=None, y_val=None, groups_val=None):
        """Train on ``(X, y)``; select the checkpoint on ``(X_val, y_val, groups_val)``.

        Returns
        -------
        self
        """
        import torch

        from ._loop import ArrayData, SupervisedObjective, TrainConfig, Trainer

        X, y = self._check_xy(X, y, "train")
        for k in range(1 if y.ndim == 1 else y.shape[1]):
            col = y if y.ndim == 1 else y[:, k]
            if np.unique(col[~np.isnan(col)]).size < 2:
                raise FairfoundryError(f"the train split has only one class for label {k}",
                                       hint="each label needs positive and negative training samples")
        self.n_labels_ = 1 if y.ndim == 1 else y.shape[1]
        self.in_dim_ = int(X.shape[1])
        if groups is not None:
            codes, self.groups_ = encode_groups(groups)
        else:
            codes, self.groups_ = np.zeros(len(X), dtype=np.int64), ["all"]
        self.n_groups_ = len(self.groups_)
        val = None
        if X_val is not None:
            Xv, yv = self._check_xy(X_val, y_val, "validation")
            gv = self._model_groups(groups_val, len(Xv)) if groups_val is not None else None
            if groups_val is not None:
                unseen = sorted({str(v) for v, c in zip(np.asarray(groups_val, dtype=object).reshape(len(Xv), -1)[:, 0], gv, strict=True) if c < 0})
                if unseen:
                    log.warning("validation groups absent from training: %s", ", ".join(unseen[:5]))
            val = (Xv, yv, gv, groups_val)
        mean = std = None
        if self.standardize:  # standardise once here, not in every forward pass
            var, mu = torch.var_mean(torch.as_tensor(X), dim=0, correction=0)
            mean, std = mu.numpy(), (var.sqrt() + 1e-6).numpy()
            X = (X - mean) / std
            if val is not None:
                val = ((val[0] - mean) / std, *val[1:])
        for h in self.hooks:
            if hasattr(h, "n_groups") and getattr(h, "n_groups", None) is None:
                h.n_groups = self.n_groups_
            if hasattr(h, "unknown"):  # names let fairness terms leave out the group 'unknown'
                h.group_names = list(self.groups_)
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG untouched
            torch.manual_seed(self.seed)
            model = build_head(X.shape[1], self.n_labels_, kind=self.head, hidden=self.hidden,
                               dropout=self.dropout, mean=mean, std=std)
            model.normalize_inputs = False
            base = model
            for h in self.hooks:
                model = h.wrap_model(model)
        select = self.select if val is not None else None
        if select == "loss":
            mode = "min"
        else:
            mode = criterion_mode(self.select) if select else "max"
        lbfgs = self.optimizer == "lbfgs"
        cfg = TrainConfig(epochs=self.epochs, batch_size=len(X) if lbfgs else self.batch_size,
                          lr=1.0 if lbfgs else self.lr, lbfgs_max_iter=self.lbfgs_max_iter,
                          weight_decay=self.weight_decay, optimizer=self.optimizer, seed=self.seed,
                          device=self.device, select=select, mode=mode,
                          patience=self.patience if select else None,
                          keep_history_states=(select == "dto"))
        history_aucs: list[list[float]] = []

        def evaluator(trainer) -> dict:
            Xv, yv, gv, _ = val
            s = self._scores(trainer.model, Xv, gv, trainer.device)
            names = None if gv is None else np.array([*self.groups_, "(unseen)"], dtype=object)[gv]
            sc = selection_scores(yv, s, names)
            g_aucs = [sc.get(f"auc[{g}]", float("nan")) for g in self.groups_]
            history_aucs.append(g_aucs)
            if groups_val is not None:
                sc["dto"] = float(dto(np.array(history_aucs))[-1])
            else:
                sc["dto"] = float(1.0 - sc["overall_auc"])
            with torch.no_grad():
                logits = torch.as_tensor(self._logits(trainer.model, Xv, gv, trainer.device))
                yt = torch.as_tensor(yv).reshape(logits.shape)
                m = ~torch.isnan(yt)
                sc["loss"] = float(torch.nn.functional.binary_cross_entropy_with_logits(
                    logits[m], yt[m]))
            return sc

        objective = SupervisedObjective(model_kwargs=lambda b: {"group": b.get("group")})
        self.trainer_ = Trainer(model, objective, hooks=self.hooks, config=cfg, wrap=False,
                                evaluator=evaluator if val is not None else None,
                                progress=self.progress, track_emissions=self.track_emissions,
                                country_iso_code=self.country_iso_code)
        data = ArrayData(x=X, y=y, group=codes, weight=sample_weight)
        try:
            result = self.trainer_.fit(data)
        finally:
            base.normalize_inputs = True
        self.model_ = self.trainer_.model
        self.history_ = result.history
        self.result_ = result
        self.selected_ = result.best
        if select == "dto" and result.states:
            # DTO needs the utopia over all candidates: re-rank every evaluated state
            final = dto(np.array(history_aucs))
            i = int(np.argmin(final))
            for j, h in enumerate(self.history_):
                h["dto"] = float(final[j])
            self.trainer_.load_state_tensors(result.states[i])
            self.selected_ = self.history_[i]
            result.states.clear()
        return self

    # ------------------------------------------------------------------ predict
    def _logits(self, model, X, codes, device, batch: int = 65536):
        import torch

        model.eval()
        outs = []
        with torch.no_grad():
            for s in range(0, len(X), batch):
                xb = torch.as_tensor(X[s:s + batch], device=device)
                gb = None if codes is None else torch.as_tensor(codes[s:s + batch], device=device)
                out = model(xb, group=gb)
                outs.append(out["logits"].float().cpu().numpy())
        return np.concatenate(outs) if outs else np.zeros((0,))

    def _scores(self, model, X, codes, device):
        return 1.0 / (1.0 + np.exp(-self._logits(model, X, codes, device)))

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise FairfoundryError("this HeadClassifier is not fitted yet", hint="call fit first")

    def decision_function(self, X, *, groups=None) -> np.ndarray:
        """Logits: ``(n,)`` for one label, ``(n, k)`` for multi-label."""
        self._check_fitted()
        X, _ = self._check_xy(X, None, "input")
        needs = any(getattr(h, "needs_groups_at_predict", False) for h in self.hooks)
        if needs and groups is None:
            raise FairfoundryError("this model was trained with a per-group method and needs groups= to predict")
        codes = self._model_groups(groups, len(X)) if groups is not None else None
        return self._logits(self.model_, X, codes, self.trainer_.device)

    def predict_score(self, X, *, groups=None) -> np.ndarray:
        """Positive-class probabilities: ``(n,)`` or ``(n, k)``."""
        return 1.0 / (1.0 + np.exp(-self.decision_function(X, groups=groups)))

    def predict_proba(self, X, *, groups=None) -> np.ndarray:
        """scikit-learn layout: ``(n, 2)`` for one label, ``(n, k)`` positive probabilities otherwise."""
        p = self.predict_score(X, groups=groups)
        return np.column_stack([1 - p, p]) if p.ndim == 1 else p

    def predict(self, X, *, groups=None, threshold: float = 0.5) -> np.ndarray:
        """0/1 decisions at ``threshold``."""
        return (self.predict_score(X, groups=groups) >= threshold).astype(int)

    # ------------------------------------------------------------------ io
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``head.safetensors`` and ``head.json`` (settings, groups) into ``directory``."""
        from safetensors.torch import save_file

        from .._io import write_atomic, write_json_atomic

        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        sd = {k: v.detach().cpu().contiguous() for k, v in self.model_.state_dict().items()}
        write_atomic(d / "head.safetensors", lambda p: save_file(sd, str(p)))
        meta = {"head": self.head, "hidden": self.hidden, "dropout": self.dropout, "n_labels": self.n_labels_,
                "in_dim": self.in_dim_, "groups": self.groups_, "seed": self.seed,
                "hooks": [getattr(h, "name", type(h).__name__) for h in self.hooks],
                "selected": self.selected_}
        write_json_atomic(d / "head.json", meta)
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike) -> HeadClassifier:
        """Load a plain (hook-free) head written by :meth:`save`."""
        from safetensors.torch import load_file

        from ._loop import resolve_device

        d = Path(directory)
        if not (d / "head.json").exists():
            raise FairfoundryError(f"no head.json in {d}")
        meta = json.loads((d / "head.json").read_text())
        if meta.get("hooks"):
            raise FairfoundryError(f"{d} holds a head trained with {meta['hooks']}; rebuild it with the same hooks")
        est = cls(meta["head"], hidden=meta["hidden"], dropout=meta["dropout"], seed=meta["seed"])
        est.model_ = build_head(meta["in_dim"], meta["n_labels"], kind=meta["head"], hidden=meta["hidden"])
        est.model_.load_state_dict(load_file(str(d / "head.safetensors")))
        est.groups_, est.n_labels_, est.in_dim_ = meta["groups"], meta["n_labels"], meta["in_dim"]

        class _T:
            device = resolve_device("cpu")

        est.trainer_ = _T()
        est.selected_ = meta.get("selected")
        return est
