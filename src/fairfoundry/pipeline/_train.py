"""Train and score one method on one seed: the step ``fit`` and the benchmarks share.

:func:`train_and_score` instantiates a registered mitigation, trains an estimator with it (as a
training hook for pre- and in-processing methods), selects the checkpoint on validation,
fits post-processing on validation only, and scores every row. Which estimator is trained
(a head on embeddings, an encoder fine-tuned on images) is the caller's ``make_estimator``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import FairfoundryError

__all__ = ["MethodScores", "train_and_score", "instantiate_method", "method_label"]

log = logging.getLogger(__name__)


@dataclass
class MethodScores:
    """The outcome of :func:`train_and_score`.

    Attributes
    ----------
    name, label, stage : the registry name, a label with the arguments, the method's stage
    scores : array (n,) or (n, k), the (post-processed) scores of every row
    threshold : ``"youden"`` (chosen on validation by the evaluation) or ``0.5`` for
        group-threshold, whose group thresholds are encoded as 0.5 on the transformed scores
    estimator : the trained estimator (``save``, ``history_``, ``result_``, ``selected_``)
    method : the mitigation object (post-processing methods are fitted)
    warnings : list of str
    """

    name: str
    label: str
    stage: str
    scores: np.ndarray
    threshold: float | str
    estimator: Any
    method: Any
    warnings: list[str] = field(default_factory=list)


def method_label(name: str, args: dict | None = None) -> str:
    """``groupdro(eta=0.5)``: a method with its arguments, as runs and tables name it."""
    if not args:
        return name
    return name + "(" + ",".join(f"{k}={v}" for k, v in sorted(args.items())) + ")"


def instantiate_method(name: str, args: dict | None = None):
    """``(method, stage)`` of a registered mitigation, its arguments typed and checked."""
    from ..mitigate import MITIGATIONS, make_mitigation, parse_method_args

    method = make_mitigation(name, **parse_method_args(args or {}))
    return method, MITIGATIONS[name].stage


def train_and_score(name: str, args: dict | None = None, *, X, y, groups, train, val,
                    make_estimator: Callable[[list], Any], images: bool = False,
                    scored=None) -> MethodScores:
    """Train method ``name`` (with ``args``) once and score every row.

    Parameters
    ----------
    name, args : a registered mitigation (:data:`fairfoundry.mitigate.MITIGATIONS`) and its
        arguments (strings are typed, unknown names refused).
    X : embeddings ``(n, d)``, or image paths ``(n,)`` with ``images=True``
    y : labels ``(n,)`` or ``(n, k)``
    groups : group name of every row (:func:`fairfoundry.groups.group_labels`)
    train, val : boolean masks of the rows to train on and to select / post-process on
    make_estimator : ``hooks -> estimator`` (e.g. a :class:`~fairfoundry.adapt.HeadClassifier`
        with the run's seed and settings); the method is passed as a hook when it trains
    images : ``X`` holds image paths (validation data passed as ``paths_val``)
    scored : mask of the rows whose groups should have been seen in training (default
        ``val``); groups absent from training are warned about

    Returns
    -------
    MethodScores
    """
    method, stage = instantiate_method(name, args)
    hooks = [method] if stage in ("pre", "in") else []
    est = make_estimator(hooks)
    warnings: list[str] = []
    unseen = sorted(set(groups[val if scored is None else scored]) - set(groups[train]))
    if unseen:
        msg = (f"groups absent from training: {', '.join(map(str, unseen[:5]))}; per-group "
               "methods treat them with their global fallback and their test metrics show the "
               "effect")
        log.warning(msg)
        warnings.append(msg)
    val_kw = "paths_val" if images else "X_val"
    est.fit(X[train], y[train], groups=groups[train], **{val_kw: X[val]}, y_val=y[val],
            groups_val=groups[val])
    scores = est.predict_score(X, groups=groups)
    threshold: float | str = "youden"
    if stage == "post":
        if np.ndim(y) != 1:
            raise FairfoundryError(f"post-processing method {name!r} supports one label, got "
                                   f"{np.shape(y)[1]}")
        method.fit(scores[val], y[val], groups[val])
        scores = method.transform(scores, groups)
        if name == "group-threshold":
            threshold = 0.5
    return MethodScores(name=name, label=method_label(name, args), stage=stage, scores=scores,
                        threshold=threshold, estimator=est, method=method, warnings=warnings)
