"""``fairfoundry evaluate-reports``: hallucination in generated radiology reports, by group."""

from __future__ import annotations

from pathlib import Path

import typer

from .._errors import FairfoundryError
from ._app import app
from ._common import parse_key_values

_EPILOG = (
    "Examples:\n\n"
    "  fairfoundry evaluate-reports reports.csv --generated generated --reference reference "
    "--sensitive sex --out rep\n\n"
    "  fairfoundry evaluate-reports reports.csv --generated gen --reference ref --sensitive sex,age "
    "--bins age=60 --intersect sex,age --cluster patient_id --bootstrap 1000 --permutations 1000 "
    "--out rep\n\n"
    "Outputs: OUT/evaluation.csv (label, attribute, group, metric, estimate, ci_low, ci_high, n, "
    "reason), OUT/summary.json (gaps, ratios, p-values, headlines, config, versions), "
    "OUT/per_sample.csv (each report's values and labels), OUT/report.html."
)


def split_multi(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated option values as one list."""
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def common_groups(sensitive, intersect, bins, reference_group) -> dict:
    """The attribute options shared by evaluate-reports and evaluate-seg, parsed."""
    from ..data import parse_bins

    return {"sensitive": split_multi(sensitive),
            "intersect": [split_multi([i]) for i in intersect or []],
            "bins": parse_bins(bins) if bins else {},
            "reference_group": parse_key_values(reference_group, option="--reference-group")}


@app.command("evaluate-reports", epilog=_EPILOG)
def evaluate_reports_command(
    input: Path = typer.Argument(..., metavar="INPUT", help="CSV, TSV or Parquet, one row per "
                                 "generated report, e.g. reports.csv."),
    generated: str = typer.Option(..., "--generated", help="Column of the generated report "
                                  "text, e.g. --generated generated."),
    reference: str = typer.Option(..., "--reference", help="Column of the reference report text "
                                  "(or, with --reference-labels, the prefix of one label column "
                                  "per finding), e.g. --reference reference."),
    reference_labels: bool = typer.Option(
        False, "--reference-labels", help="--reference is a prefix of label columns (1/0/-1/"
        "blank), e.g. --reference ref_ --reference-labels reads 'ref_Pleural Effusion', ..."),
    sensitive: list[str] | None = typer.Option(
        None, "--sensitive", "-a", help="Protected attribute column; repeat or comma-separate, "
        "e.g. --sensitive sex --sensitive age."),
    intersect: list[str] | None = typer.Option(
        None, "--intersect", help="Also evaluate an intersection, e.g. --intersect sex,age."),
    bins: list[str] | None = typer.Option(
        None, "--bins", help="Left-closed bins of a numeric attribute, e.g. --bins age=40,60,80."),
    cluster: str | None = typer.Option(
        None, "--cluster", help="Patient id column: resample whole patients, e.g. --cluster "
        "patient_id."),
    id_col: str | None = typer.Option(None, "--id", help="Sample id column, e.g. --id study_id."),
    bootstrap: int = typer.Option(0, "--bootstrap", "-b", min=0, help="Bootstrap replicates "
                                  "for CIs, e.g. --bootstrap 1000."),
    permutations: int = typer.Option(0, "--permutations", min=0, help="Permutations for "
                                     "p-values of the gaps, e.g. --permutations 1000."),
    confidence: float = typer.Option(0.95, "--confidence", help="CI level, e.g. --confidence "
                                     "0.9."),
    reference_group: list[str] | None = typer.Option(
        None, "--reference-group", help="Reference group of an attribute for *_vs_reference, "
        "e.g. --reference-group sex=male."),
    severity: list[str] | None = typer.Option(
        None, "--severity", help="Severity weight of a finding, e.g. --severity "
        "'Pneumothorax=5' (repeatable; defaults in docs/hallucination.md)."),
    findings: list[str] | None = typer.Option(
        None, "--finding", help="Score only these findings, e.g. --finding 'Pleural Effusion' "
        "(repeatable; default all 13)."),
    min_events: int = typer.Option(10, "--min-events", min=0, help="Fewest events and "
                                   "non-events per group for a headline, e.g. --min-events 20."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and permutations."),
    out: Path = typer.Option(Path("fairfoundry-reports"), "--out", "-o", help="Output "
                             "directory, e.g. --out rep."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs already in "
                                   "--out."),
) -> None:
    """Hallucinated, omitted and contradicted findings of generated reports, by group, with CIs.

    Labels both report columns with fairfoundry's offline rule-based CheXpert-style labeler (14 observations, negation and uncertainty), scores each report against its reference, and writes per-group rates with bootstrap CIs (clustered by patient), gaps, permutation p-values and an HTML report.
    """
    from .._io import prepare_out_dir
    from ..hallucination import OUTPUT_FILES, evaluate_reports

    if not 0 < confidence < 1:
        raise FairfoundryError(f"--confidence must be in (0, 1), got {confidence}")
    groups = common_groups(sensitive, intersect, bins, reference_group)
    sev = {}
    for k, v in parse_key_values(severity, option="--severity").items():
        try:
            sev[k] = float(v)
        except ValueError:
            raise FairfoundryError(f"--severity {k}={v}: the weight must be a number") from None
    prepare_out_dir(out, overwrite=overwrite, outputs=list(OUTPUT_FILES))
    kw = {"findings": findings} if findings else {}
    ev = evaluate_reports(input, generated=generated, reference=reference,
                          reference_labels=reference_labels, cluster=cluster, id_col=id_col,
                          severity=sev, n_bootstrap=bootstrap, n_permutations=permutations,
                          confidence=confidence, seed=seed, min_events=min_events, **groups,
                          **kw)
    ev.save(out, overwrite=overwrite)
    rate = ev.get("hallucination").query("group == 'overall'")["estimate"].iloc[0]
    typer.echo(f"evaluated {len(ev.per_sample):,} reports; {rate:.1%} hallucinate at least one "
               "finding")
    for h in ev.evidence.get("headlines", [])[:5]:
        typer.echo(f"  {h}")
    typer.echo(f"report: {(out / 'report.html').resolve()}")
