"""``fairfoundry bench``: benchmark grids (local or Ray) and their DuckDB results store."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import ON_DEMAND, app
from ._common import rich_progress

bench_app = typer.Typer(help="Benchmark grids: encoders x datasets x adaptations x mitigations x label "
                             "fractions x seeds, run locally or on Ray, results in one DuckDB store.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("run")
def bench_run_command(
    grid: Path = typer.Argument(..., help="Grid YAML (datasets, encoders, adaptations, mitigations, "
                                           "label_fractions, seeds, fit, resources)."),
    out: Path = typer.Option(..., "--out", "-o", help="Grid directory (cells/, results.duckdb, summary.json)."),
    executor: str = typer.Option("local", "--executor", help="local (one cell after the other) or ray."),
    ray_address: str | None = typer.Option(None, "--ray-address",
                                           help="Address of a running Ray cluster (default: start a local one)."),
    num_cpus: int | None = typer.Option(None, "--num-cpus", help="CPUs of the local Ray cluster (default: all)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the grid in --out: finished cells are skipped."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete what --out holds and start over."),
) -> None:
    """Run every cell of a grid (each one `fairfoundry fit` run) and ingest the results.

    Example: fairfoundry bench run grid.yaml --out runs/grid --executor ray
    """
    from ..bench import load_grid, run_grid

    spec = load_grid(grid)
    with rich_progress("grid cells", total=spec.n_cells) as advance:  # the count reads no input file
        summary = run_grid(spec, out, executor=executor, resume=resume, overwrite=overwrite,
                           ray_address=ray_address, num_cpus=num_cpus, progress=advance)
    typer.echo(f"wrote {out}: {summary['cells']} cells, {summary['done']} run, {summary['skipped']} already "
               f"finished, {len(summary['failed'])} failed")
    t = summary["timing"]
    if t["executor"] == "ray":
        typer.echo(f"  ray: cluster ready in {t['startup_s']:.1f} s, cells {t['cells_s']:.1f} s on {t['workers']} "
                   "worker process(es)")
    for f in summary["failed"][:10]:
        typer.echo(f"  failed {f['cell_id']} ({f['dataset']}, {f['encoder']}, {f['adaptation']}, "
                   f"{f['mitigation']}, fraction {f['label_fraction']}, seed {f['seed']}): {f['error']}", err=True)
    typer.echo(f"  results: fairfoundry bench results {out}")
    if summary["failed"]:
        raise typer.Exit(1)


@bench_app.command("results")
def bench_results_command(
    grid_dir: Path = typer.Argument(..., help="A grid directory written by `fairfoundry bench run`."),
    metric: str = typer.Option("auc", "--metric", help="Metric of the leaderboard (per-group metric or summary)."),
    attribute: str = typer.Option("overall", "--sensitive", "-a",
                                  help="Attribute of the metric: overall, or a sensitive attribute (sex, "
                                       "age, sex&age, ...)."),
    group: str | None = typer.Option("overall", "--group",
                                     help="Group of a per-group metric (overall for the whole test set)."),
    summary: bool = typer.Option(False, "--summary",
                                 help="The metric is a summary (e.g. auc_gap, auc_worst_group) of --sensitive."),
    sql: str | None = typer.Option(None, "--sql", help="Run a SQL query on the store (tables: cells, results)."),
    export: Path | None = typer.Option(None, "--export",
                                       help="Write the table shown (or every result row) to .csv or .parquet."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --export file."),
) -> None:
    """Print a leaderboard (mean over seeds with CIs, paired differences to ERM) or a SQL query's result.

    Example: fairfoundry bench results runs/grid --metric auc_gap --sensitive sex --summary
    """
    from .._errors import FairfoundryError
    from .._io import write_table_atomic
    from ..bench import ResultsStore, leaderboard, paired_differences

    with ResultsStore(grid_dir / "results.duckdb", read_only=True) as store:
        if sql:
            table = store.query(sql)
        else:
            results = store.results()
            kind = "summary" if summary else "group"
            grp = None if summary else group
            table = leaderboard(results, metric=metric, attribute=attribute, group=grp, kind=kind)
            diffs = paired_differences(results, metric=metric, attribute=attribute, group=grp, kind=kind)
            cells = store.cells()
    if not sql and table.empty:
        raise FairfoundryError(f"no results for metric {metric!r} of --sensitive {attribute!r} in {grid_dir}",
                               hint="see the metrics with --sql \"SELECT DISTINCT metric, kind FROM results\"")
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 30, "display.max_rows", 200):
        typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        if not sql:
            failed = int((cells["status"] == "failed").sum())
            typer.echo(f"\n{len(cells)} cells, {failed} failed")
            if len(diffs):
                typer.echo("\npaired difference to ERM over seeds (95% t-interval):")
                typer.echo(diffs.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if export is not None:
        if export.exists() and not overwrite:
            raise FairfoundryError(f"{export} exists", hint="pass --overwrite to replace it")
        write_table_atomic(export, table, report=True)
        typer.echo(f"wrote {export}")


def _study_command(name: str):
    def command(
        out: Path = typer.Option(..., "--out", "-o", help="Output directory (inputs/, grid/, tables/, report.html)."),
        manifest: Path | None = typer.Option(
            None, "--manifest", "-m", help="Manifest with images, the label and attributes (cross-site: HAM10000 "
                                           "with its 'dataset' column; default elsewhere: the bundled NIH X-rays)."),
        label: str | None = typer.Option(None, "--label", "-l", help="0/1 label column of --manifest."),
        sensitive: list[str] | None = typer.Option(None, "--sensitive", "-a", help="Attributes (default: sex, age)."),
        encoder: list[str] | None = typer.Option(
            None, "--encoder", help="Zoo encoder(s) (default fairfoundry-tiny; NAME@random for a random-init baseline)."),
        encoder_weights: str | None = typer.Option(None, "--encoder-weights", help="Weights of the first --encoder."),
        seeds: int = typer.Option(5, "--seeds", help="Number of seeds (0 .. N-1); intervals are over seeds."),
        bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamples per cell."),
        epochs: int = typer.Option(30, "--epochs", help="Epochs of heads on embeddings."),
        fine_tune_epochs: int = typer.Option(3, "--fine-tune-epochs", help="Epochs of every adaptation (peft-vs-full)."),
        lora_rank: list[int] | None = typer.Option(None, "--lora-rank", help="LoRA ranks (peft-vs-full; default 4, 16)."),
        partial_blocks: int = typer.Option(
            2, "--partial-blocks", help="Partial fine-tuning trains the encoder's last N blocks (peft-vs-full)."),
        fraction: list[float] | None = typer.Option(
            None, "--fraction", help="Label fractions (label-scarcity; default 0.01 0.05 0.1 0.25 0.5 1)."),
        device: str = typer.Option("cpu", "--device", help="cpu, cuda, ..."),
        executor: str = typer.Option("local", "--executor", help="local or ray."),
        num_cpus: int | None = typer.Option(None, "--num-cpus", help="CPUs of the local Ray cluster."),
        resume: bool = typer.Option(False, "--resume", help="Continue the study in --out (finished cells are kept)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Delete what --out holds and start over."),
    ) -> None:
        from ..bench import run_study
        from ..bench._studies import StudyOptions

        defaults = StudyOptions()
        opts = StudyOptions(
            manifest=str(manifest) if manifest else None, label=label,
            sensitive=tuple(sensitive or defaults.sensitive), encoders=tuple(encoder or defaults.encoders),
            encoder_weights=encoder_weights, seeds=tuple(range(seeds)), bootstrap=bootstrap, epochs=epochs,
            fine_tune_epochs=fine_tune_epochs, lora_ranks=tuple(lora_rank or defaults.lora_ranks),
            partial_blocks=partial_blocks,
            fractions=tuple(fraction or defaults.fractions), device=device, executor=executor, num_cpus=num_cpus)
        with rich_progress(f"{name} cells", total=None) as advance:
            result = run_study(name, out, options=opts, resume=resume, overwrite=overwrite, progress=advance)
        typer.echo(f"wrote {result}")
        typer.echo(f"  report: {Path(result) / 'report.html'}")

    return command


_REGISTERED = {"studies": False}


def _register_studies(args: list[str] | None = None) -> None:
    """Add one ``experiment <study>`` command per registered study, when the command line is an
    ``experiment`` one (or unknown): importing the bench package costs a 1M-row ``audit-data``
    about 0.4 s otherwise."""
    if _REGISTERED["studies"] or (args is not None and "experiment" not in args):
        return
    from ..bench._studies import STUDIES
    from ._adapt import experiment_app

    for name, study in STUDIES.items():
        experiment_app.command(name, help=f"{study.question} {study.doc} Example: fairfoundry experiment {name} "
                                          f"--out runs/{name}")(_study_command(name))
    _REGISTERED["studies"] = True


ON_DEMAND.append(_register_studies)
