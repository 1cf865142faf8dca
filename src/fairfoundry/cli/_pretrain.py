"""``fairfoundry pretrain`` and ``fairfoundry distill``: pre-train or distil a ViT from a manifest."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from .._errors import FairfoundryError
from ..pretrain._names import objective_names
from ._app import app, flag_aliases
from ._common import parse_key_values, rich_progress

log = logging.getLogger(__name__)

_PRETRAIN_EPILOG = (
    "Examples:\n\n"
    "  fairfoundry pretrain --objective mae --manifest manifest.csv --model timm:vit_tiny_patch16_224 "
    "--image-size 64 --steps 200 --out runs/mae\n\n"
    "  fairfoundry pretrain --objective dino --manifest manifest.csv --sampling balanced "
    "--balance-by sex,age_group --option local_crops=4 --option out_dim=4096 --out runs/dino\n\n"
    "  fairfoundry pretrain --objective clip --manifest manifest.csv --text-column finding_labels "
    "--text-template 'chest x-ray: {}' --out runs/clip\n\n"
    "  fairfoundry pretrain config.yaml --out runs/x      (keys as in OUT/config.yaml)\n\n"
    "  fairfoundry pretrain config.yaml --out runs/x --probe-every 50 --probe-manifest val.csv "
    "--probe-label Effusion --probe-sensitive sex,age --select worst_group_auc   (fairness probe)\n\n"
    "  fairfoundry pretrain config.yaml --out runs/x --checkpoint-every 500   (long runs)\n\n"
    "  fairfoundry pretrain config.yaml --out runs/x --steps 200 --schedule-steps 400\n"
    "  fairfoundry pretrain config.yaml --out runs/x --steps 400 --schedule-steps 400 --resume   "
    "(train in chunks)\n\n"
    "Outputs: OUT/encoder.safetensors (timm ViT weights + spec), OUT/loss_log.csv, "
    "OUT/composition.csv (groups seen vs manifest), OUT/config.yaml, OUT/checkpoint/ (resume), "
    "OUT/run.json (summary, versions; written last), OUT/report.html (curves), OUT/model_card.md/.json "
    "(data, seed, steps, probe settings and the selected step's validation numbers); with --probe-every: "
    "OUT/probe.csv, with --select: OUT/encoder_selected.safetensors."
)


def _parse_values(items: list[str] | None, *, option: str) -> dict[str, Any]:
    """``key=value`` options with typed values (``0.75``, ``true``, ``[0.2, 1.0]``)."""
    return parse_key_values(items, option=option, typed=True)


def _read_config(path: Path | None) -> dict:
    if path is None:
        return {}
    from .._io import read_yaml_mapping

    data = read_yaml_mapping(path, what="config")
    for key in ("manifest", "probe_manifest"):
        if data.get(key) and not Path(str(data[key])).is_absolute():
            candidate = path.parent / str(data[key])
            if candidate.exists():
                data[key] = str(candidate)
    return data


def _merge(base: dict, **flags: Any) -> dict:
    out = dict(base)
    for key, value in flags.items():
        if value is None or value == [] or value == {}:
            continue
        out[key] = value
    return out


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


# options shared by ``pretrain`` and ``distill`` (one definition each)
ConfigArg = Annotated[Path | None, typer.Argument(
    metavar="[CONFIG.yaml]", help="Run config (YAML); flags override its keys.",
    show_default=False)]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run directory, e.g. --out runs/mae.")]
ManifestOpt = Annotated[Path | None, typer.Option(
    "--manifest", "-m", help="CSV/Parquet manifest with a path column.")]
PathColumnOpt = Annotated[str | None, typer.Option("--path-column",
                                                  help="Column of image paths (path).")]
RootOpt = Annotated[Path | None, typer.Option(
    "--root", help="Folder of relative paths (the manifest's folder).")]
AllowOutsideOpt = Annotated[bool, typer.Option(
    "--allow-outside-root",
    help="Accept relative image paths that climb out of --root / the manifest's folder (../).")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="timm ViT, e.g. timm:vit_tiny_patch16_224 (default).")]
ImageSizeOpt = Annotated[int | None, typer.Option("--image-size",
                                                 help="Training resolution (64).")]
PatchSizeOpt = Annotated[int | None, typer.Option("--patch-size",
                                                 help="Override the ViT's patch size.")]
EmbedDimOpt = Annotated[int | None, typer.Option("--embed-dim", help="Override the ViT's width.")]
DepthOpt = Annotated[int | None, typer.Option("--depth", help="Override the ViT's depth.")]
HeadsOpt = Annotated[int | None, typer.Option("--num-heads", help="Override the ViT's heads.")]
StepsOpt = Annotated[int | None, typer.Option("--steps", help="Optimiser steps (100).")]
ScheduleStepsOpt = Annotated[int | None, typer.Option(
    "--schedule-steps", help="Length of the LR / EMA / temperature schedules (default: --steps); "
    "set it to the final length to train in chunks with --resume --steps.")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="Images per step (32).")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Peak learning rate (5e-4).")]
SamplingOpt = Annotated[str | None, typer.Option(
    "--sampling", help="uniform (default), balanced or stratified.")]
BalanceOpt = Annotated[list[str] | None, typer.Option(
    "--balance-by", help="Attribute(s) to balance or stratify, e.g. sex,age_group.")]
KeepOpt = Annotated[str | None, typer.Option(
    "--keep-column", help="0/1 column of a curated manifest selecting the rows to use.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed (0).")]
DeviceOpt = Annotated[str | None, typer.Option("--device",
                                              help="auto (default), cpu, cuda, mps.")]
CkptOpt = Annotated[int | None, typer.Option(
    "--checkpoint-every", help="Also checkpoint every N steps (default: once per epoch).")]
EmissionsOpt = Annotated[bool, typer.Option("--track-emissions",
                                            help="Estimate energy and CO2 with codecarbon.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite",
                                            help="Replace outputs already in --out.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")]
ProbeEveryOpt = Annotated[int | None, typer.Option(
    "--probe-every", help="Fairness probe of the encoder every N steps (and at the start and end): "
    "writes OUT/probe.csv and the curves in OUT/report.html.")]
ProbeManifestOpt = Annotated[Path | None, typer.Option(
    "--probe-manifest", help="Labelled validation manifest of the probe (only its split=val rows "
    "are read when it has a split column).")]
ProbeLabelOpt = Annotated[str | None, typer.Option("--probe-label",
                                                   help="0/1 label column of the probe manifest.")]
ProbeSensitiveOpt = Annotated[list[str] | None, typer.Option(
    "--probe-sensitive", help="Attribute(s) of the probe's per-group AUC and leakage, e.g. sex,age.")]
ProbeMaxOpt = Annotated[int | None, typer.Option(
    "--probe-max-samples", help="At most this many probe images (2000; label-stratified subsample).")]
ProbeBootOpt = Annotated[int | None, typer.Option(
    "--probe-bootstrap", help="Bootstrap replicates of the probe's CIs (100).")]
ProbePermOpt = Annotated[int | None, typer.Option(
    "--probe-permutations", help="Permutations of the probe's attribute-leakage test (99; p-value and verdict).")]
SelectOpt = Annotated[str | None, typer.Option(
    "--select", help="Keep the best checkpoint by the validation probe: worst_group_auc, overall_auc "
    "or dto (OUT/encoder_selected.safetensors); needs --probe-every.")]


def _common(config: Path | None, *, manifest, root, balance_by, track_emissions,
            probe_manifest=None, probe_sensitive=None, allow_outside_root: bool = False,
            **flags: Any) -> dict:
    """The run config: CONFIG.yaml's keys overridden by the flags that were given."""
    return _merge(_read_config(config), manifest=str(manifest) if manifest else None,
                  root=str(root) if root else None, balance_by=_split(balance_by),
                  track_emissions=track_emissions or None,
                  probe_manifest=str(probe_manifest) if probe_manifest else None,
                  probe_sensitive=_split(probe_sensitive),
                  allow_outside_root=allow_outside_root or None, **flags)


