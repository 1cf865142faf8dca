"""``fairfoundry datasets list/show`` and ``fairfoundry audit-data``."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from .._errors import FairfoundryError
from ._app import app
from ._common import rich_progress

log = logging.getLogger(__name__)

datasets_app = typer.Typer(help="Dataset specs shipped with fairfoundry: list them, show one.",
                           no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

AUDIT_OUTPUTS = ["audit.json", "audit.html", "datasheet.md", "manifest.csv", "groups.csv",
                 "problems.csv", "leakage.csv", "run.json"]


def _split_multi(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


@datasets_app.command("list")
def datasets_list(
    coverage: bool = typer.Option(False, "--coverage",
                                  help="Print the datasets x protected attributes coverage matrix."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the dataset specs (name, modality, licence, access, attributes recorded)."""
    import json

    from ..data import coverage_matrix, get_spec, list_specs

    if coverage:
        cov = coverage_matrix()
        if as_json:
            typer.echo(json.dumps(cov.reset_index().to_dict(orient="records"), indent=2))
        else:
            typer.echo(cov.to_string())
        return
    rows = []
    for name in list_specs():
        spec = get_spec(name)
        rows.append({"name": name, "modality": spec.modality, "access": spec.access,
                     "licence": spec.licence, "attributes": ", ".join(spec.attributes)})
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    width = max(len(r["name"]) for r in rows)

    def short(text: str, n: int = 40) -> str:
        return text if len(text) <= n else text[:n - 1].rstrip() + "…"

    typer.echo(f"{'name':<{width}}  {'access':<12}  {'modality':<40}  protected attributes")
    for r in rows:
        typer.echo(f"{r['name']:<{width}}  {r['access']:<12}  {short(r['modality']):<40}  "
                   f"{r['attributes'] or '-'}")
    typer.echo("\nfairfoundry datasets show NAME prints a spec (files, value maps, licence, sources); "
               "--coverage prints the coverage matrix.")


@datasets_app.command("show")
def datasets_show(
    name: str = typer.Argument(..., help="Dataset name, e.g. ham10000 (see `datasets list`)."),
) -> None:
    """Print one dataset spec as YAML: files, labels, attributes and value maps, split, licence."""
    import yaml

    from ..data import get_spec

    spec = get_spec(name)
    data = spec.model_dump(exclude_defaults=True)
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100).rstrip())


