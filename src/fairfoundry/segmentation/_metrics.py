r"""Per-image segmentation metrics (Dice, IoU, HD95, surface Dice) and the two ES-Dice scores.

Masks are boolean arrays of the same shape (2-D images or 3-D volumes). Surfaces are the mask
voxels with at least one face-neighbour outside the mask (the mask minus its erosion by the
face-connected cross); distances are Euclidean in physical units (``spacing`` per axis, from
the NIfTI header when read from NIfTI), computed with ``scipy.ndimage.distance_transform_edt``.

Empty masks: both empty -> Dice = IoU = surface Dice = 1 and HD95 = 0 (a correct empty
prediction); exactly one empty -> Dice = IoU = surface Dice = 0 and HD95 undefined (NaN; left
out of HD95 means, counted in ``n``'s difference).

Layer 0-style code (numpy / scipy), in the layer-1 :mod:`fairfoundry.segmentation` package.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._errors import FairfoundryError

__all__ = ["dice", "iou", "hd95", "surface_dice", "segmentation_scores",
           "es_dice_fairmedfm", "es_dice_fairseg", "SEG_METRICS"]

#: per-image metrics of :func:`segmentation_scores`, and whether higher is better
SEG_METRICS = {"dice": 1, "iou": 1, "hd95": -1, "surface_dice": 1}


def _pair(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred).astype(bool)
    t = np.asarray(truth).astype(bool)
    if p.shape != t.shape:
        raise FairfoundryError(f"masks have different shapes: prediction {p.shape}, "
                               f"truth {t.shape}")
    return p, t


def dice(pred, truth) -> float:
    r"""Dice similarity coefficient :math:`2|P \cap T| / (|P| + |T|)` (1 when both are empty).

    Source: Dice, Ecology 1945; the standard overlap score of medical segmentation.

    Examples
    --------
    >>> dice([[1, 1, 0, 0]], [[0, 1, 1, 0]])
    0.5
    """
    p, t = _pair(pred, truth)
    s = p.sum() + t.sum()
    return 1.0 if s == 0 else float(2.0 * np.logical_and(p, t).sum() / s)


def iou(pred, truth) -> float:
    r"""Intersection over union (Jaccard) :math:`|P \cap T| / |P \cup T|` (1 when both empty).

    Examples
    --------
    >>> iou([[1, 1, 0, 0]], [[0, 1, 1, 0]])
    0.3333333333333333
    """
    p, t = _pair(pred, truth)
    u = np.logical_or(p, t).sum()
    return 1.0 if u == 0 else float(np.logical_and(p, t).sum() / u)


def _surface(m: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    cross = ndimage.generate_binary_structure(m.ndim, 1)
    return m & ~ndimage.binary_erosion(m, structure=cross, border_value=0)


def _spacing(spacing, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    sp = tuple(float(s) for s in np.atleast_1d(spacing))
    if len(sp) == 1:
        sp = sp * ndim
    if len(sp) != ndim or not all(np.isfinite(s) and s > 0 for s in sp):
        raise FairfoundryError(f"spacing {spacing!r} must be {ndim} positive numbers")
    return sp


def _surface_distances(p: np.ndarray, t: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each surface voxel of ``p`` to the surface of ``t``, and back."""
    from scipy import ndimage

    sp, st = _surface(p), _surface(t)
    dt_t = ndimage.distance_transform_edt(~st, sampling=spacing)
    dt_p = ndimage.distance_transform_edt(~sp, sampling=spacing)
    return dt_t[sp], dt_p[st]


def hd95(pred, truth, *, spacing: Sequence[float] | None = None) -> float:
    r"""95th-percentile Hausdorff distance between the mask surfaces.

    .. math:: \mathrm{HD95} = \max\bigl(P_{95}\{d(x, \partial T) : x \in \partial P\},\;
              P_{95}\{d(y, \partial P) : y \in \partial T\}\bigr)

    (the maximum of the two directed 95th percentiles, as MONAI's
    ``compute_hausdorff_distance(percentile=95)``; percentiles by linear interpolation).
    0 when both masks are empty; NaN when exactly one is.

    Examples
    --------
    >>> a = [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    >>> b = [[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]]
    >>> hd95(a, b)
    1.0
    """
    p, t = _pair(pred, truth)
    if not p.any() and not t.any():
        return 0.0
    if not p.any() or not t.any():
        return float("nan")
    a, b = _surface_distances(p, t, _spacing(spacing, p.ndim))
    return float(max(np.percentile(a, 95), np.percentile(b, 95)))


