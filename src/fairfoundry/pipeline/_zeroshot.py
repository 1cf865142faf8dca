r"""Zero-shot CLIP and CLIP-Adapter inside the fit pipeline (``fit --adaptation zero-shot``).

The image embeddings are the encoder's ``encode_image`` projections (extracted and cached like
any ``fit --encoder`` run); each label's class embeddings come from the encoder's text tower
with prompt templates (:func:`fairfoundry.adapt.text_classifier`). Two estimators with the
interface :func:`~fairfoundry.pipeline.train_and_score` expects (``fit`` with validation data,
``predict_score``, ``save``, ``history_``, ``selected_``, ``result_``):

- :class:`ZeroShotEstimator`: nothing is trained; its scores are
  :math:`\mathrm{softmax}(\tau\,[v^\top t_{neg}, v^\top t_{pos}])_{pos}` with the encoder's own
  logit scale :math:`\tau`. The decision threshold is chosen on validation by the evaluation
  (Youden's J on val, like every fit run), never on test.
- :class:`CLIPAdapterEstimator`: :class:`~fairfoundry.adapt.CLIPAdapterClassifier` trained on the
  train split for every candidate of a small hyper-parameter grid (residual ratio x learning
  rate); each candidate's epoch is selected on validation and the candidate with the best
  validation criterion is kept (test is never seen).

Both runs also write the zero-shot hallucination table
(:func:`fairfoundry.hallucination.zero_shot_hallucination_table`) on the test split.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError

__all__ = ["ZERO_SHOT_ADAPTATIONS", "CLIPAdapterEstimator", "ZeroShotEstimator", "ZeroShotText",
           "default_class_prompts", "load_prompts_file", "zero_shot_text"]

log = logging.getLogger(__name__)

#: adaptations of ``fit`` that classify with the encoder's text tower
ZERO_SHOT_ADAPTATIONS = ("zero-shot", "clip-adapter")

#: prompt templates of ``fit`` (``{label}`` is the class description), for chest X-rays by default
DEFAULT_PROMPTS = ("a chest x-ray showing {label}.", "a radiograph with {label}.",
                   "a medical image of {label}.", "{label}.")

# class descriptions of labels whose negative is not "no <finding>"
_SPECIAL = {"no finding": ["an abnormal finding", "no finding"],
            "normal": ["an abnormal finding", "a normal image"]}


def default_class_prompts(label: str) -> list[str]:
    """``[negative, positive]`` descriptions of a label column: ``Pleural_Effusion`` ->
    ``["no pleural effusion", "pleural effusion"]`` (``No_Finding``: an abnormal finding / no
    finding)."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", str(label)).replace("_", " ").replace("-", " ")
    name = " ".join(words.split()).lower()
    if name in _SPECIAL:
        return list(_SPECIAL[name])
    return [f"no {name}", name]


def _template(t: str) -> str:
    if "{label}" not in t:
        raise FairfoundryError(f"prompt template {t!r} has no '{{label}}' for the class description",
                               hint='e.g. --prompt "a chest x-ray with {label}"')
    return t.replace("{", "{{").replace("}", "}}").replace("{{label}}", "{}")


def load_prompts_file(path) -> dict:
    """Read a ``--prompts`` YAML file: ``templates`` (list of strings with ``{label}``) and/or
    ``classes`` (label column -> ``[negative, positive]`` descriptions)."""
    from .._io import read_yaml_mapping

    data = read_yaml_mapping(path, what="prompts file", keys_hint="templates, classes")
    bad = sorted(set(data) - {"templates", "classes"})
    if bad:
        raise FairfoundryError(f"unknown key {bad[0]!r} in prompts file {path}",
                               hint="valid keys: templates (list), classes (label: [negative, positive])")
    out: dict = {}
    if "templates" in data:
        t = data["templates"]
        if isinstance(t, str):
            t = [t]
        if not isinstance(t, list) or not all(isinstance(x, str) for x in t):
            raise FairfoundryError(f"'templates' in prompts file {path} must be a list of strings")
        out["prompts"] = t
    if "classes" in data:
        c = data["classes"]
        if not isinstance(c, dict):
            raise FairfoundryError(f"'classes' in prompts file {path} must map a label to [negative, positive]")
        out["class_prompts"] = c
    return out


