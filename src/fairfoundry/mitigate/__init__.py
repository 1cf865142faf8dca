"""Bias mitigation: pre-, in- and post-processing methods and model selection.

Every method is registered in :data:`MITIGATIONS` (one class per module, added by the
:func:`register` decorator). Pre- and in-processing methods are training hooks for the one loop
(:class:`fairfoundry.adapt.Trainer`); post-processing methods are fitted on validation scores.
"""

from ..adapt._selection import CRITERIA, dto, pareto_front, selection_scores
from ._adversarial import Adversarial, grad_reverse
from ._fairclip import DistributionAlignment, sinkhorn_distance, wasserstein_1d
from ._group_heads import FairIdentityNormalization, GroupHeads
from ._groupdro import GroupDRO
from ._inputs import load_embeddings, prepare_columns, training_groups
from ._penalty import FairnessPenalty, fairness_penalty
from ._post import GroupCalibration, GroupThreshold
from ._pre import (
    ERM,
    GroupLabelResample,
    GroupResample,
    Reweighing,
    balanced_sampling_weights,
    reweighing_weights,
)
from ._registry import (
    MITIGATIONS,
    list_mitigations,
    load_mitigations,
    make_mitigation,
    methods_table,
    parse_method_args,
    register,
)

__all__ = [
    "load_embeddings",
    "prepare_columns",
    "training_groups",
    "CRITERIA",
    "ERM",
    "MITIGATIONS",
    "load_mitigations",
    "methods_table",
    "Adversarial",
    "DistributionAlignment",
    "FairIdentityNormalization",
    "FairnessPenalty",
    "GroupCalibration",
    "GroupDRO",
    "GroupHeads",
    "GroupLabelResample",
    "GroupResample",
    "GroupThreshold",
    "Reweighing",
    "balanced_sampling_weights",
    "dto",
    "fairness_penalty",
    "grad_reverse",
    "list_mitigations",
    "make_mitigation",
    "pareto_front",
    "parse_method_args",
    "register",
    "reweighing_weights",
    "selection_scores",
    "sinkhorn_distance",
    "wasserstein_1d",
]
