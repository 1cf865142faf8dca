"""``fairfoundry curate dedup|balance|proxies|slices`` and ``fairfoundry experiment curation-impact``."""

from __future__ import annotations

from pathlib import Path

import typer

from .._errors import FairfoundryError
from ._adapt import experiment_app
from ._app import app
from ._common import parse_key_values, rich_progress

curate_app = typer.Typer(
    help="Data curation: duplicates, balanced curation by clustering, proxy groups, slice discovery.",
    no_args_is_help=True)
app.add_typer(curate_app, name="curate")

_OUT = "Output directory (manifest.csv, decisions.csv, report.html, curate.json, ...)."


def _bins(values: list[str] | None) -> dict[str, list[float]]:
    kv = parse_key_values(values, option="--bins")
    try:
        return {k: [float(x) for x in v.split(",")] for k, v in kv.items()}
    except ValueError as exc:
        raise FairfoundryError(f"--bins expects numbers, e.g. age=40,60,80: {exc}") from exc


def _ints(text: str, *, option: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise FairfoundryError(f"{option} expects comma-separated integers, got {text!r}") from exc


def _multi(values: list[str] | None) -> list[str]:
    return [p.strip() for v in values or [] for p in v.split(",") if p.strip()]


def _done(out: Path) -> None:
    typer.echo(f"wrote {out}")
    typer.echo(f"  report: {out / 'report.html'}")


@curate_app.command("dedup")
def dedup_command(
    manifest: Path = typer.Option(..., "--manifest", "-m", help="Manifest with sample_id and path (+ patient_id, split)."),
    out: Path = typer.Option(..., "--out", "-o", help=_OUT),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", "-e", help="`fairfoundry embed` directory or aligned .npy: adds semantic duplicates."),
    no_exact: bool = typer.Option(False, "--no-exact", help="Skip exact (SHA-256) duplicates."),
    no_near: bool = typer.Option(False, "--no-near", help="Skip near-duplicate images (perceptual hash + aligned check)."),
    min_similarity: float = typer.Option(0.94, "--min-similarity", help="Crop-aligned correlation flagging a near pair."),
    max_hash_distance: int = typer.Option(4, "--max-hash-distance", help="pHash Hamming distance flagging a near pair."),
    semantic_threshold: float = typer.Option(0.95, "--semantic-threshold", help="Cosine similarity (SemDeDup 1 - eps)."),
    semantic_k: int | None = typer.Option(None, "--semantic-k", help="SemDeDup k-means clusters (default sqrt(n/2))."),
    keep: str = typer.Option("farthest", "--keep", help="Semantic duplicate kept: farthest (paper), closest or first."),
    attribute: list[str] | None = typer.Option(None, "--sensitive", "-a",
                                               help="Protected attributes of the composition table."),
    attribute_old: list[str] | None = typer.Option(None, "--attribute", hidden=True, help="Old spelling of --sensitive."),
    seed: int = typer.Option(0, "--seed", help="Seed (recorded in the outputs)."),
    device: str = typer.Option("cpu", "--device", help="Device of the k-means (cpu, cuda)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs already in --out."),
) -> None:
    """Exact, near and semantic duplicates; pairs across patients or splits reported as leakage.

    Example: fairfoundry curate dedup --manifest manifest.csv --embeddings emb/ --out curated/dedup
    """
    from ..curate import run_dedup

    if no_exact and no_near and embeddings is None:
        raise FairfoundryError("nothing to do: --no-exact and --no-near without --embeddings")
    with rich_progress("dedup (images)", total=None) as advance:
        res = run_dedup(manifest, out=out, embeddings=embeddings, exact=not no_exact, near=not no_near,
                        min_similarity=min_similarity, max_hash_distance=max_hash_distance,
                        semantic_threshold=semantic_threshold, semantic_clusters=semantic_k, keep=keep,
                        attributes=_multi([*(attribute or []), *(attribute_old or [])]) or ["sex"], seed=seed, device=device, overwrite=overwrite,
                        progress=advance)
    _done(res)


@curate_app.command("balance")
def balance_command(
    manifest: Path = typer.Option(..., "--manifest", "-m", help="Manifest with sample_id."),
    embeddings: Path = typer.Option(..., "--embeddings", "-e", help="`fairfoundry embed` directory or aligned .npy."),
    target: int = typer.Option(..., "--target", "-n", help="Number of rows to keep."),
    out: Path = typer.Option(..., "--out", "-o", help=_OUT),
    k: str = typer.Option("100,20,5", "--k", help="Clusters per level, bottom first, e.g. 1000,100,10."),
    resampling_steps: str = typer.Option("3", "--resampling-steps", help="Resampling steps (one, or one per level)."),
    balance_by: str | None = typer.Option(None, "--balance-by", help="Also balance this recorded attribute."),
    attribute: list[str] | None = typer.Option(None, "--sensitive", "-a",
                                               help="Protected attributes of the composition table."),
    attribute_old: list[str] | None = typer.Option(None, "--attribute", hidden=True, help="Old spelling of --sensitive."),
    bins: list[str] | None = typer.Option(None, "--bins", help="Bins of a numeric attribute, e.g. age=40,60,80."),
    seed: int = typer.Option(0, "--seed", help="Seed (recorded in the outputs)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    backend: str = typer.Option("torch", "--backend", help="torch, or faiss for the Lloyd steps."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs already in --out."),
) -> None:
    """Clustering-based balanced curation: hierarchical k-means with resampling + balanced sampling.

    Example: fairfoundry curate balance --manifest m.csv --embeddings emb/ --target 1000 --out curated/balanced
    """
    from ..curate import run_balance

    steps = _ints(resampling_steps, option="--resampling-steps")
    with rich_progress("balance (levels)", total=None) as advance:
        res = run_balance(manifest, embeddings=embeddings, out=out, target=target, n_clusters=_ints(k, option="--k"),
                          resampling_steps=steps[0] if len(steps) == 1 else steps, balance_by=balance_by,
                          bins=_bins(bins), attributes=_multi([*(attribute or []), *(attribute_old or [])]) or ["sex"], seed=seed, device=device,
                          backend=backend, overwrite=overwrite, progress=advance)
    _done(res)


@curate_app.command("proxies")
def proxies_command(
    manifest: Path = typer.Option(..., "--manifest", "-m", help="Manifest with sample_id."),
    embeddings: Path = typer.Option(..., "--embeddings", "-e", help="`fairfoundry embed` directory or aligned .npy."),
    out: Path = typer.Option(..., "--out", "-o", help=_OUT),
    method: str = typer.Option("kmeans", "--method", help="kmeans, or tsne-dbscan (PCA -> t-SNE -> DBSCAN)."),
    k: int = typer.Option(2, "--k", help="Clusters for kmeans."),
    compare: list[str] | None = typer.Option(None, "--compare", "-a", help="Recorded attribute(s) to compare with."),
    bins: list[str] | None = typer.Option(None, "--bins", help="Bins of a numeric attribute, e.g. age=40,60,80."),
    bootstrap: int = typer.Option(500, "--bootstrap", help="Bootstrap replicates for the AMI/ARI CIs."),
    seed: int = typer.Option(0, "--seed", help="Seed (recorded in the outputs)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs already in --out."),
) -> None:
    """Proxy groups for unrecorded attributes (column proxy_cluster) and their agreement (AMI, ARI) with recorded ones.

    Example: fairfoundry curate proxies --manifest m.csv --embeddings emb/ --k 2 --compare sex --out curated/proxies
    """
    from ..curate import run_proxies

    res = run_proxies(manifest, embeddings=embeddings, out=out, method=method, n_clusters=k, compare=_multi(compare),
                      bins=_bins(bins), bootstrap=bootstrap, seed=seed, overwrite=overwrite)
    _done(res)


@curate_app.command("slices")
def slices_command(
    manifest: Path = typer.Option(..., "--manifest", "-m", help="Predictions/manifest with sample_id, label and score."),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", "-e", help="`fairfoundry embed` directory or aligned .npy: slices of embedding space."),
    out: Path = typer.Option(..., "--out", "-o", help=_OUT),
    label: str = typer.Option("y_true", "--label", "-l", help="0/1 label column."),
    score: str = typer.Option("y_score", "--score", help="Score column (probability)."),
    split: str | None = typer.Option(None, "--split", help="Only rows of this split (e.g. test)."),
    by: list[str] | None = typer.Option(
        None, "--by", help="Metadata columns (repeat or comma-separate), e.g. --by sex,age,view: slices over "
                           "them found by SliceLine instead of --embeddings."),
    alpha: float = typer.Option(0.95, "--alpha", help="With --by: SliceLine's weight of the error term vs size."),
    max_level: int = typer.Option(3, "--max-level", help="With --by: most predicates per slice."),
    min_support: int | None = typer.Option(
        None, "--min-support", help="With --by: smallest slice size (default max(32, 1% of the rows))."),
    fwer: float = typer.Option(0.05, "--fwer", help="With --by: family-wise error rate of the 'underperforms' verdict."),
    n_slices: int = typer.Option(10, "--slices", help="Mixture components (with --by: slices reported)."),
    gamma: float = typer.Option(10.0, "--gamma", help="Weight of the label/prediction terms (Domino's gamma)."),
    threshold: float = typer.Option(0.5, "--threshold", help="Score threshold defining an error."),
    seed: int = typer.Option(0, "--seed", help="Seed (recorded in the outputs)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs already in --out."),
) -> None:
    """Slice discovery: coherent regions of embedding space where the model errs (error-aware mixture, Domino-style),
    or with --by, slices over metadata columns (SliceLine) tested against the rest.

    Example: fairfoundry curate slices --manifest run/predictions.parquet --embeddings emb/ --split test --out curated/slices
    """
    from ..curate import run_slices

    cols = [c.strip() for v in (by or []) for c in v.split(",") if c.strip()]
    res = run_slices(manifest, embeddings=embeddings, out=out, label=label, score=score, split=split,
                     n_slices=n_slices, gamma=gamma, threshold=threshold, seed=seed, overwrite=overwrite,
                     by=cols or None, alpha=alpha, max_level=max_level, min_support=min_support, fwer=fwer)
    _done(res)


@experiment_app.command("curation-impact")
def curation_impact_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    manifest: Path | None = typer.Option(
        None, "--manifest", "-m", help="Manifest with images, label and attributes (default: bundled NIH X-rays)."),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", "-e", help="Embeddings aligned with the manifest (default: embed with --encoder)."),
    encoder: str = typer.Option("fairfoundry-tiny", "--encoder", help="Zoo encoder used when --embeddings is absent."),
    label: str = typer.Option("Infiltration", "--label", "-l", help="0/1 label the probe predicts."),
    sensitive: list[str] | None = typer.Option(None, "--sensitive", "-a", help="Attributes (default: sex)."),
    seed: list[int] | None = typer.Option(None, "--seed", help="Seeds, at least 5 (default 0..4)."),
    target: int | None = typer.Option(None, "--target", help="Balanced / random training-set size (default half)."),
    k: str = typer.Option("20,5", "--k", help="Hierarchical k-means levels on the training rows."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamples for each run's test CIs."),
    no_near: bool = typer.Option(False, "--no-near", help="Dedup by exact and semantic duplicates only."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, ..."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs already in --out."),
) -> None:
    """Train the probe on uncurated, deduplicated, balanced-curated and random training sets (>= 5 seeds each),
    evaluate on one untouched test split with CIs, and write the trade-off with an honest verdict.

    Example: fairfoundry experiment curation-impact --out runs/curation
    """
    from ..bench import curation_impact

    with rich_progress("curation impact (runs)", total=None) as advance:
        res = curation_impact(out, manifest=manifest, embeddings=embeddings, encoder=encoder, label=label,
                              sensitive=_multi(sensitive) or ["sex"], seeds=seed or [0, 1, 2, 3, 4], target=target,
                              n_clusters=_ints(k, option="--k"), bootstrap=bootstrap, near=not no_near,
                              device=device, overwrite=overwrite, progress=advance)
    typer.echo(f"wrote {res}")
    typer.echo(f"  report: {res / 'report.html'}")
