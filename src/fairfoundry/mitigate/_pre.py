r"""Pre-processing mitigations: reweighing and balanced resampling (training hooks).

Both act on the groups given to training (``batch["group"]``, any number of groups, several
attributes as their intersection) and on the label.
"""

from __future__ import annotations

import numpy as np

from ..adapt._loop import Hook
from ._registry import register

__all__ = ["ERM", "Reweighing", "GroupResample", "GroupLabelResample", "reweighing_weights",
           "balanced_sampling_weights"]


def _label_codes(y) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if y.ndim == 2:  # multi-label: the first label defines the stratum
        y = y[:, 0]
    return np.nan_to_num(y, nan=0.0).astype(np.int64)


def reweighing_weights(y, groups) -> np.ndarray:
    r"""Kamiran & Calders reweighing: :math:`w(g, y) = \frac{P(G=g)\,P(Y=y)}{P(G=g, Y=y)}`.

    Weighted, the label is statistically independent of the group in the training data.
    Source: F. Kamiran and T. Calders, "Data preprocessing techniques for classification
    without discrimination", Knowledge and Information Systems 33, 2012. Cells with no samples
    get no weight (there is nothing to weigh).

    Examples
    --------
    >>> reweighing_weights([1, 1, 0, 0], [0, 0, 0, 1]).round(3).tolist()
    [0.75, 0.75, 1.5, 0.5]
    """
    yc = _label_codes(y)
    g = np.asarray(groups, dtype=np.int64)
    n = len(yc)
    w = np.empty(n, dtype=np.float64)
    for gv in np.unique(g):
        for yv in np.unique(yc):
            m = (g == gv) & (yc == yv)
            if m.any():
                w[m] = (np.mean(g == gv) * np.mean(yc == yv)) / np.mean(m)
    return w


def balanced_sampling_weights(groups, y=None) -> np.ndarray:
    r"""Sampling probabilities giving every group (or group x label cell) the same share.

    :math:`p_i \propto 1 / n_{c(i)}`, where :math:`c(i)` is the group (``y=None``) or the
    (group, label) cell of sample ``i``. Source: the resampling baselines of MEDFAIR (Zong et
    al., ICLR 2023) and Idrissi et al., "Simple data balancing achieves competitive
    worst-group-accuracy", CLeaR 2022.
    """
    g = np.asarray(groups, dtype=np.int64)
    cell = g if y is None else g * 2 + np.clip(_label_codes(y), 0, 1)
    _, inv, counts = np.unique(cell, return_inverse=True, return_counts=True)
    p = 1.0 / counts[inv]
    return p / p.sum()


@register("erm", stage="none")
class ERM(Hook):
    """Empirical risk minimisation: no mitigation (the reference)."""

    def __init__(self):
        pass


@register("reweigh", stage="pre")
class Reweighing(Hook):
    r"""Kamiran & Calders reweighing: weights :math:`P(g)P(y)/P(g,y)` make label and group independent.

    Optimises the weighted cross-entropy; targets demographic-parity-type dependence between
    group and label in the training data. See :func:`reweighing_weights`.
    """

    def __init__(self):
        self._w = None

    def on_fit_start(self, trainer):
        import torch

        self._w = torch.as_tensor(reweighing_weights(trainer.column("y").numpy(), trainer.column("group").numpy()),
                                  dtype=torch.float32)

    def batch_weights(self, trainer, batch):
        return self._w.to(batch["index"].device)[batch["index"]]


@register("resample", stage="pre")
class GroupResample(Hook):
    r"""Group-balanced resampling: each epoch draws every group equally often (with replacement).

    Optimises the group-averaged risk :math:`\frac{1}{G}\sum_g R_g`. ``by="group_label"``
    balances group x label cells instead (see :func:`balanced_sampling_weights`).
    """

    def __init__(self, by: str = "group"):
        if by not in ("group", "group_label"):
            raise ValueError("by must be 'group' or 'group_label'")
        self.by = by

    def sample_weights(self, trainer):
        g = trainer.column("group").numpy()
        return balanced_sampling_weights(g, trainer.column("y").numpy() if self.by == "group_label" else None)


@register("resample-group-label", stage="pre")
class GroupLabelResample(GroupResample):
    r"""Group x label balanced resampling: every (group, label) cell drawn equally often.

    Optimises :math:`\frac{1}{|C|}\sum_{(g,y)} R_{g,y}`; see :func:`balanced_sampling_weights`.
    """

    def __init__(self):
        super().__init__(by="group_label")
