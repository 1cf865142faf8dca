"""``fairfoundry models list/show``, ``fairfoundry embed`` and ``fairfoundry probe-attributes``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from .._errors import FairfoundryError
from ._app import app
from ._common import parse_key_values, rich_progress

log = logging.getLogger(__name__)

models_app = typer.Typer(help="The encoder zoo: list presets and backends, show one model.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")

PROBE_OUTPUTS = ["probe.csv", "probe_predictions.csv", "probe.json"]


def _split_multi(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _parse_model_args(items: list[str] | None) -> dict:
    """``--model-arg img_size=64`` -> ``{"img_size": 64}`` (typed values)."""
    return parse_key_values(items, option="--model-arg", typed=True)


@models_app.command("list")
def models_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List encoder presets (name, backend, input, licence) and the backends for backend:id names."""
    from ..models import list_backends, list_presets

    backends = list_backends()
    presets = list_presets()
    if as_json:
        typer.echo(json.dumps({"presets": [p.to_dict() for p in presets],
                               "backends": {k: {"description": b.description, "examples": list(b.examples)}
                                            for k, b in backends.items()}}, indent=2))
        return
    width = max(len(p.name) for p in presets)
    typer.echo("Presets (fairfoundry models show NAME for details):")
    for p in presets:
        pre = p.preprocessing
        inp = f"{pre.channels}x{pre.size}" if pre else "-"
        typer.echo(f"  {p.name:<{width}}  {p.backend:<9}  {inp:<7}  {'vlm' if p.vlm else '   '}  "
                   f"{p.modality[:34]:<34}  {p.licence.split(' (')[0]}")
    typer.echo("\nBackends (use --model backend:id):")
    for k, b in backends.items():
        ex = f"  e.g. {b.examples[0]}" if b.examples else ""
        typer.echo(f"  {k:<9}  {b.description}{ex}")


