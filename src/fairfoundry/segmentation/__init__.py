"""Segmentation fairness: per-image Dice, IoU, HD95 and surface Dice, per group with CIs.

- :func:`dice`, :func:`iou`, :func:`hd95`, :func:`surface_dice`: one image (2-D or 3-D);
- :func:`es_dice_fairmedfm` (mean / (1 + std of group means), FairMedFM) and
  :func:`es_dice_fairseg` (Dice / (1 + sum of |Dice_g - Dice|), FairSeg): the field's two
  "ES-Dice" definitions, under distinct names;
- :func:`read_mask`: PNG / NIfTI / npz / npy binary masks;
- :func:`evaluate_segmentation`: a table of mask paths aligned by sample id -> per-group means
  with bootstrap CIs clustered by patient, gaps, tests and both ES-Dice scores with CIs
  (``fairfoundry evaluate-seg``).

Layer 1 (numpy / scipy / pandas; Pillow and nibabel imported when a mask is read). The
per-group statistics come from :func:`fairfoundry.metrics.evaluate_group_means`; the result
object and group building are shared with :mod:`fairfoundry.hallucination`. See
``docs/segmentation.md``.
"""

from ._evaluate import evaluate_segmentation
from ._metrics import (
    ES_SCORES,
    SEG_METRICS,
    dice,
    es_dice_fairmedfm,
    es_dice_fairseg,
    hd95,
    iou,
    segmentation_scores,
    surface_dice,
)
from ._readers import MASK_SUFFIXES, read_mask

__all__ = ["ES_SCORES", "MASK_SUFFIXES", "SEG_METRICS", "dice", "es_dice_fairmedfm",
           "es_dice_fairseg", "evaluate_segmentation", "hd95", "iou", "read_mask",
           "segmentation_scores", "surface_dice"]