def check_prompts(prompts: Sequence[str] | None, class_prompts: dict, labels: Sequence[str]) -> tuple:
    """Validated ``(templates, {label: [negative, positive]})``; empty prompts are errors."""
    templates = list(DEFAULT_PROMPTS if prompts is None else prompts)
    if not templates or any(not str(t).strip() for t in templates):
        raise FairfoundryError("empty prompt: zero-shot needs at least one non-empty prompt template",
                               hint='e.g. --prompt "a chest x-ray with {label}" (or leave --prompt out for '
                                    "the defaults)")
    fmt = [_template(str(t)) for t in templates]
    unknown = sorted(set(class_prompts) - set(labels))
    if unknown:
        raise FairfoundryError(f"class prompts for {unknown[0]!r}, which is not a --label",
                               hint=f"labels: {', '.join(labels)}")
    classes = {}
    for lab in labels:
        pair = class_prompts.get(lab, default_class_prompts(lab))
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or any(not isinstance(p, str) or not p.strip() for p in pair)):
            raise FairfoundryError(f"class prompts of label {lab!r} must be two non-empty texts "
                                   f"[negative, positive], got {pair!r}")
        classes[lab] = [str(p) for p in pair]
    return templates, fmt, classes


class ZeroShotText:
    """The text side of a zero-shot run: class embeddings ``(L, 2, d)`` and the logit scale."""

    def __init__(self, *, class_embeddings: np.ndarray, logit_scale: float, templates: list[str],
                 classes: dict[str, list[str]], encoder: dict, n_encoder_params: int = 0):
        self.n_encoder_params = int(n_encoder_params)
        self.class_embeddings = class_embeddings
        self.logit_scale = float(logit_scale)
        self.templates = templates
        self.classes = classes
        self.encoder = encoder

    def info(self) -> dict:
        return {"templates": self.templates, "classes": self.classes, "logit_scale": self.logit_scale,
                "encoder": self.encoder}


def zero_shot_text(cfg) -> ZeroShotText:
    """Load ``cfg.encoder`` and embed each label's class prompts with its text tower.

    Raises :class:`FairfoundryError` (exit 2 in the CLI) when the encoder has no text tower,
    its weights are missing (with how to get them), or the prompts are empty.
    """
    from ..adapt import text_classifier
    from ..models import load_encoder

    templates, fmt, classes = check_prompts(cfg.prompts, cfg.class_prompts, cfg.labels)
    try:
        enc = load_encoder(cfg.encoder, weights=cfg.encoder_weights, device=cfg.device,
                           model_kwargs=cfg.encoder_kwargs or None)
    except FairfoundryError as exc:
        if "weights" not in exc.message and "no local copy" not in exc.message:
            raise
        raise FairfoundryError(exc.message, hint=(exc.hint + "; " if exc.hint else "")
                               + "or point encoder_weights (--encoder-weights) at a local weights file",
                               param=exc.param) from None
    if not getattr(enc, "is_vlm", False):
        raise FairfoundryError(
            f"encoder {cfg.encoder!r} has no text tower: --adaptation {cfg.adaptation} classifies with "
            "text prompts and needs a CLIP-style vision-language encoder",
            hint="use an open_clip or CLIP model (e.g. --encoder open_clip:ViT-B-16, biomedclip), or "
                 "--adaptation probe to train a head on this encoder's embeddings")

    def encode_text(texts):
        return enc.encode_text(list(texts))

    T = np.stack([text_classifier(encode_text, lambda texts: list(texts), classes[lab], templates=fmt)
                  for lab in cfg.labels])
    scale = getattr(enc.module, "logit_scale", None)
    logit_scale = float(scale.detach().exp().item()) if scale is not None else 100.0
    return ZeroShotText(class_embeddings=T, logit_scale=logit_scale, templates=templates, classes=classes,
                        encoder=enc.info(), n_encoder_params=sum(p.numel() for p in enc.module.parameters()))


def _empty_result():
    from ..adapt import TrainResult

    return TrainResult(emissions={"tracker": None, "note": "zero-shot: nothing trained, nothing measured"})


def _val_entry(y, s, groups) -> dict:
    from ..adapt import selection_scores
    from ..adapt._zeroshot import _bce

    y = np.asarray(y, dtype=float)
    s = np.asarray(s, dtype=float)
    sc = selection_scores(y, s, None if groups is None else np.asarray(groups, dtype=object))
    m = ~np.isnan(y)
    sc["loss"] = _bce(s[m], y[m])
    return sc