def surface_dice(pred, truth, *, tolerance: float = 1.0,
                 spacing: Sequence[float] | None = None) -> float:
    r"""Normalised surface Dice at tolerance :math:`\tau`: the share of both surfaces that lies
    within :math:`\tau` of the other surface,

    .. math:: \frac{|\{x \in \partial P : d(x, \partial T) \le \tau\}| +
              |\{y \in \partial T : d(y, \partial P) \le \tau\}|}{|\partial P| + |\partial T|}

    counting surface voxels (Nikolov et al., "Clinically applicable segmentation of head and
    neck anatomy for radiotherapy", JMIR 2021, weigh surface elements by their area; voxel
    counts are the common approximation). 1 when both are empty, 0 when one is.

    Examples
    --------
    >>> a = [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    >>> b = [[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]]
    >>> surface_dice(a, b, tolerance=0.5), surface_dice(a, b, tolerance=1.0)
    (0.5, 1.0)
    """
    p, t = _pair(pred, truth)
    if tolerance < 0:
        raise FairfoundryError(f"tolerance must be >= 0, got {tolerance!r}")
    if not p.any() and not t.any():
        return 1.0
    if not p.any() or not t.any():
        return 0.0
    a, b = _surface_distances(p, t, _spacing(spacing, p.ndim))
    return float((np.sum(a <= tolerance) + np.sum(b <= tolerance)) / (a.size + b.size))


def segmentation_scores(pred, truth, *, tolerance: float = 1.0,
                        spacing: Sequence[float] | None = None) -> dict[str, float]:
    """All :data:`SEG_METRICS` of one image: ``dice, iou, hd95, surface_dice``."""
    return {"dice": dice(pred, truth), "iou": iou(pred, truth),
            "hd95": hd95(pred, truth, spacing=spacing),
            "surface_dice": surface_dice(pred, truth, tolerance=tolerance, spacing=spacing)}


def _group_means(values, groups) -> tuple[np.ndarray, float]:
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(groups)
    if v.ndim != 1 or g.shape != v.shape or v.size == 0:
        raise FairfoundryError("dice and groups must be non-empty 1-D arrays of one length")
    if not np.all(np.isfinite(v)):
        raise FairfoundryError("dice must be finite")
    names = np.unique(g.astype(str))
    means = np.array([v[g.astype(str) == k].mean() for k in names])
    return means, float(v.mean())


def es_dice_fairmedfm(dice_values, *, groups) -> float:
    r"""Equity-scaled Dice as FairMedFM defines it: the mean Dice over all samples divided by
    one plus the (population) standard deviation of the group mean Dice scores,

    .. math:: \mathrm{ES\text{-}Dice}_{\mathrm{FairMedFM}} =
              \frac{\overline{\mathrm{Dice}}}{1 + \operatorname{std}_g(\overline{\mathrm{Dice}}_g)}

    Source: Jin et al., "FairMedFM: Fairness Benchmarking for Medical Imaging Foundation
    Models", NeurIPS 2024 Datasets & Benchmarks (``es_dice`` of the ``fairmedfm`` package).
    Not :func:`es_dice_fairseg`, which divides by the sum of absolute deviations.

    Examples
    --------
    >>> round(es_dice_fairmedfm([0.9, 0.7, 0.6, 0.8], groups=["a", "a", "b", "b"]), 6)
    0.714286
    """
    means, overall = _group_means(dice_values, groups)
    return overall / (1.0 + float(np.std(means)))


def es_dice_fairseg(dice_values, *, groups) -> float:
    r"""Equity-scaled Dice as FairSeg defines it: the overall Dice divided by one plus the sum
    over groups of the absolute differences between group and overall Dice,

    .. math:: \mathrm{ES\text{-}Dice}_{\mathrm{FairSeg}} =
              \frac{\mathrm{Dice}}{1 + \sum_g |\mathrm{Dice}_g - \mathrm{Dice}|}

    with Dice the mean over samples. Source: Tian et al., "FairSeg: A Large-Scale Medical
    Image Segmentation Dataset for Fairness Learning Using Segment Anything Model with
    Fair Error-Bound Scaling", ICLR 2024 (their ES-Dice; same form as FairCLIP's ES-AUC).

    Examples
    --------
    >>> round(es_dice_fairseg([0.9, 0.7, 0.6, 0.8], groups=["a", "a", "b", "b"]), 6)
    0.681818
    """
    means, overall = _group_means(dice_values, groups)
    return overall / (1.0 + float(np.sum(np.abs(means - overall))))


def _es_fairmedfm_rows(per: np.ndarray, ov: np.ndarray) -> np.ndarray:
    return ov / (1.0 + np.nanstd(per, axis=1))


def _es_fairseg_rows(per: np.ndarray, ov: np.ndarray) -> np.ndarray:
    return ov / (1.0 + np.nansum(np.abs(per - ov[:, None]), axis=1))


#: the two ES-Dice definitions as summaries of :func:`fairfoundry.metrics.evaluate_group_means`
ES_SCORES = {"es_dice_fairmedfm": ("dice", _es_fairmedfm_rows),
             "es_dice_fairseg": ("dice", _es_fairseg_rows)}
