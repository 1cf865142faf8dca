r"""GroupDRO: minimise the worst group's risk with online group weights."""

from __future__ import annotations

from ..adapt._loop import Hook
from ._common import labels_2d, n_groups_of
from ._registry import register

__all__ = ["GroupDRO"]


@register("groupdro", stage="in")
class GroupDRO(Hook):
    r"""Group distributionally robust optimisation (Sagawa et al., ICLR 2020, Algorithm 1).

    Optimises the worst-group risk :math:`\max_g R_g` through the online mirror-ascent weights

    .. math:: q_g \leftarrow \frac{q_g\, e^{\eta \hat R_g}}{\sum_{g'} q_{g'}\, e^{\eta \hat R_{g'}}},
              \qquad L = \sum_g q_g \hat R_g

    where :math:`\hat R_g` is the (sample-weighted) mean loss of group ``g`` in the batch. Groups
    absent from a batch keep their weight and do not enter the loss. ``by="group_label"`` uses
    (group, label) cells as Sagawa et al. do (the default); ``by="group"`` the attribute groups only.

    Parameters
    ----------
    eta : step size of the group weights.
    by : ``"group"`` or ``"group_label"``.
    """

    def __init__(self, eta: float = 0.1, by: str = "group_label", n_groups: int | None = None):
        if by not in ("group", "group_label"):
            raise ValueError("by must be 'group' or 'group_label'")
        if eta <= 0:
            raise ValueError("eta must be > 0")
        self.eta, self.by, self.n_groups = float(eta), by, n_groups
        self.q = None

    def _cells(self, batch, like):
        g = batch["group"].clamp(min=0)
        if self.by == "group":
            return g
        y = labels_2d(batch, like)[:, 0]
        return g * 2 + (y > 0.5).long()

    def on_fit_start(self, trainer):
        import torch

        n = n_groups_of(self, trainer) * (2 if self.by == "group_label" else 1)
        if self.q is None or len(self.q) != n:
            self.q = torch.full((n,), 1.0 / n)

    def loss(self, trainer, batch, out, per_sample_loss, weights):
        import torch

        cells = self._cells(batch, per_sample_loss)
        n = len(self.q)
        num = torch.zeros(n, dtype=per_sample_loss.dtype, device=per_sample_loss.device)
        den = torch.zeros_like(num)
        num = num.index_add(0, cells, weights * per_sample_loss)
        den = den.index_add(0, cells, weights)
        present = den > 0
        group_loss = torch.where(present, num / den.clamp(min=1e-12), torch.zeros_like(num))
        q = self.q.to(per_sample_loss.device)
        with torch.no_grad():
            q = q * torch.exp(self.eta * group_loss.detach() * present)
            q = q / q.sum()
        self.q = q.detach().cpu()
        qp = q * present
        return (qp * group_loss).sum() / qp.sum().clamp(min=1e-12)

    def state_dict(self):
        return {"q": None if self.q is None else self.q.tolist()}

    def load_state_dict(self, state):
        import torch

        if state.get("q") is not None:
            self.q = torch.tensor(state["q"])