class ZeroShotEstimator:
    """Zero-shot CLIP as a fit estimator: class scores from the text embeddings, nothing trained.

    ``fit`` only records the validation metrics (``history_``: one entry, epoch 0).
    """

    stage_note = "zero-shot: nothing trained"

    def __init__(self, text: ZeroShotText):
        self.text = text
        self.trainable_share_ = 0.0

    def _scores(self, X) -> np.ndarray:
        from ..adapt import zero_shot_scores

        X = np.asarray(X, dtype=np.float64)
        cols = [zero_shot_scores(X, T, logit_scale=self.text.logit_scale)[:, 1]
                for T in self.text.class_embeddings]
        return cols[0] if len(cols) == 1 else np.column_stack(cols)

    def fit(self, X, y, *, groups=None, X_val=None, y_val=None, groups_val=None):
        entry = {"epoch": 0, "step": 0}
        if X_val is not None:
            entry.update(_val_entry(y_val, self._scores(X_val), groups_val))
        self.history_ = [entry]
        self.selected_ = entry
        self.result_ = _empty_result()
        return self

    def predict_score(self, X, *, groups=None) -> np.ndarray:
        return self._scores(X)

    def save(self, directory) -> Path:
        """``head.safetensors`` (the class text embeddings ``(L, 2, d)``) and ``head.json``."""
        import torch
        from safetensors.torch import save_file

        from .._io import write_atomic, write_json_atomic

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        t = {"class_embeddings": torch.as_tensor(np.ascontiguousarray(self.text.class_embeddings,
                                                                      dtype=np.float32))}
        write_atomic(d / "head.safetensors", lambda p: save_file(t, str(p)))
        write_json_atomic(d / "head.json", {"head": "zero-shot", **self.text.info(),
                                            "selected": self.selected_})
        return d


class CLIPAdapterEstimator:
    """CLIP-Adapter (Gao et al., IJCV 2023) with hyper-parameters selected on validation.

    For every ``(ratio, lr)`` of the grid a :class:`~fairfoundry.adapt.CLIPAdapterClassifier`
    is trained on the train split (epoch selected on validation by ``select``, early stopping
    with ``patience``); the candidate with the best selected validation value is kept.
    ``candidates_`` lists every candidate with its validation values; ``history_`` is the kept
    candidate's per-epoch validation history plus an epoch-0 entry for the zero-shot classifier
    it starts from, so ``history.csv`` shows whether validation loss went down.
    """

    def __init__(self, text: ZeroShotText, *, ratios: Sequence[float], lrs: Sequence[float], epochs: int,
                 batch_size: int, select: str, patience: int | None, activation: str, hooks: Sequence = (),
                 seed: int = 0, device: str = "cpu", progress=None):
        if len(text.class_embeddings) != 1:
            raise FairfoundryError("--adaptation clip-adapter works on one label; "
                                   f"{len(text.class_embeddings)} given", hint="run it once per --label")
        self.text = text
        self.ratios, self.lrs = list(ratios), list(lrs)
        self.epochs, self.batch_size, self.select, self.patience = epochs, batch_size, select, patience
        self.activation, self.hooks, self.seed, self.device = activation, list(hooks), seed, device
        self.progress = progress

    def fit(self, X, y, *, groups=None, X_val=None, y_val=None, groups_val=None):
        import copy

        from ..adapt import CLIPAdapterClassifier

        if X_val is None:
            raise FairfoundryError("CLIP-Adapter selects its hyper-parameters on validation: no val rows")
        sel = "loss" if self.select in ("loss", "dto") else self.select
        better = (lambda a, b: a < b) if sel == "loss" else (lambda a, b: a > b)
        self.candidates_, best = [], None
        t0 = time.perf_counter()
        for ratio in self.ratios:
            for lr in self.lrs:
                hooks = [copy.deepcopy(h) for h in self.hooks]
                clf = CLIPAdapterClassifier(self.text.class_embeddings[0], ratio=ratio, lr=lr, epochs=self.epochs,
                                            batch_size=self.batch_size, logit_scale=self.text.logit_scale,
                                            hooks=hooks, seed=self.seed, device=self.device,
                                            activation=self.activation)
                clf.fit(X, y, groups=groups, X_val=X_val, y_val=y_val, groups_val=groups_val, select=sel,
                        patience=self.patience, progress=self.progress)
                value = float((clf.selected_ or {}).get(sel, np.nan))
                self.candidates_.append({"ratio": ratio, "lr": lr, sel: value,
                                         "epoch": (clf.selected_ or {}).get("epoch"),
                                         "active_fraction": clf.active_fraction_})
                if best is None or (np.isfinite(value) and better(value, best[0])):
                    best = (value, clf, ratio, lr)
        _, clf, ratio, lr = best
        self.clf_, self.ratio_, self.lr_ = clf, ratio, lr
        self.hooks = clf.hooks  # the kept candidate's (fitted) hooks
        zs = {"epoch": 0, "step": 0, **_val_entry(y_val, self._zero_shot(X_val), groups_val)}
        self.history_ = [zs, *[dict(h) for h in clf.history_]]
        self.selected_ = {**(clf.selected_ or {}), "ratio": ratio, "lr": lr}
        self.result_ = clf.result_
        self.result_.seconds = time.perf_counter() - t0
        self.result_.emissions = {"tracker": None, "note": (
            f"not measured for CLIP-Adapter ({len(self.candidates_)} candidates trained in "
            f"{self.result_.seconds:.1f} s: a small MLP on cached embeddings)")}
        self.active_fraction_ = clf.active_fraction_
        n_adapter = sum(p.numel() for p in clf._adapter.parameters())  # trained; the encoder is frozen
        self.trainable_share_ = n_adapter / max(1, n_adapter + self.text.n_encoder_params)
        log.info("CLIP-Adapter: kept ratio=%s lr=%s (%s on val %.4f) of %d candidates", ratio, lr, sel, best[0],
                 len(self.candidates_))
        return self

    def _zero_shot(self, X) -> np.ndarray:
        from ..adapt import zero_shot_scores

        return zero_shot_scores(X, self.text.class_embeddings[0], logit_scale=self.text.logit_scale)[:, 1]

    def predict_score(self, X, *, groups=None) -> np.ndarray:
        return self.clf_.predict_score(X)

    def save(self, directory) -> Path:
        """``head.safetensors`` (adapter weights + class text embeddings) and ``head.json``."""
        from safetensors.torch import save_file

        from .._io import write_atomic, write_json_atomic

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        sd = {k: v.detach().cpu().contiguous() for k, v in self.clf_.model_.state_dict().items()}
        write_atomic(d / "head.safetensors", lambda p: save_file(sd, str(p)))
        write_json_atomic(d / "head.json", {
            "head": "clip-adapter", **self.text.info(), "ratio": self.ratio_, "lr": self.lr_,
            "reduction": self.clf_.reduction, "activation": self.activation,
            "active_fraction": self.active_fraction_, "candidates": self.candidates_,
            "selected": self.selected_,
            "hooks": [getattr(h, "name", type(h).__name__) for h in self.hooks]})
        return d