@datasets_app.command("build")
def datasets_build(
    name: str = typer.Argument(..., help="Dataset name (see `datasets list`) or a spec YAML path."),
    root: Path = typer.Option(..., "--root", help="Folder holding the dataset's files."),
    out: Path = typer.Option(..., "--out", "-o",
                             help="Manifest to write (.csv, .tsv or .parquet)."),
    bins: list[str] | None = typer.Option(
        None, "--bins", help="Age bins for age_group, e.g. --bins age=18,40,65."),
    check_files: bool = typer.Option(False, "--check-files",
                                     help="List image files that do not exist."),
    strict: bool = typer.Option(False, "--strict", help="Fail on the first missing image."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """Build the harmonised manifest of a dataset (paths relative to the manifest file)."""
    from .._io import write_sidecar, write_table_atomic
    from ..data import load_dataset, parse_bins, rebase_paths, write_manifest

    out = Path(out)
    if out.suffix.lower() not in (".csv", ".tsv", ".parquet"):
        raise FairfoundryError(f"--out {out} must end in .csv, .tsv or .parquet")
    if out.exists() and not overwrite:
        raise FairfoundryError(f"{out} already exists", hint="pass --overwrite to replace it")
    loaded = load_dataset(name, root, check_files=check_files, strict=strict,
                          bins=parse_bins(bins).get("age"))
    frame = rebase_paths(loaded.manifest, from_dir=root, to_dir=out.resolve().parent)
    problems_csv = out.with_name(out.stem + ".problems.csv")
    if len(loaded.problems):
        if problems_csv.exists() and not overwrite:
            raise FairfoundryError(f"{problems_csv} already exists",
                                   hint="pass --overwrite to replace it")
        write_table_atomic(problems_csv, loaded.problems, report=True)
    write_manifest(frame, out)
    write_sidecar(out.with_name(out.name + ".json"), kind="manifest",
                  config={"dataset": loaded.spec.name, "bins": bins or None},
                  seed=loaded.spec.split.seed, inputs={"root": str(Path(root).resolve())},
                  notes=loaded.notes, n_missing_files=int(len(loaded.problems)))
    typer.echo(f"wrote {out}: {len(frame):,} images, {frame['patient_id'].nunique():,} patients")
    for note in loaded.notes:
        typer.echo(f"note: {note}", err=True)
    if len(loaded.problems):
        typer.echo(f"warning: {len(loaded.problems)} file(s) missing or unreadable, listed in "
                   f"{problems_csv}, e.g. {loaded.problems['path'].head(3).tolist()}", err=True)


@datasets_app.command("scan")
def datasets_scan(
    root: Path = typer.Argument(..., help="Folder of images (PNG/JPEG/TIFF/BMP, DICOM, NIfTI)."),
    out: Path = typer.Option(..., "--out", "-o", help="Manifest to write (.csv/.tsv/.parquet)."),
    dicom: bool = typer.Option(False, "--dicom",
                               help="Read DICOM headers: patient id, sex, age, race, site, view."),
    label_from_folder: bool = typer.Option(
        False, "--label-from-folder", help="Label = name of each image's parent folder."),
    check: bool = typer.Option(False, "--check", help="Decode every image; list unreadable ones."),
    strict: bool = typer.Option(False, "--strict", help="Fail on the first unreadable file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """Build a manifest from a folder of images or DICOM files; unreadable files are listed in
    OUT.problems.csv (or fail with --strict)."""
    from .._io import write_table_atomic
    from ..data import rebase_paths, scan_dicom, scan_images, write_manifest

    out = Path(out)
    if out.suffix.lower() not in (".csv", ".tsv", ".parquet"):
        raise FairfoundryError(f"--out {out} must end in .csv, .tsv or .parquet")
    if out.exists() and not overwrite:
        raise FairfoundryError(f"{out} already exists", hint="pass --overwrite to replace it")
    with rich_progress("scanning", None) as advance:
        if dicom:
            frame, problems = scan_dicom(root, check=check, strict=strict, progress=advance)
        else:
            frame, problems = scan_images(root, check=check, strict=strict,
                                          label_from_folder=label_from_folder, progress=advance)
    if frame.empty:
        raise FairfoundryError(f"no readable file under {root}",
                               hint=f"{len(problems)} file(s) could not be read")
    frame = rebase_paths(frame, from_dir=root, to_dir=out.resolve().parent)
    write_manifest(frame, out)
    bad = out.with_name(out.stem + ".problems.csv")
    if len(problems):
        write_table_atomic(bad, problems, report=True)
    typer.echo(f"wrote {out}: {len(frame):,} files")
    if len(problems):
        typer.echo(f"warning: {len(problems)} file(s) could not be read, listed in {bad}",
                   err=True)


_AUDIT_EPILOG = (
    "Examples:\n\n"
    "  fairfoundry audit-data --dataset nih-chestxray14 --root ~/data/nih --out nih-audit\n\n"
    "  fairfoundry audit-data --manifest manifest.csv --sensitive sex,age,race "
    "--intersect sex,age --labels label --reference census.csv --min-group-size 20 --out audit\n\n"
    "Outputs: OUT/audit.json, OUT/audit.html (self-contained), OUT/datasheet.md (Datasheets for "
    "Datasets, pre-filled), OUT/groups.csv, OUT/manifest.csv (the harmonised manifest, with "
    "--dataset), OUT/problems.csv (unreadable files), OUT/leakage.csv (patients in several "
    "splits), OUT/run.json (config, versions, inputs)."
)


@app.command("audit-data", epilog=_AUDIT_EPILOG)
def audit_data_command(
    dataset: str | None = typer.Option(
        None, "--dataset", "-d",
        help="Dataset spec name (see `fairfoundry datasets list`) or a spec YAML path; needs --root."),
    root: Path | None = typer.Option(None, "--root", help="Folder holding the dataset's files."),
    manifest: Path | None = typer.Option(
        None, "--manifest", "-m", help="A harmonised manifest (CSV, TSV, Parquet or .xlsx) to audit."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    sensitive: list[str] | None = typer.Option(
        None, "--sensitive", "-a",
        help="Protected attributes to audit, e.g. --sensitive sex,age,race. Default: every "
             "protected attribute present."),
    attributes: list[str] | None = typer.Option(
        None, "--attributes", hidden=True, help="Old spelling of --sensitive."),
    intersect: list[str] | None = typer.Option(
        None, "--intersect",
        help="Intersections, e.g. --intersect sex,age (repeatable). Default: every pair of "
             "attributes; --intersect none for none."),
    labels: list[str] | None = typer.Option(
        None, "--labels", "-l",
        help="Label columns for prevalence by group, e.g. --labels Effusion,Edema. Default: "
             "the spec's labels, or a column named label."),
    reference: Path | None = typer.Option(
        None, "--reference",
        help="Reference population: CSV with attribute,group,share (or JSON/YAML "
             "{attribute: {group: share}})."),
    min_group_size: int = typer.Option(
        10, "--min-group-size",
        help="Groups smaller than this are flagged and their counts suppressed in outputs."),
    bins: list[str] | None = typer.Option(
        None, "--bins", help="Age bins, e.g. --bins age=18,40,65 (left-closed)."),
    duplicates: bool = typer.Option(
        False, "--duplicates", help="Hash every image file to find byte-identical duplicates."),
    check_files: bool = typer.Option(
        False, "--check-files", help="Check that every image file exists."),
    check_images: bool = typer.Option(
        False, "--check-images",
        help="Decode every image (PNG/JPEG/DICOM/NIfTI/npz) and list the unreadable ones."),
    strict: bool = typer.Option(
        False, "--strict", help="Fail on the first missing or unreadable file instead of listing it."),
    allow_outside_root: bool = typer.Option(
        False, "--allow-outside-root",
        help="Accept relative image paths that climb out of --root / the manifest's folder (../)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs in --out."),
) -> None:
    """Audit who is in a dataset: counts, shares, intersections, missingness, imbalance,
    geography, reference population, small groups, leakage and duplicates."""
    import pandas as pd

    from .._io import (
        file_fingerprint,
        frame_fingerprint,
        prepare_out_dir,
        staged_dir,
        write_sidecar,
        write_table_atomic,
    )
    from ..audit import audit_manifest
    from ..data import load_dataset, parse_bins, read_manifest, rebase_paths
    from ..data._readers import PROBLEM_COLUMNS

    if (dataset is None) == (manifest is None):
        raise FairfoundryError("give either --dataset NAME --root DIR or --manifest FILE",
                               hint="see `fairfoundry datasets list` for dataset names")
    if dataset is not None and root is None:
        raise FairfoundryError(f"--dataset {dataset} needs --root DIR (the folder with its files)")
    edges = parse_bins(bins).get("age")
    prepare_out_dir(out, overwrite=overwrite, outputs=AUDIT_OUTPUTS)
    spec = None
    notes: list[str] = []
    problems = pd.DataFrame(columns=PROBLEM_COLUMNS)
    inputs: dict = {}
    if dataset is not None:
        loaded = load_dataset(dataset, root, check_files=check_files, strict=strict, bins=edges)
        frame, spec, notes = loaded.manifest, loaded.spec, loaded.notes
        problems = loaded.problems
        base = Path(root)
        label_cols = _spec_labels(spec, frame)
        name = spec.name
        inputs = {"dataset": spec.name, "root": str(Path(root).resolve())}
    else:
        try:
            frame = read_manifest(manifest)
        except FairfoundryError as exc:
            raw = _raw_table_of(Path(manifest))
            if raw is None or "sample_id" not in exc.message:
                raise
            raise FairfoundryError(
                exc.message, hint=f"{Path(manifest).name} is the metadata table of the "
                f"{raw!r} dataset, not a harmonised manifest: run `fairfoundry audit-data "
                f"--dataset {raw} --root {Path(manifest).parent}`") from exc
        base = Path(manifest).resolve().parent
        label_cols = None
        name = Path(manifest).name
        inputs = {"manifest": str(Path(manifest).resolve()), "sha256": file_fingerprint(manifest)}
        if check_files and not check_images and "path" in frame.columns:
            from ..data import resolve_paths

            full = resolve_paths(frame["path"], root=base, allow_outside_root=allow_outside_root,
                                 source=f"manifest {manifest}")
            exists = [p is not None and Path(p).exists() for p in full]
            missing = frame.loc[[not e for e in exists], "path"]
            if len(missing) and strict:
                raise FairfoundryError(f"{len(missing)} image file(s) listed in {manifest} do not "
                                       f"exist, e.g. {missing.head(3).tolist()}")
            problems = pd.DataFrame({"path": missing.to_numpy(), "error": "file not found"})
    if check_images:
        if "path" not in frame.columns:
            raise FairfoundryError("--check-images needs a 'path' column")
        from ..data import check_images as _check_images

        with rich_progress("decoding images", len(frame)) as advance:
            bad = _check_images(frame, root=base, strict=strict, progress=advance,
                                allow_outside_root=allow_outside_root)
        known = set(problems["path"]) if len(problems) else set()
        bad = bad[~bad["path"].isin(known)]
        problems = pd.concat([problems, bad], ignore_index=True) if len(problems) else bad
    if labels:
        label_cols = _split_multi(labels)
    inter: object = "pairs"
    if intersect:
        if [i.lower() for i in intersect] == ["none"]:
            inter = None
        else:
            inter = [tuple(p.strip() for p in i.split(",") if p.strip()) for i in intersect]
    audit = audit_manifest(
        frame, attributes=_split_multi([*(sensitive or []), *(attributes or [])]) or None,
        intersections=inter,
        labels=label_cols, reference_population=reference, min_group_size=min_group_size,
        age_bins=edges, root=base, check_duplicates=duplicates,
        allow_outside_root=allow_outside_root,
        problems=problems if len(problems) else None, dataset=name, spec=spec, notes=notes)
    if strict and audit.problems is not None and len(audit.problems):
        raise FairfoundryError(f"{len(audit.problems)} file(s) could not be read, e.g. "
                               f"{audit.problems['path'].head(3).tolist()}")
    with staged_dir(out) as stage:
        audit.to_json(stage / "audit.json")
        audit.to_html(stage / "audit.html")
        audit.to_datasheet(stage / "datasheet.md")
        write_table_atomic(stage / "groups.csv", audit.suppressed(audit.groups), report=True)
        if dataset is not None:  # paths relative to the written manifest, so embed can use it
            write_table_atomic(stage / "manifest.csv",
                               rebase_paths(frame, from_dir=base, to_dir=out))
        if audit.problems is not None and len(audit.problems):
            write_table_atomic(stage / "problems.csv", audit.problems, report=True)
        if audit.leakage is not None and len(audit.leakage):
            write_table_atomic(stage / "leakage.csv", audit.leakage, report=True)
        # a --manifest file is its own fingerprint (hashing the frame again costs seconds at 1M rows)
        manifest_fp = ("sha256:" + inputs["sha256"]) if "sha256" in inputs else frame_fingerprint(frame)
        write_sidecar(stage / "run.json", kind="audit-data", config=audit.config,
                      inputs={**inputs, "manifest_fingerprint": manifest_fp})
    s = audit.summary()
    typer.echo(f"audited {s['n_samples']:,} images of {s['n_patients']:,} patients; "
               f"attributes recorded: {', '.join(s['attributes_recorded']) or 'none'}")
    for w in audit.warnings:
        typer.echo(f"warning: {w}", err=True)
    written = ["audit.html", "audit.json", "datasheet.md", "groups.csv"]
    if dataset is not None:
        written.append("manifest.csv")
    if audit.problems is not None and len(audit.problems):
        written.append(f"problems.csv ({len(audit.problems)} unreadable or missing file(s))")
    if audit.leakage is not None and len(audit.leakage):
        written.append(f"leakage.csv ({len(audit.leakage)} patient(s) in several splits)")
    typer.echo(f"wrote {out}/: {', '.join(written)}, run.json")


def _raw_table_of(path: Path) -> str | None:
    """Name of the dataset spec whose base table has this file name (None if none)."""
    from ..data import get_spec, list_specs

    name = path.name.lower()
    for spec_name in list_specs():
        spec = get_spec(spec_name)
        if spec.tables and name in {Path(f).name.lower() for f in
                                    [spec.tables[0].file, *spec.tables[0].alternatives]}:
            return spec_name
    return None


def _spec_labels(spec, frame) -> list[str] | None:
    lab = spec.labels
    if lab.kind in ("multiclass", "binary", "onehot"):
        return ["label"] if "label" in frame.columns else None
    if lab.kind in ("multilabel_string", "multilabel_columns"):
        cols = lab.classes or lab.columns
        return [c for c in cols if c in frame.columns] or None
    return ["label"] if "label" in frame.columns else None