def _run(fn, label: str, cfg: dict, *, out: Path, overwrite: bool, resume: bool) -> dict:
    """Run ``pretrain`` / ``distill`` under a progress bar that starts at the steps already done
    when resuming."""
    done = 0
    state = out / "checkpoint" / "last" / "state.json"
    if resume and state.is_file():
        try:
            done = int(json.loads(state.read_text()).get("step", 0))
        except (ValueError, OSError):
            done = 0  # the library reports a broken checkpoint with its own message
    steps = cfg.get("steps", 100)
    total = int(steps) if isinstance(steps, int) or str(steps).isdigit() else None
    with rich_progress(label, total) as advance:  # a bad 'steps' is reported by the library
        if done:
            advance(done)
        return fn(cfg, out=out, overwrite=overwrite, resume=resume, progress=advance)


@app.command("pretrain", epilog=_PRETRAIN_EPILOG)
def pretrain_command(
    config: ConfigArg = None,
    out: OutOpt = ...,
    objective: str | None = typer.Option(None, "--objective",
                                         help=f"{', '.join(objective_names())}."),
    manifest: ManifestOpt = None,
    path_column: PathColumnOpt = None,
    root: RootOpt = None,
    allow_outside_root: AllowOutsideOpt = False,
    model: ModelOpt = None,
    image_size: ImageSizeOpt = None,
    patch_size: PatchSizeOpt = None,
    embed_dim: EmbedDimOpt = None,
    depth: DepthOpt = None,
    num_heads: HeadsOpt = None,
    steps: StepsOpt = None,
    schedule_steps: ScheduleStepsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    modality: str | None = typer.Option(
        None, "--modality",
        help="Augmentation preset: xray (default; no flip, no colour jitter), ct, mri, derm, "
             "fundus, natural."),
    augment: list[str] | None = typer.Option(
        None, "--augment", help="Override an augmentation field, e.g. --augment color_jitter=0.2."),
    option: list[str] | None = typer.Option(
        None, "--option", help="Objective option, e.g. --option mask_ratio=0.6 (repeatable)."),
    text_column: str | None = typer.Option(None, "--text-column",
                                           help="Caption column for clip/siglip."),
    text_template: str | None = typer.Option(None, "--text-template",
                                             help="Caption template, e.g. 'chest x-ray: {}'."),
    sampling: SamplingOpt = None,
    balance_by: BalanceOpt = None,
    target: list[str] | None = typer.Option(
        None, "--target", help="Target composition, e.g. --target female=0.5 --target male=0.5."),
    keep_column: KeepOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    checkpoint_every: CkptOpt = None,
    probe_every: ProbeEveryOpt = None,
    probe_manifest: ProbeManifestOpt = None,
    probe_label: ProbeLabelOpt = None,
    probe_sensitive: ProbeSensitiveOpt = None,
    probe_max_samples: ProbeMaxOpt = None,
    probe_bootstrap: ProbeBootOpt = None,
    probe_permutations: ProbePermOpt = None,
    select: SelectOpt = None,
    track_emissions: EmissionsOpt = False,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
) -> None:
    """Pre-train a ViT with a self-supervised or image-text objective."""
    from ..pretrain import pretrain

    targets = {k: float(v) for k, v in _parse_values(target, option="--target").items()} or None
    cfg = _common(
        config, manifest=manifest, root=root, balance_by=balance_by,
        track_emissions=track_emissions, allow_outside_root=allow_outside_root, objective=objective, path_column=path_column,
        model=model, image_size=image_size, patch_size=patch_size, embed_dim=embed_dim,
        depth=depth, num_heads=num_heads, steps=steps, schedule_steps=schedule_steps,
        batch_size=batch_size, lr=lr, modality=modality, text_column=text_column, text_template=text_template,
        sampling=sampling, target=targets, keep_column=keep_column, seed=seed, device=device,
        checkpoint_every=checkpoint_every, probe_every=probe_every, probe_manifest=probe_manifest,
        probe_label=probe_label, probe_sensitive=probe_sensitive, probe_max_samples=probe_max_samples,
        probe_bootstrap=probe_bootstrap, probe_permutations=probe_permutations, select=select)
    if augment:
        cfg["augment"] = {**cfg.get("augment", {}), **_parse_values(augment, option="--augment")}
    if option:
        cfg["options"] = {**cfg.get("options", {}), **_parse_values(option, option="--option")}
    for key in ("objective", "manifest"):
        if key not in cfg:
            raise FairfoundryError(f"--{key} is required (or a CONFIG.yaml with {key}: ...)")
    summary = _run(pretrain, f"pretrain {cfg['objective']}", cfg, out=out, overwrite=overwrite,
                   resume=resume)
    typer.echo(json.dumps({
        "objective": summary["objective"], "steps": summary["steps"],
        "first_loss": round(summary["first_loss"], 4), "final_loss": round(summary["final_loss"], 4),
        "images_per_s": round(summary["images_per_s"] or 0.0, 1), "out": str(out),
        **_probe_echo(summary),
    }))


