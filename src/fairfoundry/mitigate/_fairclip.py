r"""FairCLIP-style distribution alignment: Sinkhorn divergence between group and overall scores."""

from __future__ import annotations

from ..adapt._loop import Hook
from ._common import check_unknown, fairness_codes
from ._registry import register

__all__ = ["DistributionAlignment", "entropic_ot", "sinkhorn_distance", "wasserstein_1d"]


def wasserstein_1d(a, b, *, levels: int = 64):
    r"""Squared 2-Wasserstein distance between two 1-D samples via their quantile functions.

    .. math:: W_2^2 = \int_0^1 (F_a^{-1}(t) - F_b^{-1}(t))^2\,dt

    approximated on ``levels`` equally spaced quantile levels (differentiable; exact OT in 1-D,
    the limit of the Sinkhorn distance as the blur goes to 0).
    """
    import torch

    t = torch.linspace(0.0, 1.0, levels, device=a.device, dtype=a.dtype)
    return (torch.quantile(a, t) - torch.quantile(b, t)).pow(2).mean()


def _softmin(eps, C, h, log_w):
    """:math:`-\\varepsilon \\log \\sum_j w_j \\exp((h_j - C_{ij}) / \\varepsilon)` over the last axis."""
    import torch

    return -eps * torch.logsumexp((h[None, :] - C) / eps + log_w[None, :], dim=1)


def _eps_schedule(C, blur: float, scaling: float) -> list[float]:
    """epsilon-scaling: from the squared diameter of the point cloud down to the target."""
    target = 2.0 * blur ** 2
    eps = max(float(C.detach().max()), target)
    out = []
    while eps > target:
        out.append(eps)
        eps *= scaling ** 2
    return [*out, target]


def entropic_ot(a, b, *, blur: float = 0.05, scaling: float = 0.9, iters: int = 20):
    r"""Entropic optimal-transport value :math:`\mathrm{OT}_\varepsilon(\alpha, \beta)` (dual form).

    .. math:: \mathrm{OT}_\varepsilon(\alpha, \beta) = \min_{P \in \Pi(\alpha, \beta)}
              \langle P, C\rangle + \varepsilon\,\mathrm{KL}(P \,\|\, \alpha \otimes \beta)
              = \langle \alpha, f\rangle + \langle \beta, g\rangle

    for uniform weights on the samples of ``a`` (m, d) and ``b`` (n, d), cost
    :math:`C_{ij} = \|a_i - b_j\|^2` and :math:`\varepsilon = 2\,\mathrm{blur}^2`; ``f, g`` are the
    Sinkhorn potentials, computed in the log domain with epsilon-scaling (Cuturi, NeurIPS 2013;
    Feydy et al., AISTATS 2019). The iterations run without autograd; one last differentiable
    update of the potentials, each differentiated in its own points only, gives the gradient
    (at the optimum :math:`\partial\,\mathrm{OT}_\varepsilon / \partial C = P`, the envelope theorem).
    """
    import math

    import torch

    a = a[:, None] if a.dim() == 1 else a
    b = b[:, None] if b.dim() == 1 else b
    with torch.no_grad():
        Cd = torch.cdist(a, b, p=2).pow(2)
    m, n = Cd.shape
    log_mu = torch.full((m,), -math.log(m), dtype=Cd.dtype, device=Cd.device)
    log_nu = torch.full((n,), -math.log(n), dtype=Cd.dtype, device=Cd.device)
    schedule = _eps_schedule(Cd, blur, scaling)
    with torch.no_grad():
        f = torch.zeros(m, dtype=Cd.dtype, device=Cd.device)
        g = torch.zeros(n, dtype=Cd.dtype, device=Cd.device)
        for eps in schedule[:-1] + [schedule[-1]] * iters:  # symmetric (averaged) updates
            f_new = _softmin(eps, Cd, g, log_nu)
            g_new = _softmin(eps, Cd.t(), f, log_mu)
            f, g = 0.5 * (f + f_new), 0.5 * (g + g_new)
    # at the optimum d OT / d C = P; each potential carries the gradient of its own points only
    # (f: a, g: b), otherwise the transport plan would be counted twice
    eps = schedule[-1]
    f_last = _softmin(eps, torch.cdist(a, b.detach(), p=2).pow(2), g, log_nu)
    g_last = _softmin(eps, torch.cdist(b, a.detach(), p=2).pow(2), f, log_mu)
    return f_last.mean() + g_last.mean()


