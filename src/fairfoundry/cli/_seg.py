"""``fairfoundry evaluate-seg``: segmentation fairness (Dice, IoU, HD95, surface Dice) by group."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import typer

from .._errors import FairfoundryError
from ._app import app
from ._common import rich_progress
from ._reports import common_groups

log = logging.getLogger(__name__)


def _with_log_line(advance, total: int):
    """Also log a plain progress line at most every 30 s when stderr is not a terminal."""
    state = {"done": 0, "last": time.monotonic(), "start": time.monotonic()}

    def step(k: int = 1) -> None:
        advance(k)
        state["done"] += k
        now = time.monotonic()
        if not sys.stderr.isatty() and now - state["last"] >= 30:
            rate = state["done"] / max(now - state["start"], 1e-9)
            eta = (total - state["done"]) / max(rate, 1e-9)
            log.warning("masks: %d/%d images, %.1f/s, about %.0f s left", state["done"], total,
                        rate, eta)
            state["last"] = now

    return step


_EPILOG = (
    "Examples:\n\n"
    "  fairfoundry evaluate-seg masks.csv --pred pred --truth truth --sensitive sex --out seg\n\n"
    "  fairfoundry evaluate-seg masks.csv --pred pred_path --truth gt_path --sensitive sex,age "
    "--bins age=60 --cluster patient_id --bootstrap 1000 --tolerance 2 --out seg\n\n"
    "Mask paths (PNG, NIfTI, npz, npy; binary 0/1 or 0/255) are relative to the table's folder. "
    "Outputs: OUT/evaluation.csv, OUT/summary.json (gaps, es_dice_fairmedfm, es_dice_fairseg "
    "with CIs), OUT/per_sample.csv (each image's scores), OUT/report.html."
)


@app.command("evaluate-seg", epilog=_EPILOG)
def evaluate_seg_command(
    input: Path = typer.Argument(..., metavar="INPUT", help="CSV, TSV or Parquet, one row per "
                                 "image with mask paths and attributes, e.g. masks.csv."),
    pred: str = typer.Option(..., "--pred", help="Column of predicted mask paths, e.g. --pred "
                             "pred."),
    truth: str = typer.Option(..., "--truth", help="Column of ground-truth mask paths, e.g. "
                              "--truth truth."),
    sensitive: list[str] | None = typer.Option(
        None, "--sensitive", "-a", help="Protected attribute column; repeat or comma-separate, "
        "e.g. --sensitive sex."),
    intersect: list[str] | None = typer.Option(
        None, "--intersect", help="Also evaluate an intersection, e.g. --intersect sex,age."),
    bins: list[str] | None = typer.Option(
        None, "--bins", help="Left-closed bins of a numeric attribute, e.g. --bins age=60."),
    cluster: str | None = typer.Option(
        None, "--cluster", help="Patient id column: resample whole patients, e.g. --cluster "
        "patient_id."),
    id_col: str | None = typer.Option(None, "--id", help="Sample id column, e.g. --id image_id."),
    base_dir: Path | None = typer.Option(None, "--base-dir", help="Folder relative mask paths "
                                         "start from (default: the table's folder)."),
    tolerance: float = typer.Option(1.0, "--tolerance", min=0.0, help="Surface Dice tolerance "
                                    "(mm with NIfTI spacing, else pixels), e.g. --tolerance 2."),
    bootstrap: int = typer.Option(0, "--bootstrap", "-b", min=0, help="Bootstrap replicates, "
                                  "e.g. --bootstrap 1000."),
    permutations: int = typer.Option(0, "--permutations", min=0, help="Permutations for "
                                     "p-values, e.g. --permutations 1000."),
    confidence: float = typer.Option(0.95, "--confidence", help="CI level, e.g. --confidence "
                                     "0.9."),
    reference_group: list[str] | None = typer.Option(
        None, "--reference-group", help="Reference group, e.g. --reference-group sex=male."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and permutations."),
    out: Path = typer.Option(Path("fairfoundry-segmentation"), "--out", "-o",
                             help="Output directory, e.g. --out seg."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs already in "
                                   "--out."),
) -> None:
    """Segmentation fairness: per-image Dice, IoU, HD95 and surface Dice, per group with CIs.

    Reads predicted and ground-truth masks aligned by sample id, scores each image, and writes per-group means with bootstrap CIs (clustered by patient), gaps, permutation p-values and both ES-Dice definitions (FairMedFM's and FairSeg's) with CIs.
    """
    from .._io import prepare_out_dir
    from ..hallucination import OUTPUT_FILES
    from ..segmentation import evaluate_segmentation

    if not 0 < confidence < 1:
        raise FairfoundryError(f"--confidence must be in (0, 1), got {confidence}")
    groups = common_groups(sensitive, intersect, bins, reference_group)
    prepare_out_dir(out, overwrite=overwrite, outputs=list(OUTPUT_FILES))
    from .._io import read_table

    total = len(read_table(input, what="input"))
    with rich_progress("masks", total) as advance:
        ev = evaluate_segmentation(input, pred=pred, truth=truth, cluster=cluster, id_col=id_col,
                                   base_dir=base_dir, tolerance=tolerance,
                                   n_bootstrap=bootstrap, n_permutations=permutations,
                                   confidence=confidence, seed=seed,
                                   progress=_with_log_line(advance, total), **groups)
    ev.save(out, overwrite=overwrite)
    s = ev.summary_table.drop_duplicates("metric").set_index("metric")["estimate"]
    d = ev.get("dice").query("group == 'overall'")["estimate"].iloc[0]
    typer.echo(f"evaluated {len(ev.per_sample):,} images; mean Dice {d:.3f}; ES-Dice "
               f"(FairMedFM) {s['es_dice_fairmedfm']:.3f}, (FairSeg) {s['es_dice_fairseg']:.3f} "
               f"for {ev.config['sensitive'][0]}")
    typer.echo(f"report: {(out / 'report.html').resolve()}")
