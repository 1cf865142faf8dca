r"""Differentiable fairness penalties added to the training loss."""

from __future__ import annotations

from ..adapt._loop import Hook
from ._common import check_unknown, fairness_codes, labels_2d, logits_2d
from ._registry import register

__all__ = ["FairnessPenalty", "fairness_penalty"]


def fairness_penalty(probs, y, groups, *, variant: str = "dp"):
    r"""Soft fairness gap of a batch: sum over groups of the gap to the batch mean.

    With :math:`p_i = \sigma(z_i)` and :math:`\mu_g = \mathrm{mean}_{i \in g} p_i`:

    - ``dp`` (demographic parity): :math:`\sum_g |\mu_g - \mu|`;
    - ``eopp`` (equal opportunity): the same over positives only (soft TPR);
    - ``eo`` (equalized odds): the ``eopp`` term plus the same over negatives (soft FPR).

    Groups absent from the batch (or from a label stratum) are skipped; with fewer than two
    groups present the penalty is 0, so a batch missing a group never gives NaN. Multi-label
    scores are averaged over labels. Source: the "soft" surrogate constraints of Zafar et al.
    (AISTATS 2017) and Padala & Gujar (FNNC, 2020), in the mean-gap form used by MEDFAIR's
    in-processing baselines.
    """
    import torch

    p = probs if probs.dim() == 2 else probs[:, None]
    yy = y if y.dim() == 2 else y[:, None]
    strata = {"dp": [None], "eopp": [1.0], "eo": [1.0, 0.0]}[variant]
    total = p.new_zeros(())
    for label in strata:
        for k in range(p.shape[1]):
            pk, yk = p[:, k], yy[:, k]
            m = ~torch.isnan(yk) & (groups >= 0)
            if label is not None:
                m = m & (yk == label)
            if m.sum() == 0:
                continue
            mu = pk[m].mean()
            present = torch.unique(groups[m])
            if len(present) < 2:
                continue
            for gv in present:
                mg = m & (groups == gv)
                total = total + (pk[mg].mean() - mu).abs() / p.shape[1]
    return total


@register("fair-penalty", stage="in")
class FairnessPenalty(Hook):
    r"""Adds :math:`\lambda \cdot` a differentiable DP / EO / EOpp gap (see :func:`fairness_penalty`).

    Optimises :math:`L_{task} + \lambda\,\mathrm{gap}` where gap is the soft demographic
    parity, equal opportunity or equalized odds difference of the batch.

    Parameters
    ----------
    weight : :math:`\lambda`.
    variant : ``"dp"``, ``"eo"`` or ``"eopp"``.
    unknown : ``"exclude"`` (default): samples whose attribute is missing (group ``unknown``) are
        in no group of the fairness term (they still train the task loss); ``"group"``:
        ``unknown`` is a protected group of its own.
    """

    def __init__(self, weight: float = 1.0, variant: str = "eo", unknown: str = "exclude"):
        if variant not in ("dp", "eo", "eopp"):
            raise ValueError("variant must be 'dp', 'eo' or 'eopp'")
        self.weight, self.variant = float(weight), variant
        self.unknown = check_unknown(unknown)

    def regularizer(self, trainer, batch, out):
        import torch

        z = logits_2d(out)
        return self.weight * fairness_penalty(torch.sigmoid(z), labels_2d(batch, z),
                                              fairness_codes(self, trainer, batch["group"]),
                                              variant=self.variant)
