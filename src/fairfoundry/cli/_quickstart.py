"""``fairfoundry quickstart``: the whole offline pipeline on the bundled real NIH data.

It runs, in order, the same commands a user would type (and prints them):

1. ``fairfoundry evaluate --example nih-chexnet`` -- fairness of real CheXNet predictions on
   22,433 NIH ChestX-ray14 test images (thresholds on held-out patients, CIs clustered by patient);
2. ``fairfoundry fit --encoder fairfoundry-tiny --manifest <300 bundled NIH X-rays>`` -- embed the
   images with the bundled encoder, train a linear probe for "No Finding" with and without
   mitigation, select on validation, and evaluate on test with bootstrap CIs, a model card and an
   emissions estimate.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from .._errors import FairfoundryError
from ._app import app


def _steps(out: Path, *, bootstrap: int, seed: int, overwrite: bool) -> list[tuple[str, list[str]]]:
    from ..datasets import nih_images

    ow = ["--overwrite"] if overwrite else []
    return [
        ("Fairness of real CheXNet predictions (22,433 NIH test images, 14 findings)",
         ["evaluate", "--example", "nih-chexnet", "--bootstrap", str(bootstrap), "--seed", str(seed),
          "--out", str(out / "evaluate"), *ow]),
        ("Embed 300 real NIH X-rays with the bundled fairfoundry-tiny encoder, fit a 'No Finding' "
         "probe with and without mitigation (selected on validation), evaluate on test",
         ["fit", "--encoder", "fairfoundry-tiny", "--manifest", str(nih_images()),
          "--label", "No_Finding", "--sensitive", "sex", "--sensitive", "age", "--bins", "age=40,60",
          "--method", "erm", "--method", "reweigh", "--method", "groupdro",
          "--select", "worst_group_auc", "--seed", str(seed), "--bootstrap", str(bootstrap),
          "--out", str(out / "fit"), *ow]),
    ]


@app.command("quickstart")
def quickstart_command(
    out: Path = typer.Option(Path("quickstart-out"), "--out", "-o",
                             help="Folder for both runs (OUT/evaluate and OUT/fit)."),
    bootstrap: int = typer.Option(200, "--bootstrap",
                                  help="Bootstrap replicates for the confidence intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and of the training."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace the outputs of an earlier quickstart."),
) -> None:
    """Run the offline pipeline on bundled real NIH data: evaluate -> embed -> fit -> report.

    Example: fairfoundry quickstart --out quickstart-out --overwrite
    """
    from ._app import main

    steps = _steps(out, bootstrap=bootstrap, seed=seed, overwrite=overwrite)
    for i, (title, argv) in enumerate(steps, 1):
        typer.echo(f"\n[{i}/{len(steps)}] {title}\n$ fairfoundry {shlex.join(argv)}", err=True)
        code = main(argv)
        if code != 0:
            raise FairfoundryError(f"quickstart step {i} (fairfoundry {argv[0]}) failed with exit code {code}")
    typer.echo("\nquickstart finished. Open these reports in a browser:")
    typer.echo(f"  {out / 'evaluate' / 'report.html'}   fairness of CheXNet on NIH ChestX-ray14")
    typer.echo(f"  {out / 'fit' / 'comparison.html'}   probe on fairfoundry-tiny: ERM vs mitigations")
    for run in sorted((out / "fit").glob("*-seed*/model_card.md")):
        typer.echo(f"  {run}")
