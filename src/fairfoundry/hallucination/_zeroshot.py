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

__all__ = ["zero_shot_hallucination", "zero_shot_hallucination_table"]


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

    s, y = _check(scores, y_true, threshold)
    flags, metric_names = _confident_flags(s, y, threshold=threshold, finding_names=finding_names)
    res = evaluate_group_means(flags, groups=groups, group_names=group_names,
                               metric_names=metric_names,
                               directions={m: -1 for m in metric_names}, cluster=cluster,
                               n_bootstrap=n_bootstrap, n_permutations=n_permutations,
                               confidence=confidence, seed=seed)
    res.config["threshold"] = float(threshold)
    return res


def _check(scores, y_true, threshold):
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
    return s, y


def _confident_flags(s: np.ndarray, y: np.ndarray, *, threshold: float,
                     finding_names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """Per-image flags ``[s >= tau]`` on absent findings (NaN where present), plus ``_any``."""
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
    return np.hstack(cols), metric_names


def zero_shot_hallucination_table(frame, scores, y_true, *, sensitive: Sequence[str],
                                  finding_names: Sequence[str] | None = None,
                                  threshold: float = 0.9, bins=None, cluster: str | None = None,
                                  id_col: str | None = "sample_id", n_bootstrap: int = 200,
                                  n_permutations: int = 0, confidence: float = 0.95,
                                  seed: int = 0, min_events: int = 10, info: dict | None = None):
    r"""The zero-shot hallucination table of several attributes, as a :class:`GroupedEvaluation`.

    The rates of :func:`zero_shot_hallucination` (confident positive calls,
    :math:`s \ge \tau`, on images whose finding is absent) for every attribute of ``sensitive``
    (each one on its own, groups from :func:`attribute_groups`, missing values are ``unknown``),
    with percentile bootstrap CIs (clustered by ``cluster`` when given), max-min gaps with CIs
    and, with ``n_permutations``, permutation p-values. ``by_group`` gets two more columns:
    ``events`` (confident positive calls on absent findings in the group) and ``judgement``
    (``"too few to judge: ..."`` when the group has fewer than ``min_events`` events or
    non-events, else ``""``); a gap is a headline only when its CI excludes 0 and both groups
    have enough events (``evidence``). ``save(out)`` writes ``evaluation.csv``,
    ``per_sample.csv``, ``summary.json`` and ``report.html``.

    Parameters
    ----------
    frame : DataFrame with the attribute columns (and ``id_col``, ``cluster``), aligned with
        ``scores``.
    scores, y_true : arrays (n,) or (n, F): positive-class probabilities and 0/1 truth.
    sensitive : attribute columns; ``bins`` bins numeric ones (``{"age": [40, 60, 80]}``).
    threshold : :math:`\tau`, fixed in advance (never tuned on the reported rows).
    """
    import pandas as pd

    from ._grouped import _events, attribute_groups, run_grouped

    s, y = _check(scores, y_true, threshold)
    flags, metric_names = _confident_flags(s, y, threshold=threshold, finding_names=finding_names)
    frame = frame.reset_index(drop=True)
    if len(frame) != len(s):
        raise FairfoundryError(f"the frame has {len(frame)} rows and the scores {len(s)}")
    values = pd.DataFrame(flags, columns=metric_names)
    id_col = id_col if id_col in frame.columns else None
    res = run_grouped(kind="fairfoundry.zero_shot_hallucination",
                      title="Zero-shot hallucination: confident positive calls on absent findings",
                      values=values, frame=frame, id_col=id_col, sensitive=list(sensitive),
                      intersect=[], bins=bins, cluster=cluster, reference_group=None,
                      n_bootstrap=n_bootstrap, n_permutations=n_permutations,
                      confidence=confidence, seed=seed, label="zero-shot",
                      config={"threshold": float(threshold),
                              "findings": list(metric_names)},
                      info=dict(info or {"source": "DataFrame", "n_rows": len(frame)}),
                      notes=[f"a confident call is a positive-class probability >= {threshold:g}, "
                             "fixed in advance; rates are over the images on which the finding "
                             "is absent"],
                      directions={m: -1 for m in metric_names}, binary_metrics=metric_names,
                      headline_metrics=metric_names, min_events=min_events)
    by = res.by_group
    events = np.full(len(by), np.nan)
    for attr in attribute_groups(frame, list(sensitive), bins=bins):
        for m in metric_names:
            ev = _events(values[m], attr.codes, attr.names)
            ev["overall"] = float(np.nansum(values[m].to_numpy() > 0))
            sel = ((by["attribute"] == attr.name) & (by["metric"] == m)).to_numpy()
            events[sel] = by.loc[sel, "group"].map(ev).to_numpy(dtype=float)
    by["events"] = events
    few = (np.minimum(by["events"], by["n"] - by["events"]) < min_events).to_numpy()
    by["judgement"] = np.where(
        few, [f"too few to judge: {int(e)} events in {int(n)} images (fewer than {min_events} "
              "events or non-events)" for e, n in zip(np.nan_to_num(by["events"]), by["n"],
                                                     strict=True)], "")
    res.by_group = by
    return res
