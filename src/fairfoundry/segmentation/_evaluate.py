"""``evaluate_segmentation``: per-image Dice, IoU, HD95 and surface Dice, then per group with CIs.

Layer 1: reads the masks named in a table (paths relative to the table's folder), aligned by
sample id (one row per id; duplicates rejected), scores each image and averages per group and
intersection with :func:`fairfoundry.metrics.evaluate_group_means` (bootstrap CIs clustered by
patient, gaps, permutation tests), adding both ES-Dice definitions as summaries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import FairfoundryError
from ..hallucination import GroupedEvaluation
from ..hallucination._grouped import run_grouped
from ..hallucination._reports import _column, load_input, resolve_id, row_namer
from ._metrics import ES_SCORES, SEG_METRICS, segmentation_scores
from ._readers import read_mask

__all__ = ["evaluate_segmentation"]


def _path(value, base: Path, col: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise FairfoundryError(f"mask column {col!r} has no path",
                               hint="every row needs a prediction and a ground-truth mask")
    p = Path(value.strip())
    return p if p.is_absolute() else base / p


def evaluate_segmentation(data, *, pred: str, truth: str, sensitive: Sequence[str],
                          intersect: Sequence[Sequence[str]] = (),
                          bins: Mapping[str, Sequence[float]] | None = None,
                          cluster: str | None = None, id_col: str | None = None,
                          base_dir: str | os.PathLike | None = None, tolerance: float = 1.0,
                          reference_group: Mapping[str, str] | None = None,
                          n_bootstrap: int = 0, n_permutations: int = 0,
                          confidence: float = 0.95, seed: int = 0,
                          progress=None) -> GroupedEvaluation:
    """Segmentation fairness: per-image metrics, per-group means with CIs, both ES-Dice scores.

    Parameters
    ----------
    data : DataFrame or path (CSV / TSV / Parquet)
        One row per image: sample id, prediction and ground-truth mask paths (PNG, NIfTI,
        npz, npy), protected attributes.
    pred, truth : the mask path columns.
    sensitive, intersect, bins, cluster, id_col, reference_group : as
        :func:`fairfoundry.hallucination.evaluate_reports`.
    base_dir : folder relative paths start from (default: the table's folder, or the working
        directory for a DataFrame).
    tolerance : surface Dice tolerance in physical units (NIfTI spacing; pixels otherwise).
    n_bootstrap, n_permutations, confidence, seed : as
        :func:`fairfoundry.metrics.evaluate_group_means`.
    progress : callable, optional, called with 1 after each image.

    Returns
    -------
    GroupedEvaluation
        Metrics ``dice, iou, hd95, surface_dice`` per group; summaries per metric (gap, ratio,
        ...) plus ``es_dice_fairmedfm`` and ``es_dice_fairseg`` with bootstrap CIs.

    Raises
    ------
    FairfoundryError
        Naming the row: a missing or unreadable mask, masks of different shapes, a mask that is
        not binary.
    """
    frame, info = load_input(data)
    id_col = resolve_id(frame, id_col)
    rows = row_namer(frame, id_col)
    pcol, tcol = _column(frame, pred, "--pred"), _column(frame, truth, "--truth")
    if base_dir is not None:
        base = Path(base_dir)
    elif info["source"] != "DataFrame":
        base = Path(info["source"]).resolve().parent
    else:
        base = Path.cwd()
    if not (isinstance(tolerance, (int, float)) and np.isfinite(tolerance) and tolerance >= 0):
        raise FairfoundryError(f"tolerance must be a number >= 0, got {tolerance!r}")
    out = np.empty((len(frame), len(SEG_METRICS)))
    for i in range(len(frame)):
        where = rows(i)
        try:
            p, sp_p = read_mask(_path(frame[pcol].iloc[i], base, pcol))
            t, sp_t = read_mask(_path(frame[tcol].iloc[i], base, tcol))
            if p.shape != t.shape:
                raise FairfoundryError(f"masks have different shapes: {pcol} {p.shape}, "
                                       f"{tcol} {t.shape}",
                                       hint="predictions must be on the ground truth's grid")
            sc = segmentation_scores(p, t, tolerance=tolerance, spacing=sp_t or sp_p)
        except FairfoundryError as err:
            raise FairfoundryError(f"{where}: {err.message}", hint=err.hint) from err
        out[i] = [sc[m] for m in SEG_METRICS]
        if progress is not None:
            progress(1)
    values = pd.DataFrame(out, columns=list(SEG_METRICS))
    notes = ["Dice = IoU = surface Dice = 1 and HD95 = 0 when both masks are empty; when only "
             "one is, Dice = IoU = surface Dice = 0 and HD95 is undefined (left out of its "
             "means; the n column counts the images where it is defined).",
             "es_dice_fairmedfm = mean Dice / (1 + std of group mean Dice) (FairMedFM); "
             "es_dice_fairseg = Dice / (1 + sum_g |Dice_g - Dice|) (FairSeg, ICLR 2024)."]
    n_undef = int(np.isnan(values["hd95"]).sum())
    if n_undef:
        notes.append(f"HD95 is undefined for {n_undef} image(s) with exactly one empty mask.")
    return run_grouped(
        kind="fairfoundry.segmentation", title="Segmentation fairness", values=values,
        frame=frame, id_col=id_col, sensitive=list(sensitive),
        intersect=[list(g) for g in intersect], bins=bins, cluster=cluster,
        reference_group=reference_group, n_bootstrap=n_bootstrap,
        n_permutations=n_permutations, confidence=confidence, seed=seed, label=pcol,
        config={"pred": pred, "truth": truth, "tolerance": float(tolerance), "id_col": id_col,
                "base_dir": str(base)},
        info=info, notes=notes, directions=SEG_METRICS, scores=ES_SCORES,
        score_extremes={k: "low" for k in ES_SCORES}, headline_metrics=("dice",),
        min_events=10)
