"""``fairfoundry fit``: adapt a head on cached embeddings, with and without mitigation."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from .._errors import FairfoundryError
from ._app import app, flag_aliases
from ._common import parse_key_values, rich_progress

log = logging.getLogger(__name__)

#: the zoo's hints say --model / --weights (embed's flags); these commands call them so
ENCODER_FLAGS = {"--model": "--encoder", "--weights": "--encoder-weights"}
for _name in ("fit", "experiment baseline-audit"):
    flag_aliases(_name, ENCODER_FLAGS)

_EPILOG = (
    "Examples:\n\n"
    "  fairfoundry fit --embeddings emb/ --manifest manifest.csv --label Effusion --sensitive sex "
    "--head linear --method erm --method groupdro --seed 0 --seed 1 --out runs/effusion\n\n"
    "  fairfoundry fit --embeddings emb.npy --manifest m.parquet --label y --sensitive sex --sensitive age "
    "--method fair-penalty --method-arg weight=2 --method-arg variant=eo --select worst_group_auc --out run\n\n"
    "  fairfoundry fit config.yaml --out run      (keys: embeddings, manifest, label, sensitive, head, "
    "methods, select, seeds, epochs, ...; flags override the file)\n\n"
    "  fairfoundry fit --encoder open_clip:ViT-B-16 --adaptation zero-shot --prompt \"a chest x-ray with {label}\" "
    "--manifest m.csv --label Effusion --sensitive sex --out zs      (or --adaptation clip-adapter; also writes "
    "hallucination/: confident positive calls on absent findings by group)\n\n"
    "  fairfoundry fit --list-methods\n\n"
    "Outputs (per run): predictions.parquet (sample_id, split, y_true, y_score + attributes, every split), "
    "head.safetensors + head.json, history.csv (validation metrics per epoch), evaluation/ (evaluation.csv, "
    "summary.json, report.html: test with CIs, thresholds from val), model_card.md/.json, emissions.json, "
    "config.yaml, run.json. Several methods or seeds: one sub-directory per run plus comparison.csv and "
    "comparison.html (utility vs fairness, Pareto front)."
)


def _split_multi(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _method_specs(methods: list[str], method_args: list[str] | None) -> list[dict]:
    """``--method-arg k=v`` applies to the only method; with several use ``METHOD:k=v``."""
    specs = [{"name": m, "args": {}} for m in methods]
    for item in method_args or []:
        target = None
        if ":" in item.split("=", 1)[0]:
            target, item = item.split(":", 1)
        kv = parse_key_values([item], option="--method-arg")
        if target is None:
            if len(specs) != 1:
                raise FairfoundryError(f"--method-arg {item!r} is ambiguous with several --method",
                                       hint="prefix it with the method, e.g. --method-arg groupdro:eta=0.5")
            specs[0]["args"].update(kv)
            continue
        hit = [s for s in specs if s["name"] == target]
        if not hit:
            raise FairfoundryError(f"--method-arg names method {target!r}, which is not among --method",
                                   hint=f"methods given: {', '.join(methods)}")
        for s in hit:
            s["args"].update(kv)
    return specs


@app.command("fit", epilog=_EPILOG)
def fit_command(
    config: Path | None = typer.Argument(None, metavar="[CONFIG.yaml]",
                                         help="YAML run configuration; flags given too override its keys.",
                                         show_default=False),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", "-e",
        help="Cached embeddings: a `fairfoundry embed` directory, a .npy aligned with the manifest rows, "
             "or a Parquet keyed by sample_id."),
    encoder: str | None = typer.Option(
        None, "--encoder",
        help="Instead of --embeddings: embed the manifest's images with this encoder first (preset, backend:id "
             "or checkpoint; see `fairfoundry models list`), e.g. --encoder fairfoundry-tiny."),
    encoder_weights: str | None = typer.Option(
        None, "--encoder-weights", help="Weights for --encoder (a file, or 'random' for tests)."),
    adaptation: str | None = typer.Option(
        None, "--adaptation",
        help="probe (default: head on frozen embeddings), or with --encoder from images: lora, full, partial "
             "(the last --partial-blocks blocks) or frozen; "
             "with a CLIP-style --encoder: zero-shot (class prompts, nothing trained) or clip-adapter."),
    prompt: list[str] | None = typer.Option(
        None, "--prompt",
        help="Zero-shot / CLIP-Adapter prompt template with {label}, repeatable, e.g. --prompt \"a chest x-ray "
             "with {label}\" (default: four chest X-ray templates)."),
    prompts: Path | None = typer.Option(
        None, "--prompts",
        help="YAML file of zero-shot prompts: templates (list with {label}) and classes (label: [negative, "
             "positive] descriptions; default 'no <label>' / '<label>')."),
    lora_r: int | None = typer.Option(None, "--lora-r", help="LoRA rank (default 8)."),
    partial_blocks: int | None = typer.Option(
        None, "--partial-blocks", help="--adaptation partial: train the encoder's last N blocks (default 2)."),
    manifest: Path | None = typer.Option(
        None, "--manifest", "-m", help="Manifest (CSV/Parquet) with sample_id, label(s), attributes and split."),
    label: list[str] | None = typer.Option(
        None, "--label", "-l", help="0/1 label column; repeat or comma-separate for multi-label."),
    sensitive: list[str] | None = typer.Option(
        None, "--sensitive", "-a", help="Sensitive attribute column(s); mitigations act on their intersection."),
    head: str | None = typer.Option(None, "--head", help="linear (default) or mlp."),
    method: list[str] | None = typer.Option(
        None, "--method",
        help="Mitigation, repeatable, e.g. --method erm --method groupdro (default erm); "
             "`fairfoundry fit --list-methods` lists every registered method with its stage."),
    method_arg: list[str] | None = typer.Option(
        None, "--method-arg", help="Method argument KEY=VALUE (or METHOD:KEY=VALUE with several methods)."),
    select: str | None = typer.Option(
        None, "--select", help="Checkpoint selection on validation: overall_auc, worst_group_auc, dto or loss."),
    seed: list[int] | None = typer.Option(None, "--seed", help="Seed; repeat for several runs."),
    epochs: int | None = typer.Option(None, "--epochs", help="Maximum epochs (default 30, early stopping)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Rows per training batch."),
    lr: float | None = typer.Option(None, "--lr", help="AdamW learning rate (default 1e-3)."),
    optimizer: str | None = typer.Option(
        None, "--optimizer", help="auto (default: full-batch L-BFGS for a linear probe when every method is erm or "
        "post-processing, else AdamW), adamw, sgd or lbfgs."),
    bootstrap: int | None = typer.Option(None, "--bootstrap", help="Bootstrap resamples for test CIs (default 200)."),
    bins: list[str] | None = typer.Option(None, "--bins", help="Bins of a numeric attribute, e.g. age=40,60,80."),
    device: str | None = typer.Option(None, "--device", help="cpu (default), cuda, mps or auto."),
    no_emissions: bool = typer.Option(False, "--no-emissions", help="Do not estimate emissions with codecarbon."),
    no_html: bool = typer.Option(False, "--no-html", help="Skip each run's evaluation/report.html (faster grids)."),
    probe_every: int | None = typer.Option(
        None, "--probe-every", help="Fine-tuning from images: fairness probe of the backbone every N steps on "
        "the validation split (OUT/probe.csv, as pretrain writes)."),
    probe_bootstrap: int | None = typer.Option(
        None, "--probe-bootstrap", help="Bootstrap replicates of the probe's CIs (default 100)."),
    probe_permutations: int | None = typer.Option(
        None, "--probe-permutations", help="Permutations of the probe's attribute-leakage test (default 99)."),
    allow_outside_root: bool = typer.Option(
        False, "--allow-outside-root",
        help="Accept relative image paths (--encoder) that climb out of the manifest's folder (../)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run directory to write."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing, non-empty --out."),
    list_methods: bool = typer.Option(False, "--list-methods", help="List the mitigation methods and exit."),
) -> None:
    """Train a linear or MLP head on cached embeddings, with and without bias mitigation.

    Checkpoints and thresholds are chosen on the validation split only; test is evaluated once, with
    bootstrap confidence intervals, and every run writes predictions, weights, a model card and an
    emissions estimate.
    """
    from ..mitigate import list_mitigations

    if list_methods:
        for row in list_mitigations():
            typer.echo(f"{row['name']:<22} {row['stage']:<5} {row['summary']}")
        typer.echo("\nadaptations (--adaptation): probe, lora, full, partial, frozen, zero-shot (CLIP class prompts, nothing "
                   "trained; erm or post-processing), clip-adapter (CLIP-Adapter; training mitigations apply)")
        return
    from ..pipeline import fit_run, load_fit_config

    if out is None:
        raise FairfoundryError("--out is required", hint="e.g. --out runs/my-run")
    overrides: dict = {}
    if embeddings is not None:
        overrides["embeddings"] = str(embeddings)
    if manifest is not None:
        overrides["manifest"] = str(manifest)
    if encoder is not None:
        overrides["encoder"] = encoder
    if encoder_weights is not None:
        overrides["encoder_weights"] = encoder_weights
    labels = _split_multi(label)
    if labels:
        overrides["label"] = labels[0] if len(labels) == 1 else labels
    attrs = _split_multi(sensitive)
    if attrs:
        overrides["sensitive"] = attrs
    methods = _split_multi(method)
    zs_alias = {"zero-shot": "zero-shot", "zero_shot": "zero-shot", "clip-adapter": "clip-adapter",
                "clip_adapter": "clip-adapter"}
    named = [m for m in methods if m in zs_alias]
    if named:  # zero-shot / CLIP-Adapter are adaptations; accepted as --method when given alone
        if len(named) > 1 or (adaptation is not None and zs_alias[named[0]] != adaptation.replace("_", "-")):
            raise FairfoundryError(f"--method {named[0]} is an adaptation, not a mitigation",
                                   hint="give it as --adaptation zero-shot or --adaptation clip-adapter (one per "
                                        "fit run), with --method erm or other mitigations")
        adaptation = zs_alias[named[0]]
        methods = [m for m in methods if m not in zs_alias]
    if prompt is not None:
        overrides["prompts"] = list(prompt)
    if prompts is not None:
        from ..pipeline._zeroshot import load_prompts_file

        for k, v in load_prompts_file(prompts).items():
            overrides.setdefault(k, v)
    if methods:
        overrides["methods"] = _method_specs(methods, method_arg)
    elif method_arg:
        overrides["methods"] = _method_specs(["erm"], method_arg)
    if seed:
        overrides["seeds"] = list(seed)
    if bins:
        kv = parse_key_values(bins, option="--bins")
        try:
            overrides["bins"] = {k: [float(x) for x in v.split(",")] for k, v in kv.items()}
        except ValueError as exc:
            raise FairfoundryError(f"--bins expects numbers, e.g. age=40,60,80: {exc}") from exc
    for key, val in (("adaptation", adaptation), ("lora_r", lora_r), ("partial_blocks", partial_blocks),
                     ("head", head), ("select", select), ("epochs", epochs), ("batch_size", batch_size),
                     ("lr", lr), ("optimizer", optimizer), ("bootstrap", bootstrap), ("device", device),
                     ("probe_every", probe_every), ("probe_bootstrap", probe_bootstrap),
                     ("probe_permutations", probe_permutations)):
        if val is not None:
            overrides[key] = val
    if no_emissions:
        overrides["emissions"] = False
    if no_html:
        overrides["html"] = False
    if allow_outside_root:
        overrides["allow_outside_root"] = True
    if config is not None:
        cfg = load_fit_config(config, **overrides)
    else:
        missing = [f for f in ("manifest", "label", "sensitive") if f not in overrides]
        if "embeddings" not in overrides and "encoder" not in overrides:
            missing.insert(0, "embeddings")
        if missing:
            raise FairfoundryError(f"missing --{missing[0]}",
                                   hint="give CONFIG.yaml or --embeddings (or --encoder), --manifest, --label "
                                        "and --sensitive")
        cfg = load_fit_config(overrides)
    n_runs = len(cfg.methods) * len(cfg.seeds)
    with rich_progress("fit (steps)", total=None) as advance:
        result = fit_run(cfg, out, overwrite=overwrite, progress=advance)
    typer.echo(f"wrote {n_runs} run(s) to {result}")
    if n_runs > 1:
        typer.echo(f"  comparison: {Path(result) / 'comparison.html'}")
    else:
        typer.echo(f"  model card: {Path(result) / 'model_card.md'}")


experiment_app = typer.Typer(help="End-to-end experiments of a fairness study on the bundled real data.",
                             no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("baseline-audit")
def baseline_audit_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    manifest: Path | None = typer.Option(
        None, "--manifest", "-m", help="Manifest with images, labels and attributes (default: bundled NIH X-rays)."),
    encoder: str = typer.Option("fairfoundry-tiny", "--encoder", help="Zoo encoder whose features are audited."),
    encoder_weights: str | None = typer.Option(None, "--encoder-weights", help="Weights for --encoder."),
    label: list[str] | None = typer.Option(
        None, "--label", "-l", help="0/1 label(s) (default: Infiltration, Atelectasis, No_Finding)."),
    sensitive: list[str] | None = typer.Option(None, "--sensitive", "-a", help="Attributes (default: sex, age)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the training and the bootstrap."),
    bootstrap: int = typer.Option(500, "--bootstrap", help="Bootstrap resamples for the CIs."),
    device: str = typer.Option("cpu", "--device", help="cpu (default), cuda, mps or auto."),
    no_emissions: bool = typer.Option(False, "--no-emissions",
                                      help="Do not estimate emissions with codecarbon."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing, non-empty --out."),
    allow_outside_root: bool = typer.Option(
        False, "--allow-outside-root",
        help="Accept relative image paths that climb out of the manifest's folder (../)."),
) -> None:
    """Audit an encoder's features before any intervention: attribute probe + per-group linear probe with CIs.

    Example: fairfoundry experiment baseline-audit --out runs/baseline
    """
    from ..bench import baseline_audit

    labels = _split_multi(label) or ["Infiltration", "Atelectasis", "No_Finding"]
    attrs = _split_multi(sensitive) or ["sex", "age"]
    with rich_progress("baseline audit (steps)", total=None) as advance:
        result = baseline_audit(out, manifest=manifest, encoder=encoder, encoder_weights=encoder_weights,
                                labels=labels, sensitive=attrs, seed=seed, bootstrap=bootstrap, device=device,
                                emissions=not no_emissions, overwrite=overwrite, progress=advance,
                                allow_outside_root=allow_outside_root)
    typer.echo(f"wrote {result}")
    typer.echo(f"  report: {Path(result) / 'baseline_audit.html'}")
