"""``fairfoundry evaluate``: fairness of per-sample predictions, with CIs and an HTML report."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from .._errors import FairfoundryError
from ._app import app
from ._common import parse_key_values, rich_progress

log = logging.getLogger(__name__)

_EPILOG = (
    "Examples:\n\n"
    "  fairfoundry evaluate --example nih-chexnet --out nih-eval\n\n"
    "  fairfoundry evaluate preds.csv --label y --score p --sensitive sex --sensitive age "
    "--bins age=40,60,80 --bootstrap 1000 --cluster patient_id --out eval\n\n"
    "  fairfoundry evaluate preds.parquet --label Effusion --label Edema --sensitive sex,race "
    "--intersect sex,race --threshold sens=0.9 --reference sex=male --min-group-size 20 --out eval\n\n"
    "Outputs: OUT/evaluation.csv (label, attribute, group, metric, estimate, ci_low, ci_high, n, "
    "reason), OUT/summary.json (gaps, ratios, p-values, thresholds and the split they were chosen "
    "on, config, versions, input fingerprint), OUT/report.html (self-contained, opens offline)."
)


def _split_multi(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


@app.command("evaluate", epilog=_EPILOG)
def evaluate_command(
    input: Path | None = typer.Argument(
        None, metavar="INPUT",
        help="Per-sample predictions: CSV, TSV or Parquet with label, score and attribute columns. "
             "Omit with --example. E.g. fairfoundry evaluate preds.csv --label y --sensitive "
             "sex.", show_default=False),
    label: list[str] | None = typer.Option(
        None, "--label", "-l",
        help="Binary (0/1) ground-truth column; repeat (or comma-separate) for multi-label, e.g. "
             "--label Effusion --label Edema. Default: a column named y_true, label, target or y."),
    score: list[str] | None = typer.Option(
        None, "--score", "-s",
        help="Score (probability) column, one per --label in the same order, e.g. --score "
             "prob_Effusion. Default: auto-detected (prob_L, p_L, score_L, pred_L, L_prob, L_score; "
             "with one label also y_score, score, prob, pred)."),
    sensitive: list[str] | None = typer.Option(
        None, "--sensitive", "-a",
        help="Protected attribute column; repeat or comma-separate, e.g. --sensitive sex "
             "--sensitive age. Every value is its own group; missing values are 'unknown'."),
    intersect: list[str] | None = typer.Option(
        None, "--intersect",
        help="Also evaluate the intersection of several columns, e.g. --intersect sex,age "
             "(repeatable)."),
    bins: list[str] | None = typer.Option(
        None, "--bins",
        help="Left-closed bins for a numeric attribute, e.g. --bins age=40,60,80 gives <40, "
             "40-59, 60-79, 80+ (repeatable)."),
    split_col: str = typer.Option(
        "split", "--split-col",
        help="Column naming each row's split, used when present, e.g. --split-col fold. "
             "'none' ignores any split column."),
    report_split: str = typer.Option(
        "test", "--report-split", help="Split whose rows are reported, e.g. --report-split test."),
    threshold: str = typer.Option(
        "youden", "--threshold", "-t",
        help="Decision threshold (prediction = score >= threshold): a number (--threshold 0.5) "
             "or a rule chosen on --threshold-split: youden, max_f1, sens=0.9 (highest threshold "
             "with sensitivity >= 0.9) or spec=0.95. One threshold per label."),
    threshold_split: str = typer.Option(
        "val", "--threshold-split",
        help="Split on which a rule-based threshold is chosen, e.g. --threshold-split val."),
    allow_threshold_on_report_split: bool = typer.Option(
        False, "--allow-threshold-on-report-split",
        help="Allow choosing the threshold on the reported rows (optimistic; flagged in "
             "summary.json and the report). Needed for a rule-based threshold without a split "
             "column, e.g. --threshold youden --allow-threshold-on-report-split."),
    bootstrap: int | None = typer.Option(
        None, "--bootstrap", "-b", min=0,
        help="Bootstrap replicates for confidence intervals, e.g. --bootstrap 1000 (0: point "
             "estimates only; default 0, or the example's own). Stratified by group; every metric "
             "uses the same replicates.", show_default=False),
    ci_method: str = typer.Option(
        "percentile", "--ci-method", help="Bootstrap CI method: percentile or bca, e.g. "
                                          "--ci-method bca."),
    gap_ci: str = typer.Option(
        "pairwise", "--gap-ci",
        help="CI of gaps (max - min): pairwise = bounded by simultaneous (Bonferroni) intervals "
             "of all pairwise group differences, reaches 0 when no two groups differ; "
             "percentile = plain interval of the max - min replicates (never reaches 0), e.g. "
             "--gap-ci percentile."),
    cluster: str | None = typer.Option(
        None, "--cluster",
        help="Resample whole clusters (patients) in the bootstrap, e.g. --cluster patient_id."),
    permutations: int = typer.Option(
        0, "--permutations", min=0,
        help="Permutation-test replicates for p-values of the gaps, e.g. --permutations 1000."),
    reference: list[str] | None = typer.Option(
        None, "--reference",
        help="Reference group of an attribute for the signed <metric>_vs_reference summaries, "
             "e.g. --reference sex=male (repeatable)."),
    min_group_size: int = typer.Option(
        0, "--min-group-size", min=0,
        help="Suppress cells of groups with fewer than K rows in every output (estimates and CIs "
             "blanked, groups left out of the summaries), e.g. --min-group-size 20."),
    min_events: int = typer.Option(
        10, "--min-events", min=0,
        help="Fewest events of a metric's own denominator (positives for TPR, negatives for FPR, "
             "predicted positives for PPV) for a group to be judged in the findings; groups "
             "below are listed as 'too few to judge', e.g. --min-events 20."),
    headline_permutations: int = typer.Option(
        500, "--headline-permutations", min=0,
        help="Permutations (of whole patients with --cluster) of the max-T adjustment that "
             "decides which differences are stated as findings, e.g. --headline-permutations "
             "1000 (0: Holm on normal p-values)."),
    headline_metric: list[str] | None = typer.Option(
        None, "--headline-metric",
        help="Pre-specify the headline family's metrics (repeatable; tpr, fpr, ppv, "
             "underdiagnosis_rate): fewer comparisons, more power for them; fix it before "
             "looking at results, e.g. --headline-metric tpr."),
    headline_label: list[str] | None = typer.Option(
        None, "--headline-label",
        help="Pre-specify the headline family's labels (repeatable), e.g. --headline-label "
             "Effusion."),
    degenerate_ci: str = typer.Option(
        "wilson", "--degenerate-ci",
        help="Interval of a proportion whose bootstrap interval collapses (a rate of 0 or 1): "
             "wilson, clopper_pearson or none, e.g. --degenerate-ci clopper_pearson."),
    val_fraction: float | None = typer.Option(
        None, "--val-fraction",
        help="Make a seeded val split (thresholds) of this fraction of the --split-by units of "
             "the rows that would be reported, reporting on the rest, e.g. --val-fraction 0.3 "
             "--split-by patient_id.", show_default=False),
    split_by: str | None = typer.Option(
        None, "--split-by",
        help="Column kept together by --val-fraction (whole patients), e.g. --split-by "
             "patient_id.", show_default=False),
    id_col: str | None = typer.Option(
        None, "--id",
        help="Sample id column, checked for duplicates, e.g. --id image_id. Default: a column "
             "named sample_id, image_id, 'Image Index', ... when present."),
    ece_bins: int = typer.Option(
        10, "--ece-bins", min=1, help="Equal-width bins of the expected calibration error, e.g. "
                                      "--ece-bins 15."),
    ece_strategy: str = typer.Option(
        "uniform", "--ece-strategy", help="ECE bins: uniform (equal width) or quantile (equal "
                                          "mass), e.g. --ece-strategy quantile."),
    jobs: int = typer.Option(
        1, "--jobs", "-j", min=1, help="Threads for the bootstrap (same results), e.g. --jobs 2."),
    scores_are_logits: bool = typer.Option(
        False, "--scores-are-logits",
        help="Scores are logits: map them through the sigmoid first (thresholds are then on the "
             "probability scale), e.g. --score logit_y --scores-are-logits."),
    no_finding_score: str | None = typer.Option(
        None, "--no-finding-score",
        help="Multi-label: a dedicated 'No Finding' score column for the underdiagnosis rate, "
             "e.g. --no-finding-score prob_No_Finding. Default: no finding = every label's score "
             "below its threshold."),
    no_finding_rule: str = typer.Option(
        "all_below", "--no-finding-rule",
        help="Multi-label without --no-finding-score: how 'no finding' is predicted for the "
             "underdiagnosis rate. all_below = every label's score below its threshold; "
             "product = the score prod(1 - p_k) over the labels, with its own threshold chosen "
             "on --threshold-split by the --threshold rule, e.g. --no-finding-rule product."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and permutations, e.g. "
                                               "--seed 1."),
    out: Path = typer.Option(
        Path("fairfoundry-evaluation"), "--out", "-o",
        help="Output directory for evaluation.csv, summary.json, report.html and figures/ (PNG "
             "and SVG), e.g. --out eval."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace evaluation.csv / summary.json / report.html already "
                                   "in --out, e.g. --out eval --overwrite."),
    tables: list[str] | None = typer.Option(
        None, "--tables",
        help="Also write the per-group and gaps tables for a paper: md (tables.md, Markdown) "
             "and/or tex (tables.tex, LaTeX booktabs), e.g. --tables md --tables tex."),
    example: str | None = typer.Option(
        None, "--example",
        help="Evaluate bundled real data instead of INPUT: nih-chexnet (CheXNet on NIH "
             "ChestX-ray14, 14 labels, by sex, age 20/40/60/80 and view, Youden thresholds on val, "
             "reported on test, clustered by patient). Other options override its settings, e.g. "
             "--example nih-chexnet --bootstrap 200."),
) -> None:
    """Evaluate how differently a model treats each group, with bootstrap confidence intervals.

    Reads per-sample predictions, chooses thresholds on a validation split (never on the reported split unless asked), computes per-group metrics (AUC, TPR, FPR, PPV, ECE, ...), gaps, ratios and fairness differences with CIs, and writes a CSV, a JSON summary and a self-contained HTML report.
    """
    from .._io import prepare_out_dir
    from ..evaluation import OUTPUT_FILES, TABLE_FILES, example_options, prepare_evaluation

    kwargs: dict = {}
    if example is not None:
        kwargs = example_options(example)
        if input is not None:
            raise FairfoundryError("give either INPUT or --example, not both")
    elif input is None:
        raise FairfoundryError("no INPUT given",
                               hint="fairfoundry evaluate preds.csv --label y --sensitive sex, or "
                                    "--example nih-chexnet")
    else:
        kwargs = {"data": input}

    if label:
        kwargs["label"] = _split_multi(label)
        kwargs.pop("score", None)  # the example's scores belong to its own labels
    if score:
        kwargs["score"] = _split_multi(score)
    if sensitive:
        kwargs["sensitive"] = _split_multi(sensitive)
    if intersect:
        kwargs["intersect"] = [_split_multi([i]) for i in intersect]
    if bins:
        from ..data import parse_bins

        kwargs["bins"] = {**kwargs.get("bins", {}), **parse_bins(bins)}
    if cluster:
        kwargs["cluster"] = cluster
    if id_col:
        kwargs["id_col"] = id_col
    if reference:
        kwargs["reference"] = parse_key_values(reference, option="--reference")
    if "label" not in kwargs:
        kwargs["label"] = _default_label(input)
    if "sensitive" not in kwargs:
        raise FairfoundryError("no --sensitive attribute given",
                               hint="for example --sensitive sex --sensitive age")
    if split_col.lower() != "split" or "split_col" not in kwargs:
        kwargs["split_col"] = None if split_col.lower() in ("none", "") else split_col
    if bootstrap is not None or "bootstrap" not in kwargs:
        kwargs["bootstrap"] = bootstrap or 0
    if example is None or threshold != "youden":
        kwargs["threshold"] = threshold
    kwargs.update(report_split=report_split, threshold_split=threshold_split,
                  allow_threshold_on_report_split=allow_threshold_on_report_split,
                  ci_method=ci_method.lower(), gap_ci=gap_ci.lower(), permutations=permutations,
                  min_group_size=min_group_size, ece_bins=ece_bins, min_events=min_events,
                  headline_permutations=headline_permutations,
                  headline_metrics=headline_metric or None, headline_labels=headline_label or None,
                  degenerate_ci=degenerate_ci.lower().replace("-", "_"),
                  val_fraction=val_fraction, split_by=split_by,
                  ece_strategy=ece_strategy.lower(), n_jobs=jobs,
                  scores_are_logits=scores_are_logits, no_finding_score=no_finding_score,
                  no_finding_rule=no_finding_rule, seed=seed)

    table_formats = [t.strip().lower().lstrip(".") for t in _split_multi(tables)]
    table_formats = ["md" if t == "markdown" else "tex" if t == "latex" else t
                     for t in table_formats]
    bad = [t for t in table_formats if t not in TABLE_FILES]
    if bad:
        raise FairfoundryError(f"--tables {bad[0]!r}: unknown table format",
                               hint="choose md (Markdown) or tex (LaTeX)")
    prepare_out_dir(out, overwrite=overwrite,
                    outputs=[*OUTPUT_FILES, *(TABLE_FILES[t] for t in table_formats)])
    plan = prepare_evaluation(**kwargs)
    total = plan.total_replicates
    if total:
        with rich_progress("bootstrap", total) as advance:
            ev = plan.run(progress=advance)
    else:
        ev = plan.run()
    ev.save(out, overwrite=overwrite, tables=tuple(dict.fromkeys(table_formats)))

    typer.echo(f"evaluated {len(ev.labels)} label(s) x {len(ev.attributes)} attribute(s) on "
               f"{ev.info['n_report_rows']:,} rows"
               + (f" of split {ev.info['report_split']!r}" if ev.info.get("report_split") else ""))
    for w in ev.warnings[:5]:
        typer.echo(f"warning: {w}", err=True)
    if len(ev.warnings) > 5:
        typer.echo(f"warning: ... and {len(ev.warnings) - 5} more (see summary.json)", err=True)
    typer.echo(f"report: {(out / 'report.html').resolve()}")
    typer.echo(f"tables: {(out / 'evaluation.csv').resolve()}, {(out / 'summary.json').resolve()}"
               + "".join(f", {(out / TABLE_FILES[t]).resolve()}" for t in dict.fromkeys(table_formats)))
    typer.echo(f"figures (PNG and SVG): {(out / 'figures').resolve()}")


def _default_label(input: Path | None) -> list[str]:
    """``y_true`` / ``label`` / ``target`` / ``y`` when the file has exactly one of them."""
    from .._io import read_table

    if input is None:
        raise FairfoundryError("no --label given", hint="for example --label Effusion")
    cols = list(read_table(input, what="input").columns)
    lowered = {str(c).lower(): str(c) for c in cols}
    for cand in ("y_true", "label", "target", "y"):
        if cand in lowered:
            return [lowered[cand]]
    from .._errors import did_you_mean

    raise FairfoundryError("no --label given and no column named y_true, label, target or y",
                           hint="pass --label COLUMN; " + did_you_mean("label", cols,
                                                                        what="columns"))
