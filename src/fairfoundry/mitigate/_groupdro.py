r"""GroupDRO: minimise the worst group's risk with online group weights."""

from __future__ import annotations

from .._errors import FairfoundryError
from ..adapt._loop import Hook
from ._common import check_unknown, fairness_codes, labels_2d, n_groups_of, torch_where_neg
from ._registry import register

__all__ = ["GroupDRO"]


@register("groupdro", stage="in")
class GroupDRO(Hook):
    r"""Group distributionally robust optimisation (Sagawa et al., ICLR 2020, Algorithm 1).

    Optimises the worst-group risk :math:`\max_g R_g` through the online mirror-ascent weights

    .. math:: q_g \leftarrow \frac{q_g\, e^{\eta\, (\hat R_g + C / \sqrt{n_g})}}
              {\sum_{g'} q_{g'}\, e^{\eta\, (\hat R_{g'} + C / \sqrt{n_{g'}})}},
              \qquad L = \sum_g q_g \hat R_g

    where :math:`\hat R_g` is the (sample-weighted) mean loss of group ``g`` in the batch (0 for a
    group absent from the batch, as in the authors' implementation), :math:`n_g` its number of
    training samples and :math:`C` the generalisation ``adjustment`` of Sagawa et al. (section
    3.2: a group's risk is raised by :math:`C/\sqrt{n_g}`, so small groups, whose training loss
    underestimates their test loss most, get more weight; 0 = no adjustment, the default).
    :math:`L` is not renormalised by the weight of the groups present in the batch.
    ``by="group_label"`` uses (group, label) cells as Sagawa et al. do (the default);
    ``by="group"`` the attribute groups only. Cells without training samples start (and stay)
    at weight 0. Samples with a negative group code (a group
    excluded from the fairness terms, e.g. ``unknown`` with ``unknown="exclude"``, or one not seen
    in training) belong to no group and do not enter :math:`L`.

    Parameters
    ----------
    eta : step size of the group weights.
    by : ``"group"`` or ``"group_label"``.
    adjustment : :math:`C \geq 0`.
    unknown : ``"exclude"`` (default): samples whose attribute is missing (group ``unknown``) are
        in no group; ``"group"``: ``unknown`` is a group of its own.
    """

    def __init__(self, eta: float = 0.1, by: str = "group_label", n_groups: int | None = None,
                 adjustment: float = 0.0, unknown: str = "exclude"):
        if by not in ("group", "group_label"):
            raise ValueError("by must be 'group' or 'group_label'")
        if eta <= 0:
            raise ValueError("eta must be > 0")
        if adjustment < 0:
            raise ValueError("adjustment must be >= 0")
        self.eta, self.by, self.n_groups = float(eta), by, n_groups
        self.adjustment = float(adjustment)
        self.unknown = check_unknown(unknown)
        self.q = None
        self.counts_ = None

    def _cells(self, codes, y):
        """Cell of each sample (-1: no cell) from group codes and the first label."""
        if self.by == "group":
            return codes
        return torch_where_neg(codes, codes * 2 + (y > 0.5).long())

    def on_fit_start(self, trainer):
        import torch

        n = n_groups_of(self, trainer) * (2 if self.by == "group_label" else 1)
        fresh = self.q is None or len(self.q) != n
        if fresh:
            self.q = torch.full((n,), 1.0 / n)
        self.counts_ = None
        try:
            group, y = trainer.column("group").long(), trainer.column("y").float()
        except (AttributeError, FairfoundryError):  # a dataset that does not expose its columns
            if self.adjustment > 0:
                raise
            return
        cells = self._cells(fairness_codes(self, trainer, group), y if y.dim() == 1 else y[:, 0])
        keep = cells >= 0
        self.counts_ = torch.bincount(cells[keep], minlength=n)[:n].double()
        if fresh and bool((self.counts_ > 0).any()):  # cells without training samples get no weight
            q = (self.counts_ > 0).double()
            self.q = (q / q.sum()).float()

    def loss(self, trainer, batch, out, per_sample_loss, weights):
        import torch

        codes = fairness_codes(self, trainer, batch["group"].to(per_sample_loss.device).long())
        cells = self._cells(codes, labels_2d(batch, per_sample_loss)[:, 0])
        keep = cells >= 0
        n = len(self.q)
        num = torch.zeros(n, dtype=per_sample_loss.dtype, device=per_sample_loss.device)
        den = torch.zeros_like(num)
        num = num.index_add(0, cells[keep], (weights * per_sample_loss)[keep])
        den = den.index_add(0, cells[keep], weights[keep])
        group_loss = torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num))
        q = self.q.to(per_sample_loss.device, per_sample_loss.dtype)
        with torch.no_grad():
            adjusted = group_loss.detach()
            if self.adjustment > 0:
                n_g = self.counts_.to(adjusted)
                adjusted = adjusted + torch.where(n_g > 0, self.adjustment / n_g.clamp(min=1).sqrt(),
                                                  torch.zeros_like(n_g))
            q = q * torch.exp(self.eta * adjusted)
            q = q / q.sum()
        self.q = q.detach().cpu()
        return (q * group_loss).sum()

    def state_dict(self):
        return {"q": None if self.q is None else self.q.tolist()}

    def load_state_dict(self, state):
        import torch

        if state.get("q") is not None:
            self.q = torch.tensor(state["q"])