def sinkhorn_distance(a, b, *, blur: float = 0.05, scaling: float = 0.9, iters: int = 20):
    r"""Debiased Sinkhorn divergence between two 1-D (or n-D) empirical distributions.

    .. math:: S_\varepsilon(\alpha, \beta) = \mathrm{OT}_\varepsilon(\alpha, \beta)
              - \tfrac12 \mathrm{OT}_\varepsilon(\alpha, \alpha)
              - \tfrac12 \mathrm{OT}_\varepsilon(\beta, \beta)

    with :func:`entropic_ot` (squared Euclidean cost, :math:`\varepsilon = 2\,\mathrm{blur}^2`).
    :math:`S_\varepsilon(\alpha, \alpha) = 0`, :math:`S_\varepsilon \geq 0`, it tends to the squared
    2-Wasserstein distance as the blur goes to 0, and for a translation
    :math:`S_\varepsilon(\alpha, \alpha + d) = \|d\|^2` exactly. Source: Feydy et al.,
    "Interpolating between Optimal Transport and MMD using Sinkhorn Divergences", AISTATS 2019;
    it is the quantity of geomloss's ``SamplesLoss("sinkhorn", p=2, blur=blur)`` that FairCLIP
    (Luo et al., CVPR 2024) uses, times 2 (geomloss's cost is :math:`\|x - y\|^2 / 2`).
    Re-implemented from the paper's formulas, not from geomloss's code.
    """
    return (entropic_ot(a, b, blur=blur, scaling=scaling, iters=iters)
            - 0.5 * entropic_ot(a, a, blur=blur, scaling=scaling, iters=iters)
            - 0.5 * entropic_ot(b, b, blur=blur, scaling=scaling, iters=iters))


@register("fairclip", stage="in")
class DistributionAlignment(Hook):
    r"""FairCLIP's distribution alignment: make each group's score distribution match everyone's.

    Adds :math:`\lambda \sum_g W_\varepsilon(\{s_i\}_{i \in g}, \{s_i\}_{i})` where :math:`s_i` are
    the image-text similarities of a CLIP model (``out["similarity"]``, FairCLIP's setting) or
    the predicted probabilities of a classifier (``out["logits"]`` through a sigmoid), and
    :math:`W_\varepsilon` is the debiased Sinkhorn divergence (:func:`sinkhorn_distance`). Source: Luo et
    al., "FairCLIP: Harnessing Fairness in Vision-Language Learning", CVPR 2024. Groups with
    fewer than two samples in a batch are skipped. ``distance="sinkhorn"`` is FairCLIP's debiased
    Sinkhorn divergence (geomloss's default ``SamplesLoss``, up to its factor 1/2 on the cost);
    ``distance="quantile"`` (default, much faster for 1-D scores) is the exact 1-D squared
    2-Wasserstein distance :func:`wasserstein_1d`, the zero-blur limit of the same quantity.
    Deviation from the paper: FairCLIP's default is the Sinkhorn divergence; the quantile form is
    the default here because it is exact in 1-D and faster.

    ``unknown="exclude"`` (default): samples whose attribute is missing (group ``unknown``) are in
    no group of the alignment term but stay in the overall distribution; ``"group"``: ``unknown``
    is aligned as a group of its own.
    """

    def __init__(self, weight: float = 1.0, blur: float = 0.05, distance: str = "quantile",
                 unknown: str = "exclude"):
        if distance not in ("quantile", "sinkhorn"):
            raise ValueError("distance must be 'quantile' or 'sinkhorn'")
        self.unknown = check_unknown(unknown)
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
        groups = fairness_codes(self, trainer, batch["group"])
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
