r"""FairCLIP-style distribution alignment: Sinkhorn distance between group and overall scores."""

from __future__ import annotations

from ..adapt._loop import Hook
from ._registry import register

__all__ = ["DistributionAlignment", "sinkhorn_distance", "wasserstein_1d"]


def wasserstein_1d(a, b, *, levels: int = 64):
    r"""Squared 2-Wasserstein distance between two 1-D samples via their quantile functions.

    .. math:: W_2^2 = \int_0^1 (F_a^{-1}(t) - F_b^{-1}(t))^2\,dt

    approximated on ``levels`` equally spaced quantile levels (differentiable; exact OT in 1-D,
    the limit of the Sinkhorn distance as the blur goes to 0).
    """
    import torch

    t = torch.linspace(0.0, 1.0, levels, device=a.device, dtype=a.dtype)
    return (torch.quantile(a, t) - torch.quantile(b, t)).pow(2).mean()


def sinkhorn_distance(a, b, *, blur: float = 0.05, iters: int = 50):
    r"""Entropic optimal-transport cost between two 1-D (or n-D) empirical distributions.

    Uniform weights on the samples of ``a`` (m, d) and ``b`` (n, d); squared Euclidean cost;
    log-domain Sinkhorn iterations with :math:`\varepsilon = \mathrm{blur}^2`. Returns
    :math:`\langle P, C\rangle` for the entropic plan :math:`P` (differentiable in ``a`` and ``b``).
    Source: Cuturi, "Sinkhorn distances", NeurIPS 2013.
    """
    import math

    import torch

    a = a[:, None] if a.dim() == 1 else a
    b = b[:, None] if b.dim() == 1 else b
    C = torch.cdist(a, b, p=2).pow(2)
    eps = blur ** 2
    m, n = C.shape
    log_mu = torch.full((m,), -math.log(m), dtype=C.dtype, device=C.device)
    log_nu = torch.full((n,), -math.log(n), dtype=C.dtype, device=C.device)
    f = torch.zeros(m, dtype=C.dtype, device=C.device)
    g = torch.zeros(n, dtype=C.dtype, device=C.device)
    for _ in range(iters):
        f = -eps * torch.logsumexp((g[None, :] - C) / eps + log_nu[None, :], dim=1)
        g = -eps * torch.logsumexp((f[:, None] - C) / eps + log_mu[:, None], dim=0)
    logP = (f[:, None] + g[None, :] - C) / eps + log_mu[:, None] + log_nu[None, :]
    return (logP.exp() * C).sum()


@register("fairclip", stage="in")
class DistributionAlignment(Hook):
    r"""FairCLIP's distribution alignment: make each group's score distribution match everyone's.

    Adds :math:`\lambda \sum_g W_\varepsilon(\{s_i\}_{i \in g}, \{s_i\}_{i})` where :math:`s_i` are
    the image-text similarities of a CLIP model (``out["similarity"]``, FairCLIP's setting) or
    the predicted probabilities of a classifier (``out["logits"]`` through a sigmoid), and
    :math:`W_\varepsilon` is the Sinkhorn distance (:func:`sinkhorn_distance`). Source: Luo et
    al., "FairCLIP: Harnessing Fairness in Vision-Language Learning", CVPR 2024. Groups with
    fewer than two samples in a batch are skipped. ``distance="sinkhorn"`` is FairCLIP's entropic
    OT; ``distance="quantile"`` (default, much faster for 1-D scores) is the exact 1-D optimal
    transport cost :func:`wasserstein_1d`, the zero-blur limit of the same quantity.
    """

    def __init__(self, weight: float = 1.0, blur: float = 0.05, distance: str = "quantile"):
        if distance not in ("quantile", "sinkhorn"):
            raise ValueError("distance must be 'quantile' or 'sinkhorn'")
        self.weight, self.blur, self.distance = float(weight), float(blur), distance

    def regularizer(self, trainer, batch, out):
        import torch

        if "similarity" in out:
            s = out["similarity"]
            if s.dim() == 2:  # (b, b) batch similarity matrix: matched pairs on the diagonal
                s = s.diagonal() if s.shape[0] == s.shape[1] else s[:, 0]
        else:
            z = out["logits"]
            s = torch.sigmoid(z if z.dim() == 1 else z.mean(dim=1))
        groups = batch["group"]
        total = s.new_zeros(())
        for gv in torch.unique(groups):
            m = groups == gv
            if gv < 0 or m.sum() < 2:
                continue
            if self.distance == "sinkhorn":
                total = total + sinkhorn_distance(s[m], s, blur=self.blur)
            else:
                total = total + wasserstein_1d(s[m], s)
        return self.weight * total
