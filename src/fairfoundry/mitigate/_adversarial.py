r"""Adversarial removal of the protected attribute with a gradient-reversal layer."""

from __future__ import annotations

from ..adapt._loop import Hook
from ._common import check_unknown, fairness_codes, labels_2d, logits_2d, n_groups_of
from ._registry import register

__all__ = ["Adversarial", "grad_reverse"]


_GR = None


def grad_reverse(x, alpha: float = 1.0):
    """Identity forward; multiplies the gradient by ``-alpha`` backward (Ganin & Lempitsky, 2015)."""
    global _GR
    if _GR is None:  # built once, lazily, so importing this module does not import torch
        import torch

        class _GradReverse(torch.autograd.Function):
            @staticmethod
            def forward(ctx, inp, a):
                ctx.alpha = a
                return inp.view_as(inp)

            @staticmethod
            def backward(ctx, grad):
                return -ctx.alpha * grad, None

        _GR = _GradReverse
    return _GR.apply(x, float(alpha))


@register("adversarial", stage="in")
class Adversarial(Hook):
    r"""Adversarial debiasing: an adversary predicts the group; the model learns to defeat it.

    The model minimises :math:`L_{task} - \lambda L_{adv}` while the adversary minimises
    :math:`L_{adv}` (cross-entropy of the group), implemented with a gradient-reversal layer
    (Ganin & Lempitsky, ICML 2015) so one optimizer step updates both.

    - ``variant="dp"``: the adversary sees the model's output (or its features, ``on="features"``):
      removing the group from it targets demographic parity (Zhang, Lemoine & Mitchell,
      "Mitigating unwanted biases with adversarial learning", AIES 2018).
    - ``variant="eo"``: the adversary also sees the true label, so only group information
      *beyond the label* is removed: equalized odds (Zhang et al. 2018; LAFTR-EO, Madras et al.,
      ICML 2018).

    Parameters
    ----------
    weight : :math:`\lambda`, the strength of the reversal.
    variant : ``"dp"`` or ``"eo"``.
    on : ``"logits"`` or ``"features"`` (the head's representation).
    hidden : adversary MLP width.
    unknown : ``"exclude"`` (default): samples whose attribute is missing (group ``unknown``) are
        in no group of the fairness term (they still train the task loss); ``"group"``:
        ``unknown`` is a protected group of its own.
    """

    def __init__(self, weight: float = 1.0, variant: str = "eo", on: str = "logits", hidden: int = 32,
                 n_groups: int | None = None, unknown: str = "exclude"):
        self.unknown = check_unknown(unknown)
        if variant not in ("dp", "eo"):
            raise ValueError("variant must be 'dp' or 'eo'")
        if on not in ("logits", "features"):
            raise ValueError("on must be 'logits' or 'features'")
        self.weight, self.variant, self.on, self.hidden, self.n_groups = float(weight), variant, on, hidden, n_groups
        self.adversary = None

    def on_fit_start(self, trainer):
        import torch
        from torch import nn

        G = n_groups_of(self, trainer)
        with torch.no_grad():
            probe = trainer.sample_batch(2)
            out = trainer.objective(trainer.model, probe)
        d = self._input(probe, out).shape[1]
        if self.adversary is None:
            self.adversary = nn.Sequential(nn.Linear(d, self.hidden), nn.ReLU(), nn.Linear(self.hidden, G))
            self.adversary.to(trainer.device)

    def modules(self):
        return {} if self.adversary is None else {"adversary": self.adversary}

    def _input(self, batch, out):
        import torch

        z = out["features"] if self.on == "features" else logits_2d(out)
        if self.variant == "eo":
            y = torch.nan_to_num(labels_2d(batch, z))
            z = torch.cat([z, y, z * y], dim=1)
        return z

    def regularizer(self, trainer, batch, out):
        import torch.nn.functional as F

        g = fairness_codes(self, trainer, batch["group"])
        keep = g >= 0
        if keep.sum() == 0:
            return None
        z = self._input(batch, out)
        z = grad_reverse(z, self.weight)
        logits = self.adversary(z[keep])
        return F.cross_entropy(logits, g[keep])