def make_zero_shot_estimator(cfg, text: ZeroShotText, hooks, *, seed: int, progress=None):
    """The estimator of ``cfg.adaptation`` (``zero-shot`` or ``clip-adapter``) for one run."""
    if cfg.adaptation == "zero-shot":
        return ZeroShotEstimator(text)
    lrs = cfg.adapter_lrs if cfg.adapter_lrs else [cfg.lr, 10 * cfg.lr]
    return CLIPAdapterEstimator(text, ratios=cfg.adapter_ratios, lrs=lrs, epochs=cfg.epochs,
                                batch_size=cfg.batch_size, select=cfg.select, patience=cfg.patience,
                                activation=cfg.adapter_activation, hooks=hooks, seed=seed, device=cfg.device,
                                progress=progress)


def check_zero_shot_methods(cfg, specs) -> None:
    """Refuse methods that cannot apply: zero-shot trains nothing (only ``erm`` and
    post-processing), and CLIP-Adapter cannot take hooks that replace the model or need groups
    at prediction."""
    from ..adapt import Hook
    from ._train import instantiate_method

    for spec in specs:
        method, stage = instantiate_method(spec.name, spec.args)
        if cfg.adaptation == "zero-shot" and stage in ("pre", "in"):
            raise FairfoundryError(
                f"method {spec.name!r} ({stage}-processing) changes training, and zero-shot trains nothing",
                hint="use erm or a post-processing method (group-threshold, group-calibration) with zero-shot, "
                     "or --adaptation clip-adapter")
        if cfg.adaptation == "clip-adapter" and stage in ("pre", "in") and (
                getattr(method, "needs_groups_at_predict", False)
                or type(method).wrap_model is not Hook.wrap_model):
            raise FairfoundryError(
                f"method {spec.name!r} replaces the model (per-group layers), which CLIP-Adapter does not support",
                hint="with clip-adapter use erm, reweigh, resample, groupdro, fair-penalty, adversarial, fairclip "
                     "or a post-processing method")
    if cfg.adaptation == "clip-adapter" and len(cfg.labels) != 1:
        raise FairfoundryError(f"--adaptation clip-adapter works on one label; {len(cfg.labels)} given",
                               hint="run it once per --label")


