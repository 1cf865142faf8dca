"""A fit run: embeddings + manifest + head + mitigation(s) + selection + seeds -> a run directory.

:func:`fit_run` is what ``fairfoundry fit`` calls. For each (method, seed) it trains a head with
the one training loop, selects the checkpoint on validation only, applies post-processing
fitted on validation only, writes per-sample predictions for every split, evaluates them with
:func:`fairfoundry.evaluate` (thresholds on validation, bootstrap CIs on test), and writes the
weights, a model card and the emissions estimate. With several methods or seeds each run gets
its own sub-directory and a comparison (table + utility-vs-fairness plot with the Pareto front)
is written at the top.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._errors import FairfoundryError
from ..groups import is_known

__all__ = ["FitConfig", "MethodSpec", "fit_run", "load_fit_config", "RUN_FILES"]

log = logging.getLogger(__name__)

#: adaptations that fine-tune from images (the others work on embeddings)
_FINE_TUNE = ("lora", "full", "partial", "frozen")

#: files in one run directory
RUN_FILES = ("predictions.parquet", "head.safetensors", "head.json", "config.yaml", "history.csv",
             "evaluation/evaluation.csv", "evaluation/summary.json", "evaluation/report.html",
             "model_card.md", "model_card.json", "emissions.json", "run.json")


class MethodSpec(BaseModel):
    """One mitigation: registry ``name`` and its keyword ``args``."""

    model_config = ConfigDict(extra="forbid")
    name: str = "erm"
    args: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        if not self.args:
            return self.name
        return self.name + "(" + ",".join(f"{k}={v}" for k, v in sorted(self.args.items())) + ")"


class FitConfig(BaseModel):
    """Settings of ``fairfoundry fit`` (YAML keys = these field names; unknown keys are errors).

    Attributes
    ----------
    embeddings : embed directory, ``.npy`` aligned with the manifest rows, or Parquet keyed by
        ``sample_id``.
    encoder : instead of ``embeddings``: an encoder of :mod:`fairfoundry.models` (preset,
        ``backend:id`` or checkpoint); the manifest's images are embedded first (cached by
        :func:`fairfoundry.models.extract_embeddings`) and kept in ``OUT/embeddings``.
    encoder_weights, encoder_kwargs : passed to the encoder loader.
    adaptation : ``probe`` (head on frozen, cached embeddings; the default), or from images with
        ``encoder``: ``lora`` (LoRA on the encoder + linear head), ``full`` (every weight),
        ``partial`` (the encoder's last ``partial_blocks`` blocks and the layers after them, see
        :func:`fairfoundry.adapt.freeze_all_but_last_blocks`) or ``frozen`` (linear head trained
        through the frozen encoder); or, with a CLIP-style
        ``encoder`` (a text tower): ``zero-shot`` (class prompts, nothing trained) or
        ``clip-adapter`` (CLIP-Adapter on the frozen image embeddings), see
        :mod:`fairfoundry.pipeline._zeroshot`.
    prompts : zero-shot prompt templates with ``{label}`` (default: chest X-ray templates).
    class_prompts : label column -> ``[negative, positive]`` class descriptions (default
        ``["no <label>", "<label>"]`` from the column name).
    adapter_ratios, adapter_lrs : CLIP-Adapter grid (residual ratio, learning rate; default lrs
        ``[lr, 10 lr]``), every candidate selected on validation by ``select``.
    adapter_activation : CLIP-Adapter bottleneck activation (``leaky_relu`` default: the paper's
        ``relu`` adapter can die and then equals zero-shot).
    hallucination_threshold, hallucination_min_events : zero-shot hallucination table: the fixed
        confidence of a "confident" positive call, and the events below which a group is "too
        few to judge".
    lora_r, lora_alpha, lora_target : LoRA rank, scale and target layer names.
    partial_blocks : ``adaptation: partial``: how many of the encoder's last blocks are trained
        (default 2; an error with any other adaptation).
    manifest : CSV/Parquet with ``sample_id``, the label(s), the sensitive attributes and
        ``split`` (train/val/test).
    label : one label column or a list (multi-label).
    sensitive : attribute columns; mitigations act on their intersection, the evaluation
        reports each one.
    head : ``linear`` or ``mlp``.
    methods : mitigations to run (``erm`` is the reference; see ``fairfoundry fit --list-methods``).
    select : ``overall_auc``, ``worst_group_auc``, ``dto`` or ``loss`` (on validation only).
    seeds : one run per seed.
    bootstrap : bootstrap resamples for the test CIs.
    emissions : estimate energy and CO2 with codecarbon's offline tracker.
    html : write each run's ``evaluation/report.html`` (a few seconds per run; the CSV/JSON and
        the comparison page are always written).
    probe_every : fine-tuning from images (``lora`` / ``partial`` / ``full``): run the fairness probe of
        :mod:`fairfoundry.pretrain` on the fine-tuned backbone every this many steps (and at the
        start and end) on the validation split, writing ``probe.csv`` as pre-training does.
    probe_bootstrap : bootstrap replicates of the probe's CIs.
    probe_permutations : permutations of the probe's attribute-leakage test.
    """

    model_config = ConfigDict(extra="forbid")
    embeddings: str | None = None
    manifest: str
    encoder: str | None = None
    encoder_weights: str | None = None
    encoder_kwargs: dict[str, Any] = Field(default_factory=dict)
    adaptation: Literal["probe", "lora", "full", "partial", "frozen", "zero-shot", "clip-adapter"] = "probe"
    prompts: list[str] | None = None
    class_prompts: dict[str, list[str]] = Field(default_factory=dict)
    adapter_ratios: list[float] = Field(default_factory=lambda: [0.2, 0.6])
    adapter_lrs: list[float] | None = None
    adapter_activation: Literal["relu", "leaky_relu"] = "leaky_relu"
    hallucination_threshold: float = Field(0.9, gt=0, lt=1)
    hallucination_min_events: int = 10
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_target: list[str] | None = None
    partial_blocks: int | None = Field(None, ge=1)
    label: str | list[str]
    sensitive: list[str]
    split_col: str = "split"
    allow_outside_root: bool = False  # relative image paths may climb out of the manifest's folder
    head: Literal["linear", "mlp"] = "linear"
    hidden: int = 256
    dropout: float = 0.1
    epochs: int = 30
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: Literal["auto", "adamw", "sgd", "lbfgs"] = "auto"
    patience: int | None = 5
    methods: list[MethodSpec] = Field(default_factory=lambda: [MethodSpec()])
    select: Literal["overall_auc", "worst_group_auc", "dto", "loss"] = "overall_auc"
    seeds: list[int] = Field(default_factory=lambda: [0])
    device: str = "cpu"
    bootstrap: int = 200
    bins: dict[str, list[float]] = Field(default_factory=dict)
    emissions: bool = True
    html: bool = True
    country_iso_code: str = "USA"
    intended_use: str = ("Research on the fairness of medical image classifiers; not for clinical "
                         "decisions without local validation.")
    probe_every: int | None = Field(None, ge=1)
    probe_bootstrap: int = Field(100, ge=0)
    probe_permutations: int = Field(99, ge=0)

    @field_validator("sensitive", "seeds")
    @classmethod
    def _nonempty(cls, v):
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("adaptation", mode="before")
    @classmethod
    def _adaptation_alias(cls, v):  # zero_shot / clip_adapter spelled with underscores
        return v.replace("_", "-") if isinstance(v, str) and v in ("zero_shot", "clip_adapter") else v

    @field_validator("adapter_ratios")
    @classmethod
    def _ratios(cls, v):
        if not v or any(not 0 < r <= 1 for r in v):
            raise ValueError("CLIP-Adapter ratios must be a non-empty list of values in (0, 1]")
        return v

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, v):
        out = []
        for m in v or []:
            out.append({"name": m} if isinstance(m, str) else m)
        return out

    def model_post_init(self, __context) -> None:
        if (self.embeddings is None) == (self.encoder is None):
            raise ValueError("give exactly one of 'embeddings' (cached) or 'encoder' (embed the manifest's images)")
        if self.adaptation in ("zero-shot", "clip-adapter") and self.encoder is None:
            raise ValueError(f"adaptation {self.adaptation!r} needs the encoder's text tower: give 'encoder' "
                             "(a CLIP-style model), not 'embeddings'")
        if self.adaptation != "probe" and self.encoder is None:
            raise ValueError(f"adaptation {self.adaptation!r} fine-tunes from images: it needs 'encoder', "
                             "not 'embeddings'")
        if self.probe_every is not None and self.adaptation == "probe":
            raise ValueError("probe_every probes an encoder while it is fine-tuned: it needs adaptation lora, "
                             "partial or full (with adaptation 'probe' the encoder is frozen and its probe never changes)")
        if self.partial_blocks is not None and self.adaptation != "partial":
            raise ValueError(f"partial_blocks is for adaptation partial, not {self.adaptation!r}")
        if self.adaptation not in ("zero-shot", "clip-adapter") and (self.prompts is not None or self.class_prompts):
            raise ValueError("prompts and class_prompts are for adaptation zero-shot or clip-adapter, not "
                             f"{self.adaptation!r}")
        if self.adaptation != "probe" and self.optimizer not in ("auto", "adamw"):
            raise ValueError(f"optimizer {self.optimizer!r} is for heads on embeddings; fine-tuning "
                             f"(adaptation {self.adaptation!r}) trains with AdamW")

    @property
    def labels(self) -> list[str]:
        return [self.label] if isinstance(self.label, str) else list(self.label)


def load_fit_config(source: str | os.PathLike | dict, **overrides) -> FitConfig:
    """Build a :class:`FitConfig` from a YAML file or a dict (relative paths are relative to the file)."""
    from .._io import read_yaml_mapping

    where = "the fit configuration"
    base = Path(".")
    if isinstance(source, dict):
        data = dict(source)
    else:
        path = Path(source)
        where = str(path)
        data = read_yaml_mapping(path, what="config", keys_hint="embeddings, manifest, label, ...")
        base = path.parent
        for key in ("embeddings", "manifest"):
            if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
                data[key] = str(base / data[key])
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return FitConfig(**data)
    except ValidationError as exc:
        from .._values import pydantic_error

        raise pydantic_error(exc, where=where, model=FitConfig) from exc


def _instantiate(spec: MethodSpec):
    from ._train import instantiate_method

    return instantiate_method(spec.name, spec.args)


def _predictions_frame(manifest, scores, y, labels, sensitive, split_col):
    import pandas as pd

    out = pd.DataFrame({"sample_id": manifest["sample_id"].astype(str).to_numpy(),
                        "split": manifest[split_col].astype(str).to_numpy()})
    if len(labels) == 1:
        out["y_true"] = y[:, 0]
        out["y_score"] = scores.reshape(len(out), -1)[:, 0]
    else:
        for k, lab in enumerate(labels):
            out[f"y_true_{lab}"] = y[:, k]
            out[f"y_score_{lab}"] = scores[:, k]
    for c in sensitive:
        out[c] = manifest[c].to_numpy()
    if "patient_id" in manifest.columns:
        out["patient_id"] = manifest["patient_id"].astype(str).to_numpy()
    return out


def resolve_optimizer(cfg: FitConfig) -> str:
    """``optimizer: auto``: full-batch L-BFGS for a linear probe when every method of the grid is
    ERM or post-processing (a convex problem; as fast as scikit-learn), AdamW otherwise -- one
    optimizer for the whole grid, so methods are compared under the same training."""
    from ..mitigate import load_mitigations

    MITIGATIONS = load_mitigations()
    if cfg.optimizer != "auto":
        return cfg.optimizer
    plain = all(MITIGATIONS[m.name].stage in ("none", "post") for m in cfg.methods if m.name in MITIGATIONS)
    return "lbfgs" if plain and cfg.head == "linear" and cfg.adaptation == "probe" else "adamw"


def _one_run(cfg: FitConfig, spec: MethodSpec, seed: int, X, y, manifest, groups, stage_dir: Path,
             progress=None, zero_shot=None) -> dict:
    """Train, select, post-process, predict, evaluate and document one (method, seed)."""
    import pandas as pd
    import yaml

    from .._io import write_json_atomic, write_table_atomic, write_text_atomic
    from ..adapt import HeadClassifier
    from ..evaluation import evaluate
    from ..mitigate import MITIGATIONS
    from ..mitigate._card import write_model_card
    from ..mitigate._inputs import effective_bins
    from ._train import train_and_score

    t0 = time.perf_counter()
    split = manifest[cfg.split_col].astype(str).to_numpy()
    tr, va = split == "train", split == "val"
    labels = cfg.labels
    y_fit = y[:, 0] if len(labels) == 1 else y
    keep_tr = tr & ~np.isnan(y).all(axis=1)
    keep_va = va & ~np.isnan(y).all(axis=1)
    if len(labels) == 1:
        keep_tr &= ~np.isnan(y[:, 0])
        keep_va &= ~np.isnan(y[:, 0])

    probes: dict = {}

    def make_estimator(hooks):
        if zero_shot is not None:  # zero-shot CLIP / CLIP-Adapter on the encoder's embeddings
            from ._zeroshot import make_zero_shot_estimator

            return make_zero_shot_estimator(cfg, zero_shot, hooks, seed=seed, progress=progress)
        if cfg.adaptation == "probe":
            return HeadClassifier(cfg.head, hidden=cfg.hidden, dropout=cfg.dropout,
                                  epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                                  weight_decay=cfg.weight_decay, hooks=hooks,
                                  optimizer=resolve_optimizer(cfg), select=cfg.select,
                                  patience=cfg.patience, seed=seed, device=cfg.device,
                                  track_emissions=cfg.emissions,
                                  country_iso_code=cfg.country_iso_code, progress=progress)
        # fine-tuning from images: a fresh copy of the encoder for every run
        from ..adapt import EncoderClassifier
        from ..models import load_encoder

        encoder = load_encoder(cfg.encoder, weights=cfg.encoder_weights, device=cfg.device,
                               seed=seed, model_kwargs=cfg.encoder_kwargs or None)
        if cfg.probe_every:  # the fairness probe of pre-training, on the fine-tuned backbone
            from ..pretrain._probe import image_probe

            probe_hook, probes["tracker"] = image_probe(
                manifest=cfg.manifest, label=labels[0], sensitive=cfg.sensitive, every=cfg.probe_every,
                preprocess=encoder.preprocess, out=stage_dir, split_column=cfg.split_col,
                bootstrap=cfg.probe_bootstrap, permutations=cfg.probe_permutations, seed=seed,
                select=cfg.select if cfg.select != "loss" else "worst_group_auc")  # reported on the card
            hooks = [*hooks, probe_hook]
        return EncoderClassifier(encoder, mode=cfg.adaptation, lora_r=cfg.lora_r,
                                 lora_alpha=cfg.lora_alpha, lora_target=cfg.lora_target,
                                 partial_blocks=cfg.partial_blocks or 2,
                                 epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                                 weight_decay=cfg.weight_decay, hooks=hooks, select=cfg.select,
                                 patience=cfg.patience, seed=seed, device=cfg.device,
                                 track_emissions=cfg.emissions,
                                 country_iso_code=cfg.country_iso_code, progress=progress)

    if len(labels) != 1 and MITIGATIONS[spec.name].stage == "post":
        raise FairfoundryError(f"post-processing method {spec.name!r} supports one label, got "
                               f"{len(labels)}")
    trained = train_and_score(spec.name, spec.args, X=X, y=y_fit, groups=groups, train=keep_tr,
                              val=keep_va, make_estimator=make_estimator,
                              images=cfg.adaptation in _FINE_TUNE, scored=va | (split == "test"))
    warnings: list[str] = list(trained.warnings)
    est, stage, scores, threshold = (trained.estimator, trained.stage, trained.scores,
                                     trained.threshold)
    preds = _predictions_frame(manifest, scores, y, labels, cfg.sensitive, cfg.split_col)
    preds["method"] = spec.label  # run metadata, so runs can be concatenated
    preds["seed"] = seed
    write_table_atomic(stage_dir / "predictions.parquet", preds)
    est.save(stage_dir)
    hist = pd.DataFrame(est.history_)
    write_table_atomic(stage_dir / "history.csv", hist if len(hist) else pd.DataFrame({"epoch": []}))
    # evaluation on test, thresholds on validation, CIs by bootstrap (clustered by patient if known)
    ev_labels = ["y_true"] if len(labels) == 1 else [f"y_true_{lab}" for lab in labels]
    ev_scores = ["y_score"] if len(labels) == 1 else [f"y_score_{lab}" for lab in labels]
    has_test = (preds["split"] == "test").any()
    ev = None
    if has_test:
        ev = evaluate(preds, label=ev_labels if len(ev_labels) > 1 else ev_labels[0],
                      score=ev_scores if len(ev_scores) > 1 else ev_scores[0], sensitive=cfg.sensitive,
                      split_col="split", report_split="test", threshold=threshold, threshold_split="val",
                      bootstrap=cfg.bootstrap, cluster="patient_id" if "patient_id" in preds.columns else None,
                      bins=effective_bins(manifest, cfg.sensitive, cfg.bins) or None, seed=seed)
        ev.to_csv(stage_dir / "evaluation" / "evaluation.csv")
        ev.to_json(stage_dir / "evaluation" / "summary.json")
        if cfg.html:
            ev.to_html(stage_dir / "evaluation" / "report.html")
        warnings += list(ev.warnings)
    else:
        warnings.append("no test rows: nothing was evaluated")
    hallucination = None
    if zero_shot is not None:  # confident positive calls on absent findings, by group (test)
        from ._zeroshot import write_hallucination

        hallucination = write_hallucination(stage_dir, preds, cfg, seed=seed, manifest=manifest)
    emissions = est.result_.emissions or {"tracker": None, "note": "emissions tracking off or codecarbon unavailable"}
    write_json_atomic(stage_dir / "emissions.json", emissions)
    run_cfg = cfg.model_dump()
    run_cfg.update(methods=[spec.model_dump()], seeds=[seed])
    for key in ("embeddings", "manifest"):  # absolute, so the file re-runs from anywhere
        if run_cfg.get(key):
            run_cfg[key] = str(Path(run_cfg[key]).resolve())
    write_text_atomic(stage_dir / "config.yaml", yaml.safe_dump(run_cfg, sort_keys=False))
    info = {
        "method": spec.name, "method_label": spec.label, "stage": stage, "seed": seed,
        "optimizer": resolve_optimizer(cfg) if cfg.adaptation == "probe" else cfg.optimizer,
        "adaptation": cfg.adaptation, "trainable_share": getattr(est, "trainable_share_", None),
        "selected": est.selected_, "epochs_run": est.result_.epochs_run,
        "stopped_early": est.result_.stopped_early, "seconds": time.perf_counter() - t0,
        "n": {s: int((split == s).sum()) for s in ("train", "val", "test")},
        "warnings": warnings,
    }
    if probes.get("tracker") is not None:
        info["probe"] = probes["tracker"].finish()
    extra_md = None
    if zero_shot is not None:
        from ._zeroshot import hallucination_markdown

        info["zero_shot"] = zero_shot.info()
        for key in ("candidates_", "ratio_", "lr_", "active_fraction_"):
            if hasattr(est, key):
                info.setdefault("clip_adapter", {})[key.rstrip("_")] = getattr(est, key)
        info["hallucination"] = None if hallucination is None else {
            k: v for k, v in hallucination.items() if k != "per_group"}
        extra_md = hallucination_markdown(hallucination)
    extra = {"hallucination": hallucination} if zero_shot is not None else None
    if info.get("probe"):  # the fairness probe of fine-tuning and its best step, on the card
        from ..pretrain._probe import probe_card_lines

        epoch = (info.get("selected") or {}).get("epoch", "last")
        note = (f"Reported, not applied: this run's weights are the checkpoint chosen per epoch by `{cfg.select}` "
                f"on the validation predictions (epoch {epoch}).")
        extra_md = [*(extra_md or []), "## Fairness probe during fine-tuning (validation, 95% CI)", "",
                    *probe_card_lines(info["probe"], selection=note)]
        extra = {**(extra or {}), "fairness_probe": info["probe"]}
    write_model_card(stage_dir, cfg=cfg, spec=spec, seed=seed, info=info, evaluation=ev, manifest=manifest,
                     groups=groups, y=y, emissions=emissions, extra_md=extra_md, extra=extra)
    test_preds = preds[preds["split"] == "test"].reset_index(drop=True)
    run_thresholds = (ev.thresholds["threshold"].astype(float).tolist() if ev is not None else None)
    return {**info, "evaluation": ev, "test_predictions": test_preds, "thresholds": run_thresholds}


#: keys of a run's result that are data, not metadata (kept out of run.json)
_NOT_IN_SIDECAR = ("evaluation", "test_predictions", "thresholds")


def _compare(cfg: FitConfig, runs: list[dict], table, manifest):
    """Paired differences to ERM (:func:`fairfoundry.mitigate.compare_runs`): over seeds when
    there are two or more, else a paired bootstrap over the shared test samples."""
    from ..mitigate._compare import compare_runs, paired_replicates
    from ..mitigate._inputs import effective_bins

    reps = est = None
    events = None
    done = [r for r in runs if r["evaluation"] is not None and r["thresholds"] is not None]
    if done:
        bins = effective_bins(manifest, cfg.sensitive, cfg.bins) or None
        seed = cfg.seeds[0]
        one = {r["method_label"]: r for r in done if r["seed"] == seed}
        est, reps, events = paired_replicates(
            {m: r["test_predictions"] for m, r in one.items()},
            thresholds={m: r["thresholds"] for m, r in one.items()}, sensitive=cfg.sensitive,
            labels=cfg.labels, bins=bins, n_bootstrap=cfg.bootstrap if len(cfg.seeds) < 2 else 0,
            seed=seed)
        if len(cfg.seeds) >= 2:
            reps = est = None
    return compare_runs(table, sensitive=cfg.sensitive, replicates=reps, estimates=est, events=events)


def _summary_row(run: dict, sensitive: list[str]) -> dict:
    ev = run["evaluation"]
    row = {"method": run["method_label"], "seed": run["seed"], "stage": run["stage"]}
    if ev is None:
        return row
    bg, st = ev.by_group, ev.summary_table
    lab = ev.labels[0] if len(ev.labels) == 1 else "macro"
    o = bg[(bg["metric"] == "auc") & (bg["attribute"] == "overall") & (bg["label"] == lab)]
    if len(o):
        row.update(auc=o["estimate"].iloc[0], auc_ci_low=o["ci_low"].iloc[0], auc_ci_high=o["ci_high"].iloc[0])
    for attr in sensitive:
        for metric in ("auc_worst_group", "auc_gap", "equalized_odds_difference", "equal_opportunity_difference",
                       "demographic_parity_difference", "ece_gap"):
            r = st[(st["metric"] == metric) & (st["attribute"] == attr) & (st["label"] == lab)]
            if len(r):
                row[f"{attr}:{metric}"] = r["estimate"].iloc[0]
                row[f"{attr}:{metric}_ci_low"] = r["ci_low"].iloc[0]
                row[f"{attr}:{metric}_ci_high"] = r["ci_high"].iloc[0]
    return row


def fit_run(cfg: FitConfig, out: str | os.PathLike, *, overwrite: bool = False, progress=None) -> Path:
    """Run every (method, seed) of ``cfg`` and write the run directory ``out``.

    One method and one seed: the files of :data:`RUN_FILES` directly in ``out``. Otherwise one
    sub-directory ``<method>-seed<k>`` per run plus ``comparison.csv`` and ``comparison.html``
    (utility vs fairness gap with CIs, Pareto front). Everything is staged and moved into
    ``out`` only when all runs finished (no partial output on error).

    Returns
    -------
    pathlib.Path of ``out``.
    """

    from .._io import (
        prepare_out_dir,
    )
    from ..data import read_manifest
    from ..mitigate._inputs import load_embeddings, prepare_columns, training_groups

    out = prepare_out_dir(out, overwrite=overwrite, outputs=None)
    manifest = read_manifest(cfg.manifest, required=("sample_id",))
    labels = cfg.labels
    y = prepare_columns(manifest, labels=labels, sensitive=cfg.sensitive, split_col=cfg.split_col,
                        where=f"manifest {cfg.manifest}")
    staged_embeddings = None
    zero_shot = None
    if cfg.adaptation in ("zero-shot", "clip-adapter"):  # fail fast: text tower, weights, prompts, methods
        from ._zeroshot import check_zero_shot_methods, zero_shot_text

        check_zero_shot_methods(cfg, cfg.methods)
        zero_shot = zero_shot_text(cfg)
    if cfg.adaptation in _FINE_TUNE:
        if "path" not in manifest.columns:
            raise FairfoundryError(f"manifest {cfg.manifest} has no 'path' column: fine-tuning needs the images")
        from ..data import manifest_root, resolve_paths

        X = np.array(resolve_paths(manifest["path"].astype(str), root=manifest_root(manifest),
                                   source=f"manifest {cfg.manifest}",
                                   allow_outside_root=cfg.allow_outside_root), dtype=object)
        emb_info = {"kind": "images", "encoder": cfg.encoder, "adaptation": cfg.adaptation}
    elif cfg.encoder is not None:
        import tempfile

        from ..models import extract_embeddings

        staged_embeddings = Path(tempfile.mkdtemp(prefix=".fit-embed-", dir=out.parent if out.parent.exists() else None))
        extract_embeddings(cfg.manifest, cfg.encoder, out=staged_embeddings / "embeddings", weights=cfg.encoder_weights,
                           device=cfg.device, model_kwargs=cfg.encoder_kwargs or None, overwrite=True,
                           allow_outside_root=cfg.allow_outside_root)
        X, emb_info = load_embeddings(staged_embeddings / "embeddings", manifest)
        emb_info["encoder"] = cfg.encoder
    else:
        X, emb_info = load_embeddings(cfg.embeddings, manifest)
    groups = training_groups(manifest, cfg.sensitive, bins=cfg.bins)
    specs = list(cfg.methods)
    in_train = manifest[cfg.split_col].astype(str).to_numpy() == "train"
    known = sorted({g for g in groups[in_train] if is_known(g)})
    for spec in specs:  # fail fast on a bad method before any training
        _, stage_name = _instantiate(spec)
        if stage_name != "none" and len(known) < 2:
            raise FairfoundryError(
                f"method {spec.name!r} needs the sensitive attribute(s) {', '.join(cfg.sensitive)} with at least two "
                f"known groups in the train split of {cfg.manifest}; found {known or 'none (all missing)'}",
                hint="record the attribute, choose another --sensitive, or run --method erm")
        if stage_name == "post" and len(labels) != 1:
            raise FairfoundryError(f"post-processing method {spec.name!r} works on one label; {len(labels)} given",
                                   hint="run it once per --label")
    names = [s.label for s in specs]
    if len(set(names)) != len(names):
        raise FairfoundryError("the same method (with the same arguments) is listed twice")
    multi = len(specs) > 1 or len(cfg.seeds) > 1
    runs = []
    try:
        _write_runs(cfg, specs, multi, X, y, manifest, groups, emb_info, out, runs, progress, staged_embeddings,
                    zero_shot=zero_shot)
    finally:
        if staged_embeddings is not None:
            import shutil

            shutil.rmtree(staged_embeddings, ignore_errors=True)
    return out


def _write_runs(cfg, specs, multi, X, y, manifest, groups, emb_info, out, runs, progress, staged_embeddings,
                zero_shot=None):
    import shutil

    import pandas as pd

    from .._io import (
        file_fingerprint,
        frame_fingerprint,
        staged_dir,
        write_json_atomic,
        write_sidecar,
        write_table_atomic,
    )
    from ..mitigate._compare import write_comparison

    with staged_dir(out) as stage:
        if staged_embeddings is not None:
            shutil.copytree(staged_embeddings / "embeddings", stage / "embeddings")
        for spec in specs:
            for seed in cfg.seeds:
                sub = stage / f"{spec.label}-seed{seed}" if multi else stage
                sub.mkdir(parents=True, exist_ok=True)
                log.info("fit %s seed %d", spec.label, seed)
                run = _one_run(cfg, spec, seed, X, y, manifest, groups, sub, progress=progress, zero_shot=zero_shot)
                write_sidecar(sub / "run.json", kind="fairfoundry.fit", config=cfg.model_dump(), seed=seed,
                              inputs={"manifest": file_fingerprint(cfg.manifest),
                                      "embeddings": emb_info, "manifest_rows": frame_fingerprint(manifest)},
                              run={k: v for k, v in run.items() if k not in _NOT_IN_SIDECAR})
                runs.append(run)
        if multi:
            table = pd.DataFrame([_summary_row(r, cfg.sensitive) for r in runs])
            write_table_atomic(stage / "comparison.csv", table, report=True)
            comparison = _compare(cfg, runs, table, manifest)
            write_table_atomic(stage / "comparison_to_erm.csv", comparison.differences, report=True)
            write_json_atomic(stage / "comparison.json", comparison.to_dict())
            write_comparison(stage / "comparison.html", table, sensitive=cfg.sensitive, config=cfg,
                             comparison=comparison)
            write_sidecar(stage / "run.json", kind="fairfoundry.fit-comparison", config=cfg.model_dump(),
                          seed=cfg.seeds[0], inputs={"manifest": file_fingerprint(cfg.manifest), "embeddings": emb_info},
                          runs=[f"{s.label}-seed{k}" for s in specs for k in cfg.seeds])
