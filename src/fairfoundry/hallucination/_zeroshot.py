r"""Zero-shot VLM hallucination: confident positive calls on absent findings, by group.

A CLIP-style zero-shot classifier (:func:`fairfoundry.adapt.zero_shot_scores`) gives each image a
probability per finding. Its "hallucination" is a *confident* positive call on a finding the
image does not have:

.. math:: h_{if} = [s_{if} \ge \tau] \quad \text{on images with } y_{if} = 0

and the rate per group is :math:`P(s_f \ge \tau \mid y_f = 0, A = g)` (a false-positive rate at
a high, fixed confidence :math:`\tau`, not a threshold tuned on the reported data). With several
findings, ``confident_false_positive_any`` is 1 when any absent finding of the image is called
with confidence. Per-group CIs, gaps and tests come from
:func:`fairfoundry.metrics.evaluate_group_means`.

Layer 1: numpy only (the scores are computed elsewhere).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._errors import FairfoundryError

__all__ = ["zero_shot_hallucination"]


def zero_shot_hallucination(scores, y_true, *, groups: np.ndarray, group_names: Sequence[str],
                            threshold: float = 0.9, finding_names: Sequence[str] | None = None,
                            cluster: np.ndarray | None = None, n_bootstrap: int = 0,
                            n_permutations: int = 0, confidence: float = 0.95, seed: int = 0):
    """Rate of confident positive zero-shot calls on absent findings, by group, with CIs.

    Parameters
    ----------
    scores : array (n,) or (n, F)
        Positive-class probability of each finding (e.g. ``zero_shot_scores(V, T)[:, 1]`` per
        finding).
    y_true : array like ``scores`` of 0/1: whether the finding is present.
    groups, group_names : integer group codes and their names (see
        :func:`fairfoundry.metrics.intersect_groups`).
    threshold : confidence :math:`\\tau` of a "confident" call, fixed in advance (default 0.9).
    finding_names : one name per column (default ``finding_0, ...``).
    cluster, n_bootstrap, n_permutations, confidence, seed : as
        :func:`fairfoundry.metrics.evaluate_group_means`.

    Returns
    -------
    GroupResult
        Metrics ``confident_false_positive:<finding>`` (NaN on images that have the finding) and,
        with several findings, ``confident_false_positive_any``; ``n`` is the number of images
        on which each rate is defined.

    Examples
    --------
    >>> import numpy as np
    >>> r = zero_shot_hallucination([0.95, 0.2, 0.99, 0.97], [0, 0, 1, 0],
    ...                             groups=np.array([0, 0, 1, 1]), group_names=["F", "M"],
    ...                             finding_names=["effusion"])
    >>> r.estimate("confident_false_positive:effusion", "F")
    0.5
    """
    from ..metrics import evaluate_group_means

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.float64)
    if s.ndim == 1:
        s, y = s[:, None], y.reshape(-1, 1) if y.ndim == 1 else y
    if s.ndim != 2 or y.shape != s.shape:
        raise FairfoundryError(f"scores {s.shape} and y_true {y.shape} must have the same shape")
    if not np.all(np.isfinite(s)) or s.min() < 0 or s.max() > 1:
        raise FairfoundryError("scores must be probabilities in [0, 1]",
                               hint="use zero_shot_scores(...)[:, 1], the positive class")
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        raise FairfoundryError(f"y_true must be 0/1; row {i} is {y[i].tolist()}")
    if not 0 < threshold < 1:
        raise FairfoundryError(f"threshold must be in (0, 1), got {threshold!r}")
    F = s.shape[1]
    names = list(finding_names) if finding_names is not None else [f"finding_{j}"
                                                                   for j in range(F)]
    if len(names) != F:
        raise FairfoundryError(f"finding_names has {len(names)} names for {F} columns")
    absent = y == 0
    flag = np.where(absent, (s >= threshold).astype(float), np.nan)
    cols = [flag]
    metric_names = [f"confident_false_positive:{f}" for f in names]
    if F > 1:
        any_ = np.where(absent.any(axis=1), np.nanmax(np.where(absent, flag, 0.0), axis=1),
                        np.nan)
        cols.append(any_[:, None])
        metric_names.append("confident_false_positive_any")
    res = evaluate_group_means(np.hstack(cols), groups=groups, group_names=group_names,
                               metric_names=metric_names,
                               directions={m: -1 for m in metric_names}, cluster=cluster,
                               n_bootstrap=n_bootstrap, n_permutations=n_permutations,
                               confidence=confidence, seed=seed)
    res.config["threshold"] = float(threshold)
    return res
