r"""Per-group model parts: domain-independent heads and Fair Identity Normalisation."""

from __future__ import annotations

from ..adapt._loop import Hook
from ._registry import register

__all__ = ["GroupHeads", "FairIdentityNormalization"]


def _check_model(model, what: str):
    from .._errors import FairfoundryError

    if not (hasattr(model, "features") and hasattr(model, "out")):
        raise FairfoundryError(f"{what} needs a model with .features(x) and an .out linear layer "
                               "(the heads of fairfoundry.adapt have them)")


@register("group-heads", stage="in")
class GroupHeads(Hook):
    r"""Domain-independent training: one classifier head per group on a shared representation.

    Training optimises each sample's loss through its own group's head only,
    :math:`L = \frac{1}{n}\sum_i \ell(W_{g_i}^\top f(x_i), y_i)`, so the shared features need not
    encode the group to fit group-specific decision rules. At inference (``inference="mean"``,
    the default) the logits of all heads are averaged, so no group is needed at test time, as in
    Wang et al., "Towards Fairness in Visual Recognition: Effective Strategies for Bias
    Mitigation", CVPR 2020 (domain-independent training; they sum per-domain class scores).
    ``inference="own"`` uses the sample's own group head (needs ``groups=`` at predict time;
    unknown groups fall back to the mean).
    """

    def __init__(self, inference: str = "mean", n_groups: int | None = None):
        if inference not in ("mean", "own"):
            raise ValueError("inference must be 'mean' or 'own'")
        self.inference, self.n_groups = inference, n_groups
        self.needs_groups_at_predict = inference == "own"

    def wrap_model(self, model):
        import torch
        from torch import nn

        _check_model(model, "group-heads")
        G = int(self.n_groups or 1)
        inference = self.inference

        class Wrapped(nn.Module):
            def __init__(self):
                super().__init__()
                self.base = model
                k, d = model.out.out_features, model.out.in_features
                self.k, self.G = k, G
                self.heads = nn.Linear(d, k * G)
                with torch.no_grad():  # start every head from the base head's initialisation
                    self.heads.weight.copy_(model.out.weight.repeat(G, 1))
                    self.heads.bias.copy_(model.out.bias.repeat(G))

            def features(self, x):
                return self.base.features(x)

            @property
            def out(self):
                return self.heads

            def forward(self, x, group=None):
                f = self.base.features(x)
                z = self.heads(f).view(-1, self.G, self.k)
                mean = z.mean(dim=1)
                use_own = group is not None and (self.training or inference == "own")
                if use_own:
                    g = group.clamp(min=0)
                    own = z[torch.arange(len(g), device=z.device), g]
                    z2 = torch.where((group >= 0)[:, None], own, mean)
                else:
                    z2 = mean
                return {"logits": z2[:, 0] if self.k == 1 else z2, "features": f}

        return Wrapped()


@register("fin", stage="in")
class FairIdentityNormalization(Hook):
    r"""Fair Identity Normalisation (FIN): learnable per-group normalisation of the features.

    Each group ``g`` has a learnable mean :math:`\mu_g` and log-scale :math:`s_g`; the head sees

    .. math:: \tilde f = c\, f + (1 - c)\, \frac{f - \mu_g}{e^{s_g}}

    so group-specific shifts of the representation are removed before the classifier, with
    :math:`c` (``momentum``) keeping part of the raw feature. Re-implemented from the
    description in Luo et al., "Harvard Glaucoma Fairness: A Retinal Nerve Disease Dataset for
    Fairness Learning and Fair Identity Normalization", IEEE TMI 2024. Needs the group at
    prediction time; an unknown group is passed through unnormalised.

    ``scale="exp"`` (default): the scale is :math:`e^{s_g}` with :math:`s_g = 0` at start, so FIN
    starts as the identity (a deviation from the paper). ``scale="softplus"``: the scale is
    :math:`\mathrm{softplus}(s_g)` with :math:`s_g \sim N(0, 1)` at start, as Harvard-GF's FIN.
    """

    needs_groups_at_predict = True

    def __init__(self, momentum: float = 0.3, n_groups: int | None = None, scale: str = "exp"):
        if not 0 <= momentum < 1:
            raise ValueError("momentum must be in [0, 1)")
        if scale not in ("exp", "softplus"):
            raise ValueError("scale must be 'exp' or 'softplus'")
        self.scale = scale
        self.momentum, self.n_groups = float(momentum), n_groups

    def wrap_model(self, model):
        import torch
        from torch import nn

        _check_model(model, "fin")
        G = int(self.n_groups or 1)
        c = self.momentum
        softplus = self.scale == "softplus"

        class Wrapped(nn.Module):
            def __init__(self):
                super().__init__()
                self.base = model
                d = model.out.in_features
                self.mu = nn.Parameter(torch.zeros(G, d))
                self.log_scale = nn.Parameter(torch.zeros(G, d) if softplus is False else torch.randn(G, d))

            @property
            def out(self):
                return self.base.out

            def features(self, x, group=None):
                f = self.base.features(x)
                if group is None:
                    return f
                # c f + (1-c)(f - mu_g) e^{-s_g} = f * A_g + B_g, with A, B computed per group and
                # gathered by a one-hot product (unknown groups: A = 1, B = 0)
                inv = (1.0 / torch.nn.functional.softplus(self.log_scale) if softplus
                       else torch.exp(-self.log_scale))
                A = c + (1 - c) * inv - 1.0
                B = -(1 - c) * self.mu * inv
                known = group >= 0
                oh = torch.nn.functional.one_hot(group.clamp(min=0), G).to(f.dtype) * known[:, None].to(f.dtype)
                return torch.addcmul(oh @ B, f, 1.0 + oh @ A)

            def forward(self, x, group=None):
                f = self.features(x, group)
                z = self.base.out(f)
                return {"logits": z[:, 0] if z.shape[1] == 1 else z, "features": f}

        return Wrapped()
