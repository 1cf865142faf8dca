r"""A periodic fairness probe of an encoder while it trains (pre-training, distillation, ``fit``).

Every ``every`` optimiser steps the current encoder (the network a run exports: the EMA teacher
of DINO / I-JEPA, the student of a distillation, the fine-tuned backbone of ``fit``) embeds a
labelled *validation* manifest, and

- a cross-validated linear probe (standardised L2 logistic regression, ``folds`` folds
  stratified by the label and grouped by patient when the manifest has ``patient_id``; the same
  folds at every step, so the curves are comparable) gives out-of-fold scores, evaluated with
  :func:`fairfoundry.metrics.evaluate_groups`: AUC overall and per group of every sensitive
  attribute (and their intersection), bootstrap CIs (clustered by patient), the worst group and
  the gap (max - min);
- an attribute-leakage probe, :func:`fairfoundry.models.probe_attributes`, predicts each
  protected attribute itself from the embedding (cross-validated AUC, balanced accuracy): how
  much of the attribute the representation carries (Glocker et al., Radiology: AI 2023). Its
  verdict is a permutation test (``leakage_p_value``:
  :func:`fairfoundry.models.leakage_permutation_test`, ``permutations`` permutations of the
  attribute across patients, the cross-validated probe refitted each time; exact p-value). The
  leakage AUC has no CI: a bootstrap of the fixed out-of-fold scores ignores the variance of
  the fits and excluded chance in 12 % of null runs at a nominal 5 %.

The images are decoded and resized once, when the probe is prepared, and kept as one tensor; the
probe set is bounded (``max_samples``, a label-stratified subsample). Its cost per probe is one
forward pass over it plus the scikit-learn fits (``benchmarks/bench_probe.py``).

Selection (``select``): ``overall_auc`` and ``worst_group_auc`` (the smallest AUC of any group of
any probed attribute) are maximised; ``dto`` is MEDFAIR's distance to the per-group utopia point
over all probed steps (:func:`fairfoundry.adapt._selection.dto`), minimised. Only the validation
split is read: a manifest with a split column contributes its ``val`` rows, other rows (test)
are dropped before any path is resolved or image opened.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import FairfoundryError, did_you_mean
from ..adapt._loop import Hook
from ..groups import (
    DEFAULT_AGE_EDGES,
    MISSING,
    auto_bin_columns,
    group_labels,
    intersection_attribute,
)

__all__ = ["ProbeOptions", "ProbeData", "ProbeTracker", "ProbeHook", "SELECT_CRITERIA",
           "load_probe_data", "probe_embeddings", "embed_inputs", "image_probe", "PROBE_COLUMNS"]

log = logging.getLogger(__name__)

#: selection criteria of a probed run and whether they are maximised
SELECT_CRITERIA = {"worst_group_auc": "max", "overall_auc": "max", "dto": "min"}
#: columns of ``probe.csv``
PROBE_COLUMNS = ["step", "metric", "attribute", "group", "estimate", "ci_low", "ci_high", "n", "reason"]


@dataclass(frozen=True)
class ProbeOptions:
    """Validated settings of the probe (built once where the user's input enters).

    Parameters
    ----------
    manifest : path of a labelled manifest (CSV / Parquet) with image paths, the label and the
        sensitive attributes; with a ``split_column`` only rows of split ``split`` are used.
    label : 0/1 label column (rows with a missing label are left out).
    sensitive : protected attribute columns (numeric ones with many values, age, are binned
        with ``age_bins``).
    every : probe every this many optimiser steps (and at the start and the end of a run).
    max_samples : at most this many rows (a label-stratified subsample, seeded).
    folds : cross-validation folds (fewer when the minority class is smaller).
    bootstrap : bootstrap replicates of every CI (0: no CIs).
    permutations : permutations of the attribute-leakage test (``leakage_p_value``; below 19 the
        verdict is "too few permutations to judge").
    select : keep the checkpoint with the best value of this criterion (None: no selection).
    """

    manifest: str
    label: str
    sensitive: tuple[str, ...]
    every: int
    max_samples: int = 2000
    folds: int = 5
    bootstrap: int = 100
    permutations: int = 99
    select: str | None = None
    split_column: str = "split"
    split: str = "val"
    path_column: str = "path"
    root: str | None = None
    age_bins: tuple[float, ...] = tuple(DEFAULT_AGE_EDGES)
    C: float = 0.1
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.sensitive, str):
            object.__setattr__(self, "sensitive", tuple(s.strip() for s in self.sensitive.split(",") if s.strip()))
        object.__setattr__(self, "sensitive", tuple(self.sensitive))
        if not self.sensitive:
            raise FairfoundryError("the probe needs at least one sensitive attribute", param="probe_sensitive",
                                   hint="pass --probe-sensitive sex[,age]")
        for name, v, lo in (("probe_every", self.every, 1), ("probe_max_samples", self.max_samples, 20),
                            ("probe_folds", self.folds, 2), ("probe_bootstrap", self.bootstrap, 0),
                            ("probe_permutations", self.permutations, 0)):
            if int(v) < lo:
                raise FairfoundryError(f"{name}={v}: must be >= {lo}", param=name)
        if self.select is not None and self.select not in SELECT_CRITERIA:
            raise FairfoundryError(f"select={self.select!r}: unknown criterion", param="select",
                                   hint=did_you_mean(self.select, SELECT_CRITERIA, what="criteria"))


@dataclass
class ProbeData:
    """The probe set, prepared once: rows, labels, groups, folds and the cached images.

    Attributes
    ----------
    frame : the rows used (``sample_id``, the label, the attributes, ``patient_id`` if any)
    y : int array ``(n,)``
    groups : attribute (``sex``, ``sex&age``) -> group name of every row (:mod:`fairfoundry.groups`)
    folds : fold index of every row (fixed for the whole run)
    inputs : callable ``(indices, device) -> float tensor`` of network-ready images
    """

    frame: pd.DataFrame
    y: np.ndarray
    groups: dict[str, np.ndarray]
    folds: np.ndarray
    options: ProbeOptions
    inputs: Callable | None = None
    cluster: np.ndarray | None = None
    bins: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)


def _read_val_rows(opts: ProbeOptions) -> tuple[pd.DataFrame, dict]:
    """The probe manifest's validation rows, validated (nothing else is kept), and a record of
    what was dropped: ``{"manifest_rows", "split_column", "rows_by_split", "val_rows"}``."""
    from .._io import read_table

    path = Path(opts.manifest)
    frame = read_table(path, what="probe manifest")
    where = f"probe manifest {path}"
    for col, what in ((opts.label, "label"), *((a, "sensitive attribute") for a in opts.sensitive)):
        if col not in frame.columns:
            raise FairfoundryError(f"{what} column {col!r} not found in {where}",
                                   hint=did_you_mean(col, frame.columns, what="columns"),
                                   param="probe_label" if what == "label" else "probe_sensitive")
    if opts.path_column not in frame.columns:
        raise FairfoundryError(f"column {opts.path_column!r} not found in {where}",
                               hint=did_you_mean(opts.path_column, frame.columns, what="columns"))
    source: dict = {"manifest_rows": len(frame), "split_column": None, "rows_by_split": None}
    if opts.split_column in frame.columns:
        split = frame[opts.split_column].astype(str).str.strip().str.lower()
        n_all = len(frame)
        source.update(split_column=opts.split_column,
                      rows_by_split={str(k): int(v) for k, v in split.value_counts().sort_index().items()})
        frame = frame[split == opts.split].copy()
        log.info("probe: %d of %d rows of %s are split %r (the others, e.g. test, are not read)",
                 len(frame), n_all, path, opts.split)
        if frame.empty:
            raise FairfoundryError(f"{where} has no rows of split {opts.split!r} in column {opts.split_column!r}",
                                   hint="the probe is validation-only: mark validation rows split=val")
    y = pd.to_numeric(frame[opts.label], errors="coerce")
    bad = y.notna() & ~y.isin([0, 1])
    if bad.any():
        i = frame.index[np.flatnonzero(bad.to_numpy())[0]]
        raise FairfoundryError(f"label {opts.label!r} in {where} must be 0/1; row {i + 2} holds "
                               f"{frame.loc[i, opts.label]!r}", param="probe_label")
    frame = frame[y.notna().to_numpy()].copy()
    frame[opts.label] = y[y.notna()].astype(int).to_numpy()
    source["val_rows"] = len(frame)
    counts = np.bincount(frame[opts.label].to_numpy(), minlength=2)
    if counts.min() < 2:
        raise FairfoundryError(f"label {opts.label!r} in {where} needs both classes (at least 2 of each) "
                               f"among the validation rows; it has {counts[0]} negatives and {counts[1]} positives",
                               param="probe_label")
    return frame.reset_index(drop=True), source


def _subsample(frame: pd.DataFrame, label: str, max_samples: int, seed: int) -> pd.DataFrame:
    if len(frame) <= max_samples:
        return frame
    rng = np.random.default_rng(seed)
    keep = []
    y = frame[label].to_numpy()
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        k = max(2, int(round(max_samples * len(idx) / len(frame))))
        keep.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    rows = np.sort(np.concatenate(keep))[:max_samples]
    log.info("probe: %d of %d validation rows kept (max_samples, stratified by %r)", len(rows), len(frame), label)
    return frame.iloc[rows].reset_index(drop=True)


def _fold_index(y: np.ndarray, cluster: np.ndarray | None, folds: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    k = int(min(folds, np.bincount(y, minlength=2).min()))
    if cluster is not None and len(np.unique(cluster)) >= k:
        splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
    else:
        splitter, cluster = StratifiedKFold(k, shuffle=True, random_state=seed), None
    out = np.empty(len(y), dtype=np.int64)
    for f, (_, te) in enumerate(splitter.split(np.zeros(len(y)), y, cluster)):
        out[te] = f
    return out


def load_probe_data(opts: ProbeOptions, *, train_paths: Sequence[str] | None = None,
                    train_ids: Sequence[str] | None = None) -> ProbeData:
    """Read and validate the probe manifest (validation rows only); images are not decoded here.

    Parameters
    ----------
    train_paths, train_ids : resolved image paths / sample ids the encoder trains on: a probe
        row among them is leakage (the probe would measure memorisation), warned about.

    Raises
    ------
    FairfoundryError
        Missing label / attribute / path column (closest names), a label that is not 0/1 or has
        one class, no validation rows, an attribute with fewer than two known groups.
    """
    from ._data import load_manifest

    frame, source = _read_val_rows(opts)
    frame = _subsample(frame, opts.label, opts.max_samples, opts.seed)
    source["probe_rows"] = len(frame)
    root = opts.root if opts.root is not None else Path(opts.manifest).resolve().parent
    frame, _ = load_manifest(frame, path_column=opts.path_column, root=root)
    warnings: list[str] = []
    overlap = 0
    if train_paths is not None:
        overlap = int(frame[opts.path_column].astype(str).isin(set(map(str, train_paths))).sum())
    if train_ids is not None and "sample_id" in frame.columns:
        overlap = max(overlap, int(frame["sample_id"].astype(str).isin(set(map(str, train_ids))).sum()))
    if overlap:
        msg = (f"leakage: {overlap} of {len(frame)} probe images are also pre-training images; the probe "
               "then measures what the encoder saw, not how it generalises (use held-out images)")
        log.warning("%s", msg)
        warnings.append(msg)
    attrs = list(opts.sensitive)
    bins = auto_bin_columns(frame, attrs, {"age": list(opts.age_bins)} if "age" in attrs else None)
    groups: dict[str, np.ndarray] = {}
    for a in attrs:
        g = group_labels(frame, [a], bins=bins)
        known = sorted({str(v) for v in g if v != MISSING})
        if len(known) < 2:
            raise FairfoundryError(
                f"sensitive attribute {a!r} has fewer than two known groups among the {len(frame)} probe rows "
                f"of {opts.manifest} ({known or 'all unknown'})", param="probe_sensitive",
                hint="probe another attribute or use a larger validation set")
        groups[a] = g
    if len(attrs) > 1:
        groups[intersection_attribute(attrs)] = group_labels(frame, attrs, bins=bins)
    y = frame[opts.label].to_numpy().astype(int)
    cluster = frame["patient_id"].astype(str).to_numpy() if "patient_id" in frame.columns else None
    data = ProbeData(frame=frame, y=y, groups=groups, folds=_fold_index(y, cluster, opts.folds, opts.seed),
                     options=opts, cluster=cluster, bins=bins, warnings=warnings, source=source)
    for attr, g in groups.items():  # a group with one class: its AUC is NaN (reason in probe.csv)
        for name in sorted(set(g)):
            if len(np.unique(y[g == name])) < 2:
                msg = (f"probe group {attr}={name} has only one class of {opts.label!r} "
                       f"({int((g == name).sum())} rows): its AUC is undefined (NaN) and it is left out of the worst group")
                log.warning("%s", msg)
                warnings.append(msg)
    return data


def embed_inputs(features: Callable, data: ProbeData, *, device, batch_size: int | None = None) -> np.ndarray:
    """Embeddings ``(n, d)`` of the probe images: ``features(x)`` over batches, without gradients."""
    import torch

    bs = int(batch_size or data.options.batch_size)
    out = []
    t0 = last = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(data), bs):
            idx = np.arange(s, min(s + bs, len(data)))
            out.append(features(data.inputs(idx, device)).float().cpu().numpy())
            now = time.perf_counter()
            if now - last > 30:
                log.info("probe: embedded %d/%d images (%.0f s)", idx[-1] + 1, len(data), now - t0)
                last = now
    return np.concatenate(out).astype(np.float64)


def _oof_scores(emb: np.ndarray, data: ProbeData) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not np.isfinite(emb).all():
        raise FairfoundryError("the encoder's probe embeddings have non-finite values (the training diverged?)")
    score = np.zeros(len(data))
    for f in np.unique(data.folds):
        te = data.folds == f
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=data.options.C, max_iter=1000))
        clf.fit(emb[~te], data.y[~te])
        score[te] = clf.predict_proba(emb[te])[:, 1]
    return score


#: fewest permutations for a verdict (with fewer, p can never fall below 0.05)
MIN_PERMUTATIONS = 19


def _gap_test_row(step, attr, s, n_perm: int, n: int) -> dict:
    """``auc_gap_p_value``: the verdict on a group AUC gap of the probe.

    The probe's out-of-fold scores come from cross-validated fits whose folds are made from
    patients alone, so under "the attribute is unrelated to the embeddings and the label" they do
    not depend on the groups and permuting the groups of whole patients (the metric engine's
    scheme, :meth:`fairfoundry.metrics.ResamplePlan.permuted_groups`) is an exact test of the
    gap. The bootstrap interval of the gap (``auc_gap``) treats those scores as fixed data and is
    descriptive: in null simulations it excluded 0 in 9 % of runs (benchmarks/bench_probe.py).
    """
    p = float(s["p_value"]) if n_perm else math.nan
    if not n_perm:
        verdict = "not tested (fewer than 19 permutations: --probe-permutations)"
    elif not math.isfinite(p):
        verdict = f"not tested: {s['reason'] or 'the gap is undefined'}"
    else:
        verdict = ("groups differ" if p < 0.05 else "no clear difference") + (
            f" (permutation test, {n_perm} permutations of whole patients' groups, "
            "fixed out-of-fold scores)")
    return _row(step, "auc_gap_p_value", attr, str(s["detail"]), p, math.nan, math.nan, n, verdict)


def _row(step, metric, attribute, group, est, lo, hi, n, reason="") -> dict:
    return {"step": int(step), "metric": metric, "attribute": attribute, "group": group,
            "estimate": float(est), "ci_low": float(lo), "ci_high": float(hi), "n": int(n), "reason": reason}


def probe_embeddings(emb, data: ProbeData, *, step: int = 0) -> pd.DataFrame:
    """Probe one set of embeddings: the tidy rows of ``probe.csv`` for ``step``.

    Rows (``metric, attribute, group``): ``auc, overall, overall``; ``auc, <attr>, <group>`` for
    every group of every attribute and of the intersection; ``auc_worst_group, <attr>,
    <worst group>`` and ``auc_gap, <attr>, <max - min groups>`` (the engine's summaries with CIs);
    ``auc_gap_p_value, <attr>, <groups>`` (the gap's permutation test, its verdict in the reason:
    :func:`_gap_test_row`);
    ``worst_group_auc, all, <attr>=<group>`` (the smallest group AUC over the single attributes,
    the ``worst_group_auc`` criterion); ``leakage_auc``, ``leakage_p_value`` (the permutation test;
    its reason holds the verdict) and ``leakage_balanced_accuracy, <attr>, <groups>``
    (predicting the attribute itself; chance AUC 0.5). Undefined values are NaN with
    a reason.
    """
    from threadpoolctl import threadpool_limits

    # small fits: one BLAS thread is fastest, and spares the cores of the training around it
    with threadpool_limits(limits=1):
        return _probe_rows(emb, data, step=step)


def _probe_rows(emb, data: ProbeData, *, step: int) -> pd.DataFrame:
    from ..metrics import evaluate_groups
    from ..models import probe_attributes

    opts = data.options
    emb = np.asarray(emb, dtype=np.float64)
    score = _oof_scores(emb, data)
    rows: list[dict] = []
    worst = (math.inf, "", math.nan, math.nan, 0)
    for attr, groups in data.groups.items():
        n_perm = opts.permutations if opts.permutations >= MIN_PERMUTATIONS else 0
        res = evaluate_groups(data.y, score, threshold=0.5, groups=groups, metrics=["auc"],
                              n_bootstrap=opts.bootstrap, n_permutations=n_perm, cluster=data.cluster,
                              seed=opts.seed)
        pg = res.per_group[res.per_group["metric"] == "auc"]
        for r in pg.itertuples(index=False):
            if r.group == "overall":
                if not any(x["attribute"] == "overall" for x in rows):
                    rows.append(_row(step, "auc", "overall", "overall", r.estimate, r.ci_low, r.ci_high, r.n,
                                     r.reason))
                continue
            rows.append(_row(step, "auc", attr, r.group, r.estimate, r.ci_low, r.ci_high, r.n, r.reason))
            single = "&" not in attr
            if single and not math.isnan(r.estimate) and r.estimate < worst[0]:
                worst = (r.estimate, f"{attr}={r.group}", r.ci_low, r.ci_high, r.n)
        sm = res.summary.set_index("metric")
        for metric in ("auc_worst_group", "auc_gap"):
            if metric in sm.index:
                s = sm.loc[metric]
                rows.append(_row(step, metric, attr, str(s["detail"]), s["estimate"], s["ci_low"], s["ci_high"],
                                 len(groups), str(s["reason"])))
        if "auc_gap" in sm.index:
            rows.append(_gap_test_row(step, attr, sm.loc["auc_gap"], n_perm, len(groups)))
    if math.isinf(worst[0]):
        rows.append(_row(step, "worst_group_auc", "all", "", math.nan, math.nan, math.nan, 0,
                         "no group holds both classes"))
    else:
        rows.append(_row(step, "worst_group_auc", "all", worst[1], worst[0], worst[2], worst[3], worst[4]))
    attrs = list(opts.sensitive)
    frame = data.frame
    try:
        leak = probe_attributes(emb, frame, sensitive=attrs, folds=opts.folds, seed=opts.seed,
                                n_boot=0, n_perm=opts.permutations, age_bins=list(opts.age_bins),
                                group_col="patient_id" if "patient_id" in frame.columns else None, C=opts.C)
        for r in leak.table.itertuples(index=False):
            rows.append(_row(step, "leakage_auc", r.attribute, r.groups, r.auc, math.nan, math.nan, r.n,
                             "no CI: a bootstrap of fixed out-of-fold scores ignores the fits' variance; "
                             "the verdict is leakage_p_value"))
            rows.append(_row(step, "leakage_p_value", r.attribute, r.groups, r.p_value, math.nan, math.nan, r.n,
                             f"{r.verdict} (permutation test, {r.n_perm} permutations across patients, "
                             f"statistic: ridge out-of-fold AUC {r.perm_auc:.3f})"))
            rows.append(_row(step, "leakage_balanced_accuracy", r.attribute, r.groups, r.balanced_accuracy,
                             math.nan, math.nan, r.n))
    except FairfoundryError as exc:  # an attribute too small to probe: NaN with the reason
        for a in attrs:
            rows.append(_row(step, "leakage_auc", a, "", math.nan, math.nan, math.nan, 0, str(exc)))
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)


def scalars(rows: pd.DataFrame) -> dict:
    """``overall_auc``, ``worst_group_auc`` (+ ``worst_group``) and the per-group AUC vector of one step."""
    o = rows[(rows["metric"] == "auc") & (rows["attribute"] == "overall")]
    w = rows[rows["metric"] == "worst_group_auc"]
    g = rows[(rows["metric"] == "auc") & (rows["attribute"] != "overall") & ~rows["attribute"].str.contains("&")]
    return {"overall_auc": float(o["estimate"].iloc[0]) if len(o) else math.nan,
            "worst_group_auc": float(w["estimate"].iloc[0]) if len(w) else math.nan,
            "worst_group": str(w["group"].iloc[0]) if len(w) else "",
            "group_aucs": {f"{a}={b}": float(e) for a, b, e in zip(g["attribute"], g["group"], g["estimate"],
                                                                   strict=True)}}


def _num(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def step_numbers(rows: pd.DataFrame, step: int) -> dict:
    """The validation probe of one step as plain data (for ``run.json`` and the model card).

    ``{"step", "overall_auc": {estimate, ci_low, ci_high, n}, "worst_group_auc": {group, ...},
    "attributes": {attr: {"worst_group": {group, ...}, "gap": {groups, ...}}},
    "leakage": {attr: {auc, p_value, verdict}}}`` (NaN as None).
    """
    part = rows[rows["step"] == step]

    def ci(r, key="group"):
        return {key: str(r["group"]), "estimate": _num(r["estimate"]), "ci_low": _num(r["ci_low"]),
                "ci_high": _num(r["ci_high"]), "n": int(r["n"])}

    out: dict = {"step": int(step), "overall_auc": None, "worst_group_auc": None, "attributes": {}, "leakage": {}}
    o = part[(part["metric"] == "auc") & (part["attribute"] == "overall")]
    if len(o):
        out["overall_auc"] = {k: v for k, v in ci(o.iloc[0]).items() if k != "group"}
    w = part[part["metric"] == "worst_group_auc"]
    if len(w):
        out["worst_group_auc"] = ci(w.iloc[0])
    for metric, key in (("auc_worst_group", "worst_group"), ("auc_gap", "gap")):
        for r in part[part["metric"] == metric].to_dict(orient="records"):
            out["attributes"].setdefault(str(r["attribute"]), {})[key] = ci(r, "groups" if key == "gap" else "group")
    for r in part[part["metric"] == "auc_gap_p_value"].to_dict(orient="records"):
        gap = out["attributes"].setdefault(str(r["attribute"]), {}).get("gap")
        if gap is not None:
            reason = str(r["reason"]) if isinstance(r["reason"], str) else ""
            gap["p_value"] = _num(r["estimate"])
            gap["verdict"] = reason.split(" (")[0]
    for r in part[part["metric"] == "leakage_auc"].to_dict(orient="records"):
        a = str(r["attribute"])
        p = part[(part["metric"] == "leakage_p_value") & (part["attribute"] == a)]
        reason = str(p["reason"].iloc[0]) if len(p) and isinstance(p["reason"].iloc[0], str) else ""
        out["leakage"][a] = {"auc": _num(r["estimate"]),
                             "p_value": _num(p["estimate"].iloc[0]) if len(p) else None,
                             "verdict": reason.split(" (")[0] if reason else (str(r["reason"]) or "not tested")}
    return out


def probe_card_lines(summary: dict, *, selection: str) -> list[str]:
    """The model card's Markdown lines about the fairness probe of a run (its ``summary.probe``).

    ``selection`` says what the probe's selection did in this run (which weights it chose, or that
    it only reports).
    """
    from .._io import md_escape
    from ..report._card import card_ci, card_code

    st = summary.get("settings", {})
    src = summary.get("source", {})
    lines = [f"- Probe: every {summary.get('every')} steps (and at the start and the end), "
             f"{summary.get('probes')} probes on {card_code(Path(str(summary.get('manifest'))).name)}, label "
             f"{card_code(summary.get('label'))}, sensitive {', '.join(card_code(a) for a in summary.get('sensitive', []))}; "
             f"{summary.get('n')} images; linear probe with {st.get('folds')}-fold cross-validation "
             f"(grouped by patient when known), {st.get('bootstrap')} bootstrap replicates for 95% CIs, "
             f"leakage permutation test with {st.get('permutations')} permutations."]
    if src.get("split_column"):
        dropped = {k: v for k, v in (src.get("rows_by_split") or {}).items() if k != st.get("split", "val")}
        lines.append(f"- Validation only: the probe read the {src.get('val_rows')} rows of "
                     f"{card_code(str(src['split_column']) + ' == ' + str(st.get('split', 'val')))} of the probe manifest's "
                     f"{src.get('manifest_rows')} rows; "
                     + (", ".join(f"{v} {card_code(k)} rows" for k, v in dropped.items()) or "no other rows")
                     + " were dropped before any image was opened. **The test split was never read.**")
    else:
        lines.append(f"- The probe manifest has no split column: all its {src.get('manifest_rows')} rows are "
                     "validation rows to the probe; no test split was read by the probe.")
    sel = summary.get("selected")
    crit = st.get("select") or (sel or {}).get("criterion")
    if sel is not None:
        lines.append(f"- Selection rule: `{crit}` ({'argmin' if crit == 'dto' else 'argmax'} over the probed "
                     f"steps of the validation probe, first of ties). Selected step: **{sel['step']}** "
                     f"(value {sel['value']:.3f}). {selection}")
    else:
        lines.append("- Selection rule: none (no `select`); the numbers below are the last probed step.")
    at = summary.get("at_selected") or summary.get("at_last")
    if at:
        which = "selected" if summary.get("at_selected") else "last"
        lines += ["", f"Validation probe at the {which} step ({at['step']}), 95% CI:", "",
                  "| measure | attribute | group(s) | estimate [95% CI] | n |", "|---|---|---|---|---:|"]
        o = at.get("overall_auc")
        if o:
            lines.append(f"| AUC | overall | overall | {card_ci(o['estimate'], o['ci_low'], o['ci_high'])} | {o['n']} |")
        w = at.get("worst_group_auc")
        if w:
            lines.append(f"| worst-group AUC | all | {md_escape(w['group'])} | "
                         f"{card_ci(w['estimate'], w['ci_low'], w['ci_high'])} | {w['n']} |")
        for a, d in at.get("attributes", {}).items():
            g = d.get("gap")
            if g:
                test = ("" if g.get("p_value") is None else
                        f"; permutation p = {g['p_value']:.3f}: {md_escape(g.get('verdict', ''))}")
                lines.append(f"| AUC gap (max - min) | {md_escape(a)} | {md_escape(g['groups'])} | "
                             f"{card_ci(g['estimate'], g['ci_low'], g['ci_high'])}{test} | |")
        for a, d in at.get("leakage", {}).items():
            p = "n/a" if d.get("p_value") is None else f"{d['p_value']:.3f}"
            auc = "n/a" if d.get("auc") is None else f"{d['auc']:.3f}"
            lines.append(f"| attribute leakage AUC (chance 0.5; no CI) | {md_escape(a)} | | {auc}; permutation "
                         f"p = {p}: {md_escape(d.get('verdict', ''))} | |")
    if summary.get("warnings"):
        lines.append("")
    for w in summary.get("warnings", []):
        lines.append(f"- Warning: {md_escape(w)}")
    return lines


class ProbeTracker:
    """The probe results of one run: ``probe.csv`` (rewritten atomically after every probe) and
    the selection of the best checkpoint.

    Parameters
    ----------
    data : ProbeData
    out : run directory (``probe.csv``; candidate checkpoints in ``checkpoint/probe/``)
    save : callable ``(path, step) -> None`` writing the current encoder (safetensors) when selecting
    steps_done : steps already done by an interrupted run (its probe rows before them are kept)
    """

    def __init__(self, data: ProbeData, out: str | os.PathLike, *, save: Callable | None = None,
                 steps_done: int = 0, csv_name: str = "probe.csv"):
        self.data, self.out, self.save = data, Path(out), save
        self.select = data.options.select
        self.csv = self.out / csv_name
        self.rows = pd.DataFrame(columns=PROBE_COLUMNS)
        self.seconds = 0.0
        self.probes = 0
        if steps_done and self.csv.exists():
            old = pd.read_csv(self.csv, keep_default_na=False, na_values=[""])
            self.rows = old[old["step"] <= steps_done].reset_index(drop=True)  # probed on saved weights

    @property
    def cand_dir(self) -> Path:
        return self.out / "checkpoint" / "probe"

    def cand_path(self, step: int) -> Path:
        return self.cand_dir / f"step_{int(step):08d}.safetensors"

    def record(self, step: int, emb) -> dict:
        """Probe embeddings of ``step``; write probe.csv; keep the candidate checkpoint if selecting."""
        from .._io import write_table_atomic

        t0 = time.perf_counter()
        new = probe_embeddings(emb, self.data, step=step)
        self.rows = pd.concat([self.rows[self.rows["step"] != step], new], ignore_index=True) \
            if len(self.rows) else new
        write_table_atomic(self.csv, self.rows, report=True)
        sc = scalars(new)
        if self.select is not None and self.save is not None:
            self.save(self.cand_path(step), step)
            if self.select != "dto":  # only the best so far is kept on disk
                best = self.best()
                for p in self.cand_dir.glob("step_*.safetensors"):
                    if best is not None and p != self.cand_path(best["step"]):
                        p.unlink(missing_ok=True)
        dt = time.perf_counter() - t0
        self.seconds += dt
        self.probes += 1
        leak = new[new["metric"] == "leakage_auc"]
        log.info("probe step %d: overall AUC %.3f, worst group %s %.3f, leakage %s (%.1f s)", step,
                 sc["overall_auc"], sc["worst_group"] or "-", sc["worst_group_auc"],
                 ", ".join(f"{a} {e:.3f}" for a, e in zip(leak["attribute"], leak["estimate"], strict=True)) or "-",
                 dt)
        return sc

    def history(self) -> pd.DataFrame:
        """One row per probed step: ``step, overall_auc, worst_group_auc, worst_group, dto``."""
        from ..adapt._selection import dto

        rows = []
        for step, part in self.rows.groupby("step", sort=True):
            sc = scalars(part)
            rows.append({"step": int(step), "overall_auc": sc["overall_auc"],
                         "worst_group_auc": sc["worst_group_auc"], "worst_group": sc["worst_group"],
                         **{f"auc[{k}]": v for k, v in sc["group_aucs"].items()}})
        hist = pd.DataFrame(rows)
        if len(hist):
            cols = [c for c in hist.columns if c.startswith("auc[")]
            hist["dto"] = dto(hist[cols].to_numpy(dtype=float)) if cols else math.nan
        return hist

    def best(self) -> dict | None:
        """The selected probed step: ``{"criterion", "step", "value"}`` (the first of ties)."""
        if self.select is None:
            return None
        hist = self.history()
        if not len(hist):
            return None
        vals = hist[self.select].to_numpy(dtype=float)
        if np.isnan(vals).all():
            return None
        i = int(np.nanargmax(vals) if SELECT_CRITERIA[self.select] == "max" else np.nanargmin(vals))
        return {"criterion": self.select, "step": int(hist["step"].iloc[i]), "value": float(vals[i])}

    def finish(self, selected_path: str | os.PathLike | None = None) -> dict:
        """Copy the selected candidate to ``selected_path``; the probe summary for ``run.json``."""
        import shutil

        best = self.best()
        o = self.data.options
        summary = {"probes": int(self.rows["step"].nunique()) if len(self.rows) else 0,
                   "probe_seconds": self.seconds, "n": len(self.data), "warnings": list(self.data.warnings),
                   "manifest": str(o.manifest), "label": o.label,
                   "sensitive": list(o.sensitive), "every": o.every,
                   "settings": {"folds": o.folds, "bootstrap": o.bootstrap, "permutations": o.permutations,
                                "max_samples": o.max_samples, "C": o.C, "split_column": o.split_column,
                                "split": o.split, "select": o.select, "seed": o.seed},
                   "source": dict(self.data.source), "test_split_read": False,
                   "selected": best}
        if len(self.rows):
            summary["at_last"] = step_numbers(self.rows, int(self.rows["step"].max()))
        if best is not None:
            summary["at_selected"] = step_numbers(self.rows, best["step"])
        if best is not None and selected_path is not None:
            src = self.cand_path(best["step"])
            if not src.exists():
                raise FairfoundryError(f"the checkpoint of the selected probe step {best['step']} is missing "
                                       f"({src})", hint="the run directory was edited; re-run the probe")
            tmp = Path(selected_path).with_name(f".{Path(selected_path).name}.tmp-{os.getpid()}")
            shutil.copyfile(src, tmp)
            os.replace(tmp, selected_path)
            summary["selected"]["path"] = str(Path(selected_path).name)
        hist = self.history()
        if len(hist):
            summary["history"] = hist[["step", "overall_auc", "worst_group_auc", "worst_group", "dto"]].to_dict(
                orient="records")
        return summary


class ProbeHook(Hook):
    """Runs the probe from the one training loop (:class:`fairfoundry.adapt.Trainer`).

    Place it after the hook that updates EMA teachers (``on_step_end`` runs in hook order), so
    the probe sees the weights of the finished step.

    Parameters
    ----------
    tracker : ProbeTracker
    features : callable ``(trainer, x) -> (b, d)`` embeddings of network-ready images
    every : probe every this many steps
    total_steps : probe also after the last step
    at_start : also probe before the first step (not when resuming)
    """

    name = "probe"

    def __init__(self, tracker: ProbeTracker, *, features: Callable, every: int, total_steps: int | None = None,
                 at_start: bool = True):
        self.tracker, self.features = tracker, features
        self.every, self.total_steps, self.at_start = int(every), total_steps, at_start
        self.trainer = None

    def _run(self, trainer, step: int) -> None:
        import torch

        modules = [trainer.model]
        modes = [m.training for m in modules]
        for m in modules:
            m.eval()
        try:
            with torch.random.fork_rng(devices=[]):  # the probe never moves the run's random state
                emb = embed_inputs(lambda x: self.features(trainer, x), self.tracker.data, device=trainer.device)
        finally:
            for m, mode in zip(modules, modes, strict=True):
                m.train(mode)
        self.tracker.record(step, emb)

    def on_fit_start(self, trainer) -> None:
        self.trainer = trainer
        if self.at_start:
            self._run(trainer, 0)

    def on_step_end(self, trainer, step: int) -> None:
        if step % self.every == 0 or (self.total_steps is not None and step == self.total_steps):
            self._run(trainer, step)

    def on_epoch_end(self, trainer, epoch: int) -> None:
        # fit: a run that stops early (patience) or has no max_steps is probed after its last step
        cfg = trainer.config
        last = cfg.max_steps is None and epoch >= cfg.epochs
        if (last or trainer.should_stop) and trainer.step % self.every != 0 \
                and int(self.tracker.rows["step"].max() if len(self.tracker.rows) else -1) != trainer.step:
            self._run(trainer, trainer.step)


def image_probe(*, manifest: str | os.PathLike, label: str, sensitive: Sequence[str], every: int,
                preprocess: Callable, out: str | os.PathLike, split_column: str = "split", bootstrap: int = 100,
                max_samples: int = 2000, seed: int = 0, permutations: int = 99, root: str | os.PathLike | None = None,
                csv_name: str = "probe.csv", select: str | None = None) -> tuple[ProbeHook, ProbeTracker]:
    """The probe of a fine-tuning run from images (``fit --adaptation lora|partial|full``): its hook and tracker.

    The validation rows of ``manifest`` are preprocessed once with the encoder's ``preprocess``
    (``image array -> (C, H, W)``) and held as one float16 tensor; the hook embeds them with the
    classifier's ``features`` (the fine-tuned backbone) every ``every`` steps and writes
    ``out/probe.csv`` in the format of pre-training runs, so their curves are comparable.
    ``select`` (a :data:`SELECT_CRITERIA` name) makes the tracker report the best probed step by
    that criterion (``finish()["selected"]``); no weights are saved or chosen by it here.
    """
    import torch

    from ..data import load_image

    opts = ProbeOptions(manifest=str(manifest), label=label, sensitive=tuple(sensitive), every=int(every),
                        split_column=split_column, bootstrap=int(bootstrap), max_samples=int(max_samples),
                        seed=int(seed), root=None if root is None else str(root),
                        permutations=int(permutations), select=select)
    data = load_probe_data(opts)
    t0 = time.perf_counter()
    arrays = []
    for p in data.frame[opts.path_column]:
        x = preprocess(load_image(p))
        arrays.append(torch.as_tensor(np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float32)))
    cache = torch.stack(arrays).to(torch.float16)
    log.info("probe: %d validation images preprocessed once (%.1f s, %.1f MB)", len(arrays),
             time.perf_counter() - t0, cache.numel() * 2 / 1e6)
    data.inputs = lambda idx, device: cache[torch.as_tensor(idx)].to(device=device, dtype=torch.float32)

    def features(trainer, x):
        model = trainer.model
        fn = getattr(model, "features", None)
        return fn(x) if fn is not None else model(x)["features"]

    tracker = ProbeTracker(data, out, csv_name=csv_name)
    return ProbeHook(tracker, features=features, every=int(every)), tracker
