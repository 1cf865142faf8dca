"""``fairfoundry synth train|sample|qc`` and ``fairfoundry experiment synthetic-pilot``."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, flag_aliases
from ._common import rich_progress

synth_app = typer.Typer(help="Synthetic images for under-represented groups: train a conditional generator, "
                             "sample cells, quality-control them.", no_args_is_help=True)
app.add_typer(synth_app, name="synth")


def _settings(**kw) -> dict:
    out = {k: v for k, v in kw.items() if v is not None}
    if "channel_mult" in out:
        try:
            out["channel_mult"] = tuple(int(v) for v in str(out["channel_mult"]).split(","))
        except ValueError:
            from .._errors import FairfoundryError

            raise FairfoundryError(f"--channel-mult {out['channel_mult']!r} is not a comma-separated list of "
                                   "integers", hint="e.g. --channel-mult 1,2,2") from None
    return out


@synth_app.command("list")
def list_command() -> None:
    """List the registered generators."""
    from ..synth import list_generators

    for name in list_generators():
        typer.echo(name)


@synth_app.command("toy")
def toy_command(
    out: Path = typer.Option(..., "--out", "-o", help="Directory for images/ and manifest.csv."),
    size: int = typer.Option(28, "--size", help="Image side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Seed (recorded in the outputs)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace what --out holds."),
) -> None:
    """Write the toy data set: squares and rings x dark and bright (60/60/60/20 images), with a split."""
    from .._io import prepare_out_dir, staged_dir
    from ..synth import write_toy_manifest

    prepare_out_dir(out, overwrite=overwrite, outputs=None)
    with staged_dir(out) as stage:
        write_toy_manifest(stage, size=size, seed=seed)
    typer.echo(f"wrote {out / 'manifest.csv'}")


@synth_app.command("train")
def train_command(
    manifest: Path = typer.Option(..., "--manifest", "-m", help="Manifest with sample_id, path and the condition columns."),
    condition: str = typer.Option(..., "--condition", "-c", help="Comma-separated condition columns, e.g. Effusion,sex."),
    out: Path = typer.Option(..., "--out", "-o", help="Generator directory."),
    generator: str = typer.Option("ddpm", "--generator", help="Registered generator (`fairfoundry synth list`)."),
    split: str = typer.Option("train", "--split", help="Train on rows of this split ('all': every row)."),
    image_size: int | None = typer.Option(None, "--image-size", help="Image side in pixels (default 32)."),
    channels: int | None = typer.Option(None, "--channels", help="1 (grayscale, default) or 3."),
    base_channels: int | None = typer.Option(None, "--base-channels", help="Width of the first U-Net level (16)."),
    channel_mult: str | None = typer.Option(None, "--channel-mult", help="Level widths, e.g. 1,2,2."),
    steps: int | None = typer.Option(None, "--steps", help="Optimizer steps (2000)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Images per step (32)."),
    lr: float | None = typer.Option(None, "--lr", help="AdamW learning rate (1e-3)."),
    p_uncond: float | None = typer.Option(None, "--p-uncond", help="Condition dropout for guidance (0.1)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (0)."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, mps or auto."),
    balance: str | None = typer.Option(None, "--balance",
                                       help="'cells': draw images so every condition cell is seen equally "
                                            "often (small cells); 'none' (default): uniformly."),
    joint_embedding: bool = typer.Option(False, "--joint-embedding",
                                         help="Also learn one embedding per condition cell (intersection), "
                                              "not only per column."),
    scale_shift: bool = typer.Option(False, "--scale-shift",
                                     help="Condition by adaptive group normalisation (scale and shift), "
                                          "not an added bias."),
    snr_gamma: float | None = typer.Option(None, "--snr-gamma",
                                           help="Min-SNR-gamma loss weighting (5 in the paper; default: none)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing generator in --out."),
    allow_outside_root: bool = typer.Option(
        False, "--allow-outside-root",
        help="Accept relative image paths that climb out of the manifest's folder (../)."),
) -> None:
    """Train a class x attribute-conditional diffusion generator.

    Example: fairfoundry synth train --manifest M --condition Effusion,sex --out G
    """
    from ..synth import train_generator

    settings = _settings(image_size=image_size, channels=channels, base_channels=base_channels,
                         channel_mult=channel_mult, steps=steps, batch_size=batch_size, lr=lr, p_uncond=p_uncond,
                         seed=seed, device=device, balance=balance,
                         joint_embedding=joint_embedding or None, scale_shift=scale_shift or None,
                         snr_gamma=snr_gamma)
    with rich_progress("generator training (steps)", total=settings.get("steps", 2000)) as advance:
        result = train_generator(manifest, condition=condition.split(","), out=out, generator=generator,
                                 settings=settings, split=None if split == "all" else split, resume=resume,
                                 overwrite=overwrite, progress=advance,
                                 allow_outside_root=allow_outside_root)
    typer.echo(f"wrote {result}")


@synth_app.command("sample")
def sample_command(
    generator: Path = typer.Argument(..., help="Generator directory written by `synth train`."),
    cells: list[str] = typer.Option(..., "--cells", help='"col=value,...:count"; repeat or join cells with ";".'),
    out: Path = typer.Option(..., "--out", "-o", help="Sample directory (images + manifest.csv)."),
    seed: int = typer.Option(0, "--seed", help="Seed (recorded in the outputs)."),
    guidance: float = typer.Option(2.0, "--guidance", help="Classifier-free guidance scale (1: no guidance)."),
    sample_steps: int = typer.Option(25, "--sample-steps", help="Denoising steps."),
    sampler: str = typer.Option("ddim", "--sampler", help="ddim or ddpm."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per sampling batch."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, mps or auto."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace what --out holds."),
) -> None:
    """Generate images of the requested cells; writes a manifest tagged synthetic=1.

    Example: fairfoundry synth sample G --cells "Effusion=1,sex=female:200" --out S
    """
    from ..synth import sample_generator

    spec = ";".join(cells)
    with rich_progress("sampling (images)", total=None) as advance:
        result = sample_generator(generator, cells=spec, out=out, seed=seed, guidance=guidance,
                                  sample_steps=sample_steps, sampler=sampler, batch_size=batch_size, device=device,
                                  overwrite=overwrite, progress=advance)
    typer.echo(f"wrote {result}")


@synth_app.command("qc")
def qc_command(
    real: Path = typer.Option(..., "--real", help="Manifest of real images."),
    synthetic: Path = typer.Option(..., "--synthetic", help="Sample directory or its manifest.csv."),
    out: Path = typer.Option(..., "--out", "-o", help="QC directory."),
    generator: Path | None = typer.Option(None, "--generator", help="Generator directory (its training images are the "
                                                                    "memorisation reference)."),
    condition: str | None = typer.Option(None, "--condition", help="Condition columns (default: from the cells)."),
    encoder: str = typer.Option("fairfoundry-tiny", "--encoder", help="Zoo encoder of the feature space."),
    encoder_weights: str | None = typer.Option(None, "--encoder-weights", help="Weights of --encoder (a local file; default: the preset's)."),
    k: int = typer.Option(5, "--k", help="Neighbours of precision/recall/density/coverage."),
    copy_threshold: float = typer.Option(1 / 3, "--copy-threshold", help="NN distance ratio below which a sample is a copy."),
    seed: int = typer.Option(0, "--seed", help="Seed (recorded in the outputs)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, mps or auto."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace what --out holds."),
    allow_outside_root: bool = typer.Option(
        False, "--allow-outside-root",
        help="Accept relative image paths that climb out of the manifest's folder (../)."),
) -> None:
    """Quality control per cell: FD/KID/PRDC, memorisation, attribute fidelity, HTML page.

    Example: fairfoundry synth qc --real M --synthetic S --out Q
    """
    from ..synth import run_qc

    syn = synthetic / "manifest.csv" if synthetic.is_dir() else synthetic
    with rich_progress("QC (images embedded)", total=None) as advance:
        result = run_qc(real, syn, out=out, conditions=condition.split(",") if condition else None, encoder=encoder,
                        encoder_weights=encoder_weights, generator=generator, k=k, copy_threshold=copy_threshold,
                        seed=seed, device=device, overwrite=overwrite, progress=advance,
                        allow_outside_root=allow_outside_root)
    typer.echo(f"wrote {result}")
    typer.echo(f"  report: {Path(result) / 'qc.html'}")


from ._adapt import ENCODER_FLAGS, experiment_app  # noqa: E402  (the `experiment` group lives in _adapt)


@experiment_app.command("synthetic-pilot")
def synthetic_pilot_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    manifest: Path | None = typer.Option(None, "--manifest", "-m",
                                         help="Manifest with images, split, label, attribute (default: bundled NIH X-rays)."),
    label: str = typer.Option("Infiltration", "--label", "-l", help="0/1 label of the cells and the probe."),
    attribute: str = typer.Option("sex", "--sensitive", "-a", help="Protected attribute of the cells."),
    attribute_old: str | None = typer.Option(None, "--attribute", hidden=True, help="Old spelling of --sensitive."),
    encoder: str = typer.Option("fairfoundry-tiny", "--encoder", help="Zoo encoder (probe features and QC)."),
    seeds: int = typer.Option(5, "--seeds", help="Probe seeds 0..N-1 per arm."),
    generator_steps: int = typer.Option(300, "--generator-steps", help="Generator training steps."),
    image_size: int = typer.Option(32, "--image-size", help="Generator resolution."),
    target_cells: int = typer.Option(1, "--target-cells", help="How many of the smallest cells get synthetic images."),
    probe_epochs: int = typer.Option(200, "--probe-epochs", help="Full-batch probe steps in every arm."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamples of the test CIs."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, mps or auto."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace what --out holds."),
) -> None:
    """Generate for the smallest subgroup, QC-filter, augment, and compare against real-only, oversampling and reweighing.

    Example: fairfoundry experiment synthetic-pilot --out runs/pilot
    """
    from ..bench import synthetic_pilot

    with rich_progress("synthetic pilot: generator (steps)", total=generator_steps) as advance:
        result = synthetic_pilot(out, manifest=manifest, label=label, attribute=attribute_old or attribute,
                                 encoder=encoder,
                                 seeds=list(range(seeds)),
                                 generator_settings={"steps": generator_steps, "image_size": image_size},
                                 target_cells=target_cells, probe_epochs=probe_epochs, bootstrap=bootstrap,
                                 device=device, overwrite=overwrite, progress=advance)
    typer.echo(f"wrote {result}")
    typer.echo(f"  report: {Path(result) / 'pilot.html'}")

for _name in ("synth qc", "experiment synthetic-pilot"):
    flag_aliases(_name, ENCODER_FLAGS)