def _probe_echo(summary: dict) -> dict:
    probe = summary.get("probe")
    if not probe:
        return {}
    return {"probes": probe["probes"], "selected": probe.get("selected")}


_DISTILL_EPILOG = (
    "Examples:\n\n"
    "  fairfoundry distill --manifest manifest.csv --teacher fairfoundry-tiny --teacher rad-dino "
    "--image-size 64 --steps 500 --out runs/student\n\n"
    "  fairfoundry distill --manifest manifest.csv --teacher rad-dino --teacher dinov2-small "
    "--teacher-weighting worst_group --weight-label Effusion --weight-groups sex "
    "--min-worst-group-auc 0.6 --out runs/fair-student\n\n"
    "  fairfoundry distill config.yaml --out runs/student   (teachers: [{name: ..., weight: ...}])\n\n"
    "Outputs: OUT/encoder.safetensors (student ViT), OUT/teachers.csv (weights, dropped, "
    "worst-group AUC), OUT/loss_log.csv, OUT/composition.csv, OUT/config.yaml, OUT/checkpoint/, "
    "OUT/teacher_cache/ (cached teacher features), OUT/model_card.md/.json, OUT/run.json (written last)."
)


@app.command("distill", epilog=_DISTILL_EPILOG)
def distill_command(
    config: ConfigArg = None,
    out: OutOpt = ...,
    manifest: ManifestOpt = None,
    path_column: PathColumnOpt = None,
    root: RootOpt = None,
    allow_outside_root: AllowOutsideOpt = False,
    teacher: list[str] | None = typer.Option(
        None, "--teacher", help="Teacher from the model zoo (preset, backend:id or path); repeat."),
    model: ModelOpt = None,
    image_size: ImageSizeOpt = None,
    patch_size: PatchSizeOpt = None,
    embed_dim: EmbedDimOpt = None,
    depth: DepthOpt = None,
    num_heads: HeadsOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    feature_grid: int | None = typer.Option(
        None, "--feature-grid", help="Grid of the distilled patch features (default: per "
        "teacher, the coarser of its grid and the student's)."),
    teacher_weighting: str | None = typer.Option(
        None, "--teacher-weighting", help="equal (default), fixed or worst_group."),
    weight_label: str | None = typer.Option(
        None, "--weight-label", help="0/1 label column used to measure teachers per group."),
    weight_groups: list[str] | None = typer.Option(
        None, "--weight-groups", help="Attribute(s) defining the groups, e.g. sex,age_group."),
    min_worst_group_auc: float | None = typer.Option(
        None, "--min-worst-group-auc", help="Drop teachers whose worst-group AUC is below this."),
    teacher_dropout: float | None = typer.Option(
        None, "--teacher-dropout", help="Probability of dropping each teacher's loss per step."),
    sampling: SamplingOpt = None,
    balance_by: BalanceOpt = None,
    keep_column: KeepOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    checkpoint_every: CkptOpt = None,
    probe_every: ProbeEveryOpt = None,
    probe_manifest: ProbeManifestOpt = None,
    probe_label: ProbeLabelOpt = None,
    probe_sensitive: ProbeSensitiveOpt = None,
    probe_max_samples: ProbeMaxOpt = None,
    probe_bootstrap: ProbeBootOpt = None,
    probe_permutations: ProbePermOpt = None,
    select: SelectOpt = None,
    track_emissions: EmissionsOpt = False,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
) -> None:
    """Distil a student ViT from several frozen model-zoo teachers (knowledge agglomeration)."""
    from ..pretrain import distill

    cfg = _common(
        config, manifest=manifest, root=root, balance_by=balance_by,
        track_emissions=track_emissions, allow_outside_root=allow_outside_root, path_column=path_column,
        teachers=list(teacher) if teacher else None, model=model, image_size=image_size,
        patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
        steps=steps, batch_size=batch_size, lr=lr, feature_grid=feature_grid,
        teacher_weighting=teacher_weighting, weight_label=weight_label,
        weight_groups=_split(weight_groups), min_worst_group_auc=min_worst_group_auc,
        teacher_dropout=teacher_dropout, sampling=sampling, keep_column=keep_column, seed=seed,
        device=device, checkpoint_every=checkpoint_every, probe_every=probe_every,
        probe_manifest=probe_manifest, probe_label=probe_label, probe_sensitive=probe_sensitive,
        probe_max_samples=probe_max_samples, probe_bootstrap=probe_bootstrap,
        probe_permutations=probe_permutations, select=select)
    if "manifest" not in cfg:
        raise FairfoundryError("--manifest is required (or a CONFIG.yaml with manifest: ...)")
    summary = _run(distill, "distill", cfg, out=out, overwrite=overwrite, resume=resume)
    typer.echo(json.dumps({
        "steps": summary["steps"], "first_loss": round(summary["first_loss"], 4),
        "final_loss": round(summary["final_loss"], 4),
        "teachers": {t["teacher"]: round(t["weight"], 4) for t in summary["teachers"]},
        "out": str(out), **_probe_echo(summary),
    }))

#: distill's --model is the student; a teacher the zoo cannot load was given with --teacher
flag_aliases("distill", {"--model": "--teacher"})