#: files a zero-shot or CLIP-Adapter run writes in addition to :data:`RUN_FILES`
HALLUCINATION_FILES = ("hallucination/evaluation.csv", "hallucination/summary.json",
                       "hallucination/per_sample.csv", "hallucination/report.html")


def write_hallucination(stage_dir: Path, preds, cfg, *, seed: int, manifest) -> dict | None:
    """The zero-shot hallucination table of the test rows into ``stage_dir/hallucination``.

    Returns a small summary for ``run.json`` and the model card (``None`` without test rows).
    """
    from ..hallucination import zero_shot_hallucination_table
    from ..mitigate._inputs import effective_bins

    test = (preds["split"] == "test").to_numpy()
    labels = cfg.labels
    if not test.any():
        return None
    if len(labels) == 1:
        s, y = preds.loc[test, "y_score"].to_numpy(), preds.loc[test, "y_true"].to_numpy()
    else:
        s = preds.loc[test, [f"y_score_{lab}" for lab in labels]].to_numpy()
        y = preds.loc[test, [f"y_true_{lab}" for lab in labels]].to_numpy()
    frame = preds.loc[test].reset_index(drop=True)
    if np.isnan(np.asarray(y, dtype=float)).any():  # missing labels: those images are left out
        keep = ~np.isnan(np.asarray(y, dtype=float)).reshape(len(frame), -1).any(axis=1)
        s, y, frame = s[keep], y[keep], frame.loc[keep].reset_index(drop=True)
    cluster = "patient_id" if "patient_id" in frame.columns else None
    res = zero_shot_hallucination_table(
        frame, s, y, sensitive=cfg.sensitive, finding_names=labels, threshold=cfg.hallucination_threshold,
        bins=effective_bins(manifest, cfg.sensitive, cfg.bins) or None, cluster=cluster,
        n_bootstrap=cfg.bootstrap, seed=seed, min_events=cfg.hallucination_min_events,
        info={"source": "test split of the run's predictions", "n_rows": len(frame)})
    res.save(stage_dir / "hallucination", overwrite=True)
    return {"threshold": cfg.hallucination_threshold, "min_events": cfg.hallucination_min_events,
            "per_group": res.by_group.to_dict(orient="records"),
            "headlines": res.evidence.get("headlines", []),
            "too_few_to_judge": res.evidence.get("too_few_to_judge", [])}


def hallucination_markdown(summary: dict | None) -> list[str]:
    """The model card section of the hallucination table."""
    from .._io import md_escape

    md = ["## Zero-shot hallucination (test, 95% CI)", ""]
    if summary is None:
        return md + ["No test split: not evaluated.", ""]
    tau = summary["threshold"]
    md += [f"Rate of confident positive calls (score >= {tau:g}, fixed in advance) on images whose finding "
           "is absent, per group; `hallucination/` holds the tables and report.", "",
           "| attribute | group | finding | rate [CI] | events / images | judgement |",
           "|---|---|---|---|---:|---|"]
    for r in summary["per_group"]:
        est, lo, hi = (r.get(k) for k in ("estimate", "ci_low", "ci_high"))
        ci = "—" if est is None or not np.isfinite(est) else (
            f"{est:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and np.isfinite(lo) else f"{est:.3f}")
        ev = r.get("events")
        ev_txt = "—" if ev is None or not np.isfinite(ev) else f"{int(ev)} / {int(r['n'])}"
        md.append(f"| {md_escape(str(r['attribute']))} | {md_escape(str(r['group']))} | "
                  f"{md_escape(str(r['metric']).split(':', 1)[-1])} | {ci} | {ev_txt} | "
                  f"{md_escape(str(r.get('judgement') or ''))} |")
    md.append("")
    for h in summary["headlines"]:
        md.append(f"- {md_escape(h)}")
    for h in summary["too_few_to_judge"]:
        md.append(f"- {md_escape(h)}")
    if not summary["headlines"] and not summary["too_few_to_judge"]:
        md.append("- No gap between groups has a confidence interval that excludes 0.")
    return md + [""]