@models_app.command("show")
def models_show(
    name: str = typer.Argument(..., help="Preset, backend:id or local checkpoint path."),
    weights: str | None = typer.Option(None, "--weights", help="Weights file overriding the default."),
    load: bool = typer.Option(False, "--load", help="Also load the model (offline) and report its "
                              "embedding width and weights hash."),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint",
                                          help="Allow unpickling checkpoints that are not plain tensors."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a model: backend, weights location, preprocessing, licence and how to get the weights."""
    from ..models import resolve_model

    ref = resolve_model(name, weights=weights)
    info: dict = {"name": ref.name, "backend": ref.backend, "model": ref.model_id,
                  "model_kwargs": ref.model_kwargs,
                  "weights": str(ref.weights) if ref.weights is not None else None,
                  "weights_fingerprint": ref.weights_fingerprint()}
    if ref.preprocessing is not None:
        info["preprocessing"] = ref.preprocessing.to_dict()
    if ref.preset is not None:
        p = ref.preset
        info.update({"licence": p.licence, "source": p.source, "get_weights": p.get_weights,
                     "modality": p.modality, "description": p.description, "paper": p.paper,
                     "embed_dim": p.embed_dim, "vlm": p.vlm, "verified": p.verified})
    info["weights_available_locally"] = not info["weights_fingerprint"].startswith("default:")
    if load:
        from ..models import load_encoder

        enc = load_encoder(name, weights=weights, trust_checkpoint=trust_checkpoint)
        info.update({"loaded": enc.info()})
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    for k, v in info.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items()) or "-"
        typer.echo(f"{k:>26}: {v}")


@models_app.command("convert")
def models_convert(
    name: str = typer.Argument(..., help="Preset or backend:id the weights belong to."),
    weights: str = typer.Option(..., "--weights", help="The checkpoint to convert (.pt/.pth/.pkl)."),
    out: Path = typer.Option(..., "--out", "-o", help="The .safetensors file to write."),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint",
                                          help="Allow unpickling the checkpoint (needed for pickled models)."),
    model_arg: list[str] | None = typer.Option(None, "--model-arg",
                                               help="Constructor argument KEY=VALUE (typed: 64, 0.1, true, [1,2]), repeatable."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """Convert a checkpoint once to .safetensors (no pickle, carries the architecture).

    Example: fairfoundry models convert xrv-densenet121-all --weights
    ~/.torchxrayvision/models_data/nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt
    --trust-checkpoint --out densenet121-all.safetensors; then --model densenet121-all.safetensors.
    """
    from ..models import load_encoder, save_encoder

    out = Path(out)
    if out.exists() and not overwrite:  # fail before the (slow, code-running) unpickling
        raise FairfoundryError(f"{out} exists", hint="pass --overwrite to replace it")
    enc = load_encoder(name, weights=weights, trust_checkpoint=trust_checkpoint,
                       model_kwargs=_parse_model_args(model_arg))
    path = save_encoder(enc, out, overwrite=overwrite)
    typer.echo(f"wrote {path} ({enc.backend}:{enc.model_id}, {enc.embed_dim}-d, weights "
               f"{enc.weights_id}); use it with --model {path}")


_EMBED_EPILOG = (
    "Examples:\n\n"
    "  fairfoundry embed --model rad-dino --manifest manifest.csv --out emb --device cuda\n\n"
    "  fairfoundry embed --model timm:vit_small_patch16_224.dino --weights vits.safetensors "
    "--manifest manifest.csv --out emb\n\n"
    "  fairfoundry embed --model my-encoder.safetensors --manifest m.csv --out emb --executor ray\n\n"
    "Outputs: OUT/embeddings.npy (float32 [n, d], manifest order), OUT/sample_ids.txt, "
    "OUT/embeddings.json (model, weights hash, preprocessing, manifest fingerprint, versions; "
    "written last), OUT/skipped.csv (with --on-error skip). Shards are cached (--cache-dir): a "
    "re-run does no work, a killed run resumes."
)


@app.command("embed", epilog=_EMBED_EPILOG)
def embed_command(
    model: str = typer.Option(..., "--model", "-m",
                              help="Preset (fairfoundry models list), backend:id, or a local checkpoint."),
    manifest: Path = typer.Option(..., "--manifest",
                                  help="CSV/TSV/Parquet with sample_id and path (relative to the manifest)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    weights: str | None = typer.Option(None, "--weights",
                                       help="Weights file/folder overriding the default ('random': seeded random init)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or mps."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per forward pass."),
    workers: int = typer.Option(2, "--workers", help="DataLoader worker processes decoding images."),
    shard_size: int = typer.Option(256, "--shard-size", help="Rows per cache shard (unit of resumption)."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir",
                                          help="Cache root (default $FAIRFOUNDRY_CACHE or ~/.cache/fairfoundry)."),
    executor: str = typer.Option("local", "--executor", help="local (default) or ray."),
    ray_address: str | None = typer.Option(None, "--ray-address",
                                           help="Ray cluster address (default: start a local instance)."),
    ray_cpus: int | None = typer.Option(None, "--ray-cpus", help="CPUs of a local Ray instance."),
    on_error: str = typer.Option("strict", "--on-error",
                                 help="strict: unreadable images are an error; skip: leave them out (skipped.csv)."),
    amp: bool | None = typer.Option(None, "--amp/--no-amp", help="Mixed precision (default: on for CUDA)."),
    parquet: bool = typer.Option(False, "--parquet", help="Also write embeddings.parquet."),
    model_arg: list[str] | None = typer.Option(None, "--model-arg",
                                               help="Constructor argument KEY=VALUE (JSON values), repeatable."),
    seed: int = typer.Option(0, "--seed", help="Seed of random initialisation (with --weights random)."),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint",
                                          help="Allow unpickling non-tensor checkpoints (runs code from the file)."),
    download: bool = typer.Option(False, "--download", help="Allow downloading weights from the hub."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs in --out."),
    allow_outside_root: bool = typer.Option(
        False, "--allow-outside-root",
        help="Accept relative image paths that climb out of the manifest's folder (../)."),
) -> None:
    """Extract embeddings of every image in a manifest (cached, resumable, Ray-scalable)."""
    from ..models import extract_embeddings, read_image_manifest

    n = len(read_image_manifest(manifest, allow_outside_root=allow_outside_root))
    with rich_progress("embedding", n) as advance:
        res = extract_embeddings(
            manifest, model, out=out, weights=weights, device=device, batch_size=batch_size,
            num_workers=workers, shard_size=shard_size, cache_dir=cache_dir, executor=executor,
            on_error=on_error, overwrite=overwrite, trust_checkpoint=trust_checkpoint,
            download=download, seed=seed, model_kwargs=_parse_model_args(model_arg), amp=amp,
            parquet=parquet, ray_address=ray_address, ray_num_cpus=ray_cpus, progress=advance,
            allow_outside_root=allow_outside_root)
    if res.up_to_date:
        typer.echo(f"{out}: up to date ({res.n} x {res.dim}), nothing to do")
        return
    msg = (f"wrote {res.n} x {res.dim} embeddings to {out} "
           f"({res.shards_computed} shard(s) computed, {res.shards_reused} from cache)")
    if res.skipped:
        msg += f"; {len(res.skipped)} unreadable image(s) skipped, listed in {out / 'skipped.csv'}"
    typer.echo(msg)


@app.command("probe-attributes")
def probe_attributes_command(
    embeddings: Path = typer.Option(..., "--embeddings", "-e", help="Output directory of `fairfoundry embed`."),
    manifest: Path = typer.Option(..., "--manifest", help="Manifest with sample_id and the attribute columns."),
    sensitive: list[str] | None = typer.Option(None, "--sensitive", "-a",
                                               help="Protected attribute columns; repeat or "
                                                    "comma-separate (sex,age,race)."),
    attributes: list[str] | None = typer.Option(None, "--attributes", hidden=True,
                                                help="Old spelling of --sensitive."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds."),
    n_boot: int = typer.Option(200, "--n-boot", help="Bootstrap resamples for the descriptive AUC CIs."),
    n_perm: int = typer.Option(199, "--n-perm", min=0,
                               help="Permutations of the leakage test (the verdict; below 19: too few to judge)."),
    age_bins: str = typer.Option("20,40,60,80", "--age-bins", help="Edges binning numeric attributes (left-closed)."),
    group_col: str = typer.Option("patient_id", "--group-col",
                                  help="Folds are grouped by this column when present (the patient)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and the bootstrap."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs in --out."),
) -> None:
    """How well can sex, age group, race, ... be predicted from the embeddings? (leakage probe)

    Cross-validated logistic-regression probes, AUC (macro one-vs-rest for >2 groups) with
    descriptive bootstrap CIs; chance is 0.5. The verdict is a permutation test (the attribute
    permuted across patients, the cross-validated probe refitted; exact p-value). High AUC warns
    that the features encode the attribute, a known route to shortcut learning. Writes
    OUT/probe.csv, OUT/probe_predictions.csv, OUT/probe.json.
    """
    import numpy as np
    import pandas as pd

    from .._io import prepare_out_dir, staged_dir, write_sidecar, write_table_atomic
    from ..data import parse_bins, read_manifest
    from ..models import read_embeddings
    from ..models._probe import probe_attributes

    attrs = _split_multi([*(sensitive or []), *(attributes or [])])
    if not attrs:
        raise FairfoundryError("no --sensitive attribute given",
                               hint="for example --sensitive sex,age")
    prepare_out_dir(out, overwrite=overwrite, outputs=PROBE_OUTPUTS)
    ids, arr, meta = read_embeddings(embeddings)
    frame = read_manifest(manifest, required=["sample_id", *attrs])
    pos = pd.Series(np.arange(len(frame)), index=frame["sample_id"].astype(str))
    absent = [i for i in ids if i not in pos.index]
    if absent:
        raise FairfoundryError(
            f"{len(absent)} of {len(ids)} embedded sample_ids are not in manifest {manifest} "
            f"(e.g. {absent[:3]}): the embeddings were made from another manifest",
            hint=f"pass the manifest used for `fairfoundry embed` ({meta.get('inputs', {}).get('manifest')})")
    aligned = frame.iloc[pos.loc[list(ids)].to_numpy()].reset_index(drop=True)
    edges = parse_bins([f"age={age_bins}"])["age"]
    res = probe_attributes(arr, aligned, sensitive=attrs, folds=folds, seed=seed, n_boot=n_boot,
                           age_bins=edges, group_col=group_col or None, n_perm=n_perm)
    with staged_dir(out) as stage:
        write_table_atomic(stage / "probe.csv", res.table, report=True)
        write_table_atomic(stage / "probe_predictions.csv", res.predictions, report=True)
    write_sidecar(out / "probe.json", kind="attribute_probe",
                  config={"attributes": attrs, "folds": folds, "n_boot": n_boot, "n_perm": n_perm, "age_bins": edges,
                          "group_col": group_col},
                  seed=seed, inputs={"embeddings": str(embeddings), "manifest": str(manifest),
                                     "embeddings_cache_key": meta.get("cache_key"),
                                     "model": meta.get("model")},
                  results=res.table.to_dict(orient="records"))
    t = res.table
    typer.echo(f"attribute probe on {meta.get('model')} embeddings ({arr.shape[0]} x {arr.shape[1]}); "
               "AUC, chance = 0.5")
    for r in t.itertuples():
        typer.echo(f"  {r.attribute:<14} AUC {r.auc:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]  "
                   f"permutation p={r.p_value:.3f}: {r.verdict}  n={r.n}  groups={r.groups}")
    typer.echo(f"wrote {out / 'probe.csv'}, {out / 'probe_predictions.csv'}")

