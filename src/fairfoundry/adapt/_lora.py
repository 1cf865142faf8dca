r"""Low-rank adaptation (LoRA) of linear layers, with merge / unmerge.

:class:`LoRALinear` wraps a frozen ``nn.Linear`` :math:`W` and learns a low-rank update

.. math:: h = W x + b + \frac{\alpha}{r} B A\, \mathrm{dropout}(x), \qquad A \in \mathbb{R}^{r \times d_{in}},
          B \in \mathbb{R}^{d_{out} \times r}

with :math:`A` Kaiming-uniform and :math:`B = 0` at the start (so training starts from the base
model). :meth:`LoRALinear.merge` folds :math:`\frac{\alpha}{r} BA` into :math:`W` for inference
at no extra cost; :meth:`LoRALinear.unmerge` restores the base weight. Source: Hu et al., "LoRA:
Low-Rank Adaptation of Large Language Models", ICLR 2022 (re-implemented from the paper).

:func:`apply_lora` replaces the linear layers whose qualified name ends with one of ``target``
in timm, open_clip and Hugging Face models (their attention and MLP projections are
``nn.Linear``). Linear layers owned by ``nn.MultiheadAttention`` (open_clip's text and some
vision towers) are skipped: that module reads their weights directly, so a wrapper would never be
called; target the MLP layers (``c_fc``, ``c_proj``) there. ``backend="peft"`` uses the
Hugging Face ``peft`` library instead (optional dependency).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from .._errors import FairfoundryError

__all__ = ["DEFAULT_TARGETS", "apply_lora", "merge_lora", "unmerge_lora", "lora_parameters",
           "trainable_share"]

log = logging.getLogger(__name__)

#: name suffixes of the attention / MLP projections in timm, open_clip and HF vision models
DEFAULT_TARGETS: tuple[str, ...] = ("qkv", "proj", "fc1", "fc2", "query", "key", "value", "dense",
                                    "c_fc", "c_proj", "q_proj", "k_proj", "v_proj", "o_proj", "out_proj")


def _lora_class():
    import torch
    from torch import nn

    class LoRALinear(nn.Module):
        """A frozen ``nn.Linear`` plus a trainable low-rank update (see the module docstring)."""

        def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0, dropout: float = 0.0):
            super().__init__()
            if r < 1:
                raise FairfoundryError(f"LoRA rank must be >= 1, got {r}")
            self.base = base
            for p in self.base.parameters():
                p.requires_grad_(False)
            self.r, self.alpha = int(r), float(alpha)
            self.scaling = self.alpha / self.r
            w = base.weight
            self.lora_A = nn.Parameter(torch.empty(self.r, base.in_features, dtype=w.dtype, device=w.device))
            self.lora_B = nn.Parameter(torch.zeros(base.out_features, self.r, dtype=w.dtype, device=w.device))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
            self.merged = False

        @property
        def weight(self):  # code that reads .weight of the layer sees the effective weight
            return self.base.weight if self.merged else self.base.weight + self.delta()

        @property
        def bias(self):
            return self.base.bias

        @property
        def in_features(self):
            return self.base.in_features

        @property
        def out_features(self):
            return self.base.out_features

        def delta(self):
            return (self.lora_B @ self.lora_A) * self.scaling

        def forward(self, x):
            out = self.base(x)
            if self.merged:
                return out
            return out + (self.dropout(x) @ self.lora_A.t() @ self.lora_B.t()) * self.scaling

        @torch.no_grad()
        def merge(self) -> None:
            if not self.merged:
                self.base.weight.add_(self.delta().to(self.base.weight.dtype))
                self.merged = True

        @torch.no_grad()
        def unmerge(self) -> None:
            if self.merged:
                self.base.weight.sub_(self.delta().to(self.base.weight.dtype))
                self.merged = False

    return LoRALinear


_CLS = None


def __getattr__(name):  # LoRALinear is built lazily so importing fairfoundry does not import torch
    global _CLS
    if name == "LoRALinear":
        if _CLS is None:
            _CLS = _lora_class()
        return _CLS
    raise AttributeError(name)


def apply_lora(model, *, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
               target: Sequence[str] = DEFAULT_TARGETS, trainable: Sequence[str] = (), backend: str = "fairfoundry"):
    """Add LoRA to the matching linear layers of ``model`` and freeze everything else.

    Parameters
    ----------
    model : torch.nn.Module (timm, open_clip or Hugging Face vision model, or any module)
    r, alpha, dropout : LoRA rank, scale numerator and input dropout.
    target : suffixes of qualified module names to adapt (``"qkv"`` matches ``blocks.0.attn.qkv``).
    trainable : name prefixes of parameters that stay trainable (e.g. ``("head",)``).
    backend : ``"fairfoundry"`` (this module) or ``"peft"`` (returns peft's wrapped model).

    Returns
    -------
    (model, names) : the model (the same object for the built-in backend) and the adapted layer
    names.

    Raises
    ------
    FairfoundryError
        When no linear layer matches ``target`` (the message lists some layer names).
    """
    from torch import nn

    LoRALinear = __getattr__("LoRALinear")
    skip = set()
    for name, mod in model.named_modules():
        if isinstance(mod, nn.MultiheadAttention):
            skip.update(f"{name}.{c}" if name else c for c, _ in mod.named_children())
    linear_names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and not isinstance(m, LoRALinear)]
    chosen = [n for n in linear_names if n not in skip and any(n == t or n.endswith("." + t) for t in target)]
    if not chosen:
        raise FairfoundryError("no linear layer of the model matches the LoRA targets "
                               f"{', '.join(target)}", hint=f"linear layers are: {', '.join(linear_names[:12])}")
    if backend == "peft":
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as exc:
            raise FairfoundryError("backend='peft' needs the peft package",
                                   hint="pip install 'fairfoundry[peft]'") from exc
        cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=chosen,
                         modules_to_save=list(trainable) or None)
        return get_peft_model(model, cfg), chosen
    if backend != "fairfoundry":
        raise FairfoundryError(f"unknown LoRA backend {backend!r}", hint="use fairfoundry or peft")
    for p in model.parameters():
        p.requires_grad_(False)
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r=r, alpha=alpha, dropout=dropout))
    for n, p in model.named_parameters():
        if any(n.startswith(t) for t in trainable):
            p.requires_grad_(True)
    log.info("LoRA on %d layers; trainable share %.3f%%", len(chosen), 100 * trainable_share(model))
    return model, chosen


def _lora_modules(model):
    LoRALinear = __getattr__("LoRALinear")
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model):
    """Fold every LoRA update into its base weight (inference at base-model cost)."""
    for m in _lora_modules(model):
        m.merge()
    return model


def unmerge_lora(model):
    """Undo :func:`merge_lora`: restore the base weights (the update stays trainable)."""
    for m in _lora_modules(model):
        m.unmerge()
    return model


def lora_parameters(model) -> dict:
    """Only the LoRA tensors (``lora_A``/``lora_B``), e.g. to save a small adapter file."""
    return {n: p.detach().cpu() for n, p in model.named_parameters() if "lora_A" in n or "lora_B" in n}


def trainable_share(model) -> float:
    """Trainable parameters / all parameters."""
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return train / max(total, 1)
