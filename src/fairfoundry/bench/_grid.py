"""Benchmark grids: encoders x datasets x adaptations x mitigations x label fractions x seeds.

A grid is a YAML file (:class:`GridSpec`). Each **cell** is one ``fairfoundry fit`` run (one
method, one seed) through the same pipeline function the ``fit`` command calls (no copy of it),
written to ``OUT/cells/<cell id>/run``, plus one Parquet row-set ``rows.parquet`` (every per-group
metric and every summary of the cell's test evaluation, with CIs). Cell ids are content
addresses: the SHA-256 of the cell's resolved configuration and of the fingerprints of its input
files, so a re-run (``--resume``) skips every finished cell and recomputes a cell whose inputs
changed. A cell that fails is recorded with its error and the grid goes on.

Executors: ``local`` (cells one after the other in this process) and ``ray`` (cells as Ray tasks
with ``resources`` per cell, on a local cluster or at ``ray_address``). The results store
(:class:`~fairfoundry.bench.ResultsStore`, one DuckDB file) has a single writer: the driver,
which ingests each cell's row-set as it finishes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
)

from .._errors import FairfoundryError

__all__ = ["GridSpec", "DatasetEntry", "AdaptationEntry", "Cell", "load_grid", "grid_cells",
           "run_cell", "run_grid", "GRID_FILES"]

log = logging.getLogger(__name__)

#: what a grid output directory holds
GRID_FILES = ("grid.yaml", "grid.json", "results.duckdb", "cells")
#: FitConfig fields a grid may set for every cell (``fit:`` block)
_SHARED_FIT_KEYS = ("head", "hidden", "dropout", "epochs", "batch_size", "lr", "weight_decay", "optimizer",
                    "patience", "select", "device", "bootstrap", "split_col", "encoder_weights", "encoder_kwargs",
                    "probe_every", "probe_bootstrap", "probe_permutations",  # probe_*: cells that fine-tune from images write probe.csv
                    "prompts", "class_prompts", "adapter_ratios", "adapter_lrs", "adapter_activation",
                    "hallucination_threshold", "hallucination_min_events")
#: shared fit keys that only apply to zero-shot / CLIP-Adapter cells
_ZERO_SHOT_KEYS = ("prompts", "class_prompts", "adapter_ratios", "adapter_lrs", "adapter_activation",
                   "hallucination_threshold", "hallucination_min_events")


class DatasetEntry(BaseModel):
    """One dataset axis value: a manifest with its label and attributes, and how to embed it."""

    model_config = ConfigDict(extra="forbid")
    name: str
    manifest: str
    label: str
    sensitive: list[str]
    bins: dict[str, list[float]] = Field(default_factory=dict)
    embeddings: dict[str, str] = Field(default_factory=dict, description=(
        "encoder name -> cached embeddings (embed directory, .npy or Parquet) of this manifest"))

    @field_validator("sensitive")
    @classmethod
    def _nonempty(cls, v):
        if not v:
            raise ValueError("must not be empty")
        return v


class AdaptationEntry(BaseModel):
    """One adaptation axis value: a head on cached embeddings, LoRA, fine-tuning, or with a CLIP-style
    encoder zero-shot CLIP / CLIP-Adapter (``fit --adaptation zero-shot``)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["probe", "lora", "full", "partial", "frozen", "zero-shot", "clip-adapter"] = "probe"
    head: Literal["linear", "mlp"] = "linear"
    lora_r: int = 8
    lora_alpha: float = 16.0
    partial_blocks: int = Field(2, ge=1)

    @model_serializer(mode="wrap")
    def _without_unused(self, handler):
        # partial_blocks only shapes partial cells: left out otherwise, so that a grid written before
        # the field existed reads as unchanged on --resume
        data = handler(self)
        if self.kind != "partial":
            data.pop("partial_blocks", None)
        return data

    @property
    def label(self) -> str:
        if self.kind == "probe":
            return "linear-probe" if self.head == "linear" else "mlp-probe"
        if self.kind == "partial":
            return f"partial-last{self.partial_blocks}"
        return f"lora-r{self.lora_r}" if self.kind == "lora" else self.kind


class GridSpec(BaseModel):
    """A benchmark grid (YAML keys = these field names; unknown keys and empty axes are errors).

    Attributes
    ----------
    name : the grid's name (reports)
    datasets : list of :class:`DatasetEntry`
    encoders : encoder names (zoo presets, ``backend:id`` or checkpoints). A dataset with cached
        ``embeddings`` for an encoder uses them; otherwise the manifest's images are embedded.
    adaptations : list of :class:`AdaptationEntry` (or the strings ``probe``, ``mlp``, ``lora``,
        ``full``, ``partial``, ``frozen``, ``zero-shot``, ``clip-adapter``; the last two need a CLIP-style encoder,
        prompts in ``fit: {prompts: [...], class_prompts: {...}}``)
    mitigations : method names of ``fairfoundry fit --list-methods`` (``erm`` is the reference),
        or ``{name: ..., args: {...}}``
    label_fractions : fractions of the training *patients* kept (validation and test untouched)
    seeds : one cell per seed
    fit : settings shared by every cell (``epochs``, ``bootstrap``, ``select``, ``device``, ...)
    resources : Ray resources per cell (``num_cpus``, ``num_gpus``)
    """

    model_config = ConfigDict(extra="forbid")
    name: str = "grid"
    datasets: list[DatasetEntry]
    encoders: list[str]
    adaptations: list[AdaptationEntry] = Field(default_factory=lambda: [AdaptationEntry()])
    mitigations: list[dict[str, Any]] = Field(default_factory=lambda: [{"name": "erm"}])
    label_fractions: list[float] = Field(default_factory=lambda: [1.0])
    seeds: list[int] = Field(default_factory=lambda: [0])
    fit: dict[str, Any] = Field(default_factory=dict)
    resources: dict[str, float] = Field(default_factory=lambda: {"num_cpus": 1})

    @property
    def n_cells(self) -> int:
        """The number of cells (product of the axes' lengths), without reading any input file."""
        return (len(self.datasets) * len(self.encoders) * len(self.adaptations) * len(self.mitigations)
                * len(self.label_fractions) * len(self.seeds))

    @field_validator("datasets", "encoders", "adaptations", "mitigations", "label_fractions", "seeds")
    @classmethod
    def _axis_nonempty(cls, v):
        if not v:
            raise ValueError("an axis of the grid must list at least one value")
        return v

    @field_validator("adaptations", mode="before")
    @classmethod
    def _adaptations(cls, v):
        named = {"probe": {"kind": "probe"}, "linear": {"kind": "probe"}, "mlp": {"kind": "probe", "head": "mlp"},
                 "lora": {"kind": "lora"}, "full": {"kind": "full"}, "partial": {"kind": "partial"},
                 "frozen": {"kind": "frozen"},
                 "zero-shot": {"kind": "zero-shot"}, "clip-adapter": {"kind": "clip-adapter"}}
        out = []
        for a in v or []:
            if isinstance(a, str):
                if a not in named:
                    raise ValueError(f"unknown adaptation {a!r}; use one of {', '.join(named)} or a mapping")
                a = named[a]
            out.append(a)
        return out

    @field_validator("mitigations", mode="before")
    @classmethod
    def _mitigations(cls, v):
        return [{"name": m, "args": {}} if isinstance(m, str) else {"args": {}, **m} for m in (v or [])]

    @field_validator("label_fractions")
    @classmethod
    def _fractions(cls, v):
        bad = [f for f in v if not 0 < f <= 1]
        if bad:
            raise ValueError(f"label fractions must be in (0, 1], got {bad}")
        return v

    @field_validator("fit")
    @classmethod
    def _fit_keys(cls, v):
        bad = sorted(set(v) - set(_SHARED_FIT_KEYS))
        if bad:
            raise ValueError(f"unknown key(s) {', '.join(bad)} in 'fit'; valid: {', '.join(_SHARED_FIT_KEYS)}")
        return v


def load_grid(source: str | os.PathLike | dict) -> GridSpec:
    """Read and validate a grid (YAML file or dict); relative paths are relative to the file."""
    from .._io import read_yaml_mapping

    where, base = "the grid", None
    if isinstance(source, dict):
        data = json.loads(json.dumps(source))
    else:
        path = Path(source)
        where, base = str(path), path.parent
        data = read_yaml_mapping(path, what="grid", keys_hint="datasets, encoders, mitigations, seeds, ...")
    from ..models._checkpoint import resolve_weights_path

    for d in data.get("datasets") or []:  # package:<module>/<path>: data shipped inside a package
        if isinstance(d, dict):
            if isinstance(d.get("manifest"), str) and d["manifest"].startswith("package:"):
                d["manifest"] = str(resolve_weights_path(d["manifest"]))
            for enc, emb in (d.get("embeddings") or {}).items():
                if isinstance(emb, str) and emb.startswith("package:"):
                    d["embeddings"][enc] = str(resolve_weights_path(emb))
    if base is not None:
        for d in data.get("datasets") or []:
            if isinstance(d, dict):
                if isinstance(d.get("manifest"), str) and not Path(d["manifest"]).is_absolute():
                    d["manifest"] = str(base / d["manifest"])
                for enc, emb in (d.get("embeddings") or {}).items():
                    if isinstance(emb, str) and not Path(emb).is_absolute():
                        d["embeddings"][enc] = str(base / emb)
    try:
        spec = GridSpec(**data)
    except ValidationError as exc:
        from .._values import pydantic_error

        raise pydantic_error(exc, where=where, model=GridSpec) from exc
    names = [d.name for d in spec.datasets]
    if len(set(names)) != len(names):
        raise FairfoundryError(f"dataset names must be unique in {where}: {names}")
    from ..mitigate import MITIGATIONS

    for m in spec.mitigations:
        if m.get("name") not in MITIGATIONS:
            raise FairfoundryError(f"unknown mitigation {m.get('name')!r} in {where}",
                                   hint="see `fairfoundry fit --list-methods`")
    for d in spec.datasets:
        if not Path(d.manifest).is_file():
            raise FairfoundryError(f"manifest of dataset {d.name!r} not found: {d.manifest}")
    return spec


class Cell(BaseModel):
    """One fit of the grid: every axis value resolved, plus the fingerprints of its inputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str
    encoder: str
    adaptation: str
    mitigation: str
    label_fraction: float
    seed: int
    fit_config: dict[str, Any]
    inputs: dict[str, str]

    @property
    def cell_id(self) -> str:
        payload = json.dumps(self.model_dump(), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def axes(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "encoder": self.encoder, "adaptation": self.adaptation,
                "mitigation": self.mitigation, "label_fraction": self.label_fraction, "seed": self.seed}


def _fingerprint(path: str) -> str:
    from .._io import file_fingerprint

    p = Path(path)
    if p.is_dir():  # an embed directory: names and sizes of its files
        h = hashlib.sha256()
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(f"{f.relative_to(p)}:{f.stat().st_size}\n".encode())
        return "dir:" + h.hexdigest()
    return file_fingerprint(p)


def grid_cells(spec: GridSpec) -> list[Cell]:
    """Every cell of the grid, in a fixed order (datasets, encoders, adaptations, methods, fractions, seeds)."""
    from ..pipeline import method_label

    cells = []
    prints: dict[str, str] = {}
    for d, enc, ad, m, frac, seed in itertools.product(spec.datasets, spec.encoders, spec.adaptations,
                                                        spec.mitigations, spec.label_fractions, spec.seeds):
        cfg: dict[str, Any] = {"manifest": d.manifest, "label": d.label, "sensitive": list(d.sensitive),
                               "bins": dict(d.bins), "methods": [{"name": m["name"], "args": m.get("args") or {}}],
                               "seeds": [int(seed)], "emissions": False, "html": False,
                               "adaptation": ad.kind, "head": ad.head, **spec.fit}
        if ad.kind == "lora":
            cfg.update(lora_r=ad.lora_r, lora_alpha=ad.lora_alpha)
        if ad.kind == "partial":
            cfg.update(partial_blocks=ad.partial_blocks)
        if ad.kind == "probe":  # a frozen encoder: the fairness probe of training does not apply
            cfg.pop("probe_every", None)
            cfg.pop("probe_bootstrap", None)
            cfg.pop("probe_permutations", None)
        if ad.kind not in ("zero-shot", "clip-adapter"):  # prompt settings only shape zero-shot cells
            for key in _ZERO_SHOT_KEYS:
                cfg.pop(key, None)
        if ad.kind == "probe" and enc in d.embeddings:
            cfg["embeddings"] = d.embeddings[enc]
        else:
            cfg["encoder"] = enc
        inputs = {"manifest": prints.setdefault(d.manifest, _fingerprint(d.manifest))}
        if "embeddings" in cfg:
            inputs["embeddings"] = prints.setdefault(cfg["embeddings"], _fingerprint(cfg["embeddings"]))
        cells.append(Cell(dataset=d.name, encoder=enc, adaptation=ad.label, mitigation=method_label(m["name"], m.get("args")),
                          label_fraction=float(frac), seed=int(seed), fit_config=cfg, inputs=inputs))
    ids = [c.cell_id for c in cells]
    if len(set(ids)) != len(ids):
        raise FairfoundryError("two cells of the grid are identical (an axis lists the same value twice)")
    return cells


def _subsample_train(manifest_path: str, *, fraction: float, seed: int, split_col: str, out: Path) -> str:
    """Keep ``fraction`` of the training patients; the others' rows move to split ``unused``."""
    import numpy as np

    from .._io import write_table_atomic
    from ..data import read_manifest

    man = read_manifest(manifest_path, required=("sample_id",))
    train = man[split_col].astype(str) == "train"
    key = "patient_id" if "patient_id" in man.columns else "sample_id"
    patients = np.array(sorted(man.loc[train, key].astype(str).unique()))
    rng = np.random.default_rng(seed)
    n_keep = max(1, int(round(fraction * len(patients))))
    keep = set(rng.choice(patients, size=n_keep, replace=False).tolist())
    drop = train & ~man[key].astype(str).isin(keep)
    man.loc[drop, split_col] = "unused"
    if "path" in man.columns:  # keep image paths valid from the new location
        base = Path(manifest_path).parent
        man["path"] = [p if Path(str(p)).is_absolute() else str((base / str(p)).resolve())
                       for p in man["path"].astype(str)]
    return str(write_table_atomic(out, man))


def _fit(cfg_dict: dict, out: Path) -> Path:
    """The one place the grid runs a fit: the ``fairfoundry fit`` pipeline."""
    from ..pipeline import fit_run, load_fit_config

    return fit_run(load_fit_config(cfg_dict), out, overwrite=True)


def _row_set(cell: Cell, run_dir: Path):
    import pandas as pd

    ev_dir = run_dir / "evaluation"
    by_group = pd.read_csv(ev_dir / "evaluation.csv")
    by_group = by_group.assign(kind="group")
    summary = json.loads((ev_dir / "summary.json").read_text(encoding="utf-8"))
    summ = pd.DataFrame(summary.get("summaries") or [])
    if len(summ):
        summ = summ.assign(kind="summary", group=summ.get("detail", ""))
    cols = ["label", "attribute", "group", "metric", "estimate", "ci_low", "ci_high", "kind"]
    frames = [f.reindex(columns=cols) for f in (by_group, summ) if len(f)]
    rows = pd.concat(frames, ignore_index=True)
    rows["group"] = rows["group"].fillna("").astype(str)
    rows["label"] = rows["label"].astype(str)
    for k, v in cell.axes.items():
        rows[k] = v
    rows.insert(0, "cell_id", cell.cell_id)
    return rows


def run_cell(cell: Cell, grid_dir: str | os.PathLike) -> dict:
    """Run one cell into ``grid_dir/cells/<id>`` (skipped when its row-set exists); never raises.

    Returns a status dict: ``cell_id``, ``status`` (``done``, ``skipped`` or ``failed``),
    ``wall_s``, ``error`` and the path of the row-set.
    """
    import shutil
    import tempfile

    from .._io import write_json_atomic, write_table_atomic

    cell_dir = Path(grid_dir) / "cells" / cell.cell_id
    rows_path = cell_dir / "rows.parquet"
    if rows_path.is_file():
        return {"cell_id": cell.cell_id, "status": "skipped", "rows": str(rows_path), "wall_s": 0.0}
    cell_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cell_dir / "cell.json", {"cell_id": cell.cell_id, **cell.model_dump()})
    t0 = time.perf_counter()
    stage = Path(tempfile.mkdtemp(prefix=".staging-cell-", dir=cell_dir))
    try:
        cfg = dict(cell.fit_config)
        if cell.label_fraction < 1:
            cfg["manifest"] = _subsample_train(cfg["manifest"], fraction=cell.label_fraction, seed=cell.seed,
                                               split_col=cfg.get("split_col", "split"),
                                               out=stage / "manifest.parquet")
        run_dir = _fit(cfg, stage / "run")
        rows = _row_set(cell, run_dir)
        if (cell_dir / "run").exists():
            shutil.rmtree(cell_dir / "run")
        os.replace(run_dir, cell_dir / "run")
        write_table_atomic(rows_path, rows)  # last: its presence marks the cell finished
        (cell_dir / "error.json").unlink(missing_ok=True)
        return {"cell_id": cell.cell_id, "status": "done", "rows": str(rows_path),
                "wall_s": time.perf_counter() - t0, "pid": os.getpid()}
    except Exception as exc:  # a failed cell is recorded; the grid goes on
        message = exc.message if isinstance(exc, FairfoundryError) else f"{type(exc).__name__}: {exc}"
        write_json_atomic(cell_dir / "error.json", {"cell_id": cell.cell_id, "error": message,
                                                    "traceback": traceback.format_exc()})
        return {"cell_id": cell.cell_id, "status": "failed", "error": message, "wall_s": time.perf_counter() - t0,
                "pid": os.getpid()}
    finally:
        shutil.rmtree(stage, ignore_errors=True)


#: relative cost of one epoch of a cell's adaptation, for the order in which Ray receives cells
_EPOCH_COST = {"full": 3.0, "lora": 3.0, "partial": 2.5, "frozen": 2.0, "clip-adapter": 1.0}


def _cell_cost(cell: Cell) -> float:
    """A rough relative cost of a cell: image passes through the encoder per epoch, or one pass.

    Only the order matters (longest first): a list scheduler such as Ray's finishes a grid sooner
    when its long cells (fine-tuning from images) start first and its short ones (a probe on cached
    embeddings) fill the gaps at the end, instead of one long cell starting last on an otherwise idle
    cluster."""
    cfg = cell.fit_config
    kind = cfg.get("adaptation", "probe")
    if kind in _EPOCH_COST:
        return _EPOCH_COST[kind] * float(cfg.get("epochs", 1)) * cell.label_fraction
    if kind == "zero-shot":
        return 1.0
    return 0.1 if "embeddings" in cfg else 1.0  # a probe embeds its images once unless they are cached


def _pinned_cell(cell: Cell, grid_dir: str, threads: int) -> dict:
    """:func:`run_cell` with every thread pool of the process (torch, BLAS, OpenMP) held to ``threads``:
    a Ray task granted ``num_cpus`` uses that many cores, whatever ``OMP_NUM_THREADS`` the worker
    inherited, so cells running side by side do not oversubscribe the machine."""
    from threadpoolctl import threadpool_limits

    try:
        import torch
    except ImportError:  # pragma: no cover - every cell fits with torch; run_cell records the error
        torch = None
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        status = run_cell(cell, grid_dir)
    if torch is not None:
        status["threads"] = torch.get_num_threads()
    status["niceness"] = os.nice(0)
    return status


def _ray_cells(cells: list[Cell], grid_dir: Path, *, resources: dict, address: str | None,
               num_cpus: int | None, finish: Callable[[Cell, dict], None]) -> dict:
    """Run ``cells`` as Ray tasks, longest first; ``finish`` is called in the driver as each one ends.

    One task per cell, on the workers Ray starts once per CPU slot and reuses for every task (no
    ``max_calls``, no per-task runtime environment), so each worker imports torch and fairfoundry
    once. A task receives the cell (its resolved configuration and input paths, a few kB) and
    returns a status dict; inputs are read from their paths and outputs written under
    ``grid_dir`` by the worker, so nothing large crosses the object store.

    Returns the timings: ``startup_s`` (starting or connecting to the cluster), ``cells_s`` (first
    task submitted to last result received), ``shutdown_s`` (stopping a cluster started here),
    ``workers`` (distinct processes that ran cells), and the ``threads_per_cell`` and
    ``worker_niceness`` the cells ran with.
    """
    from .._ray import ray_session

    threads = max(1, int(resources.get("num_cpus", 1)))
    t0 = time.perf_counter()
    with ray_session(address=address, num_cpus=num_cpus) as ray:
        started = time.perf_counter()
        remote = ray.remote(num_cpus=float(resources.get("num_cpus", 1)),
                            num_gpus=float(resources.get("num_gpus", 0)))(_pinned_cell)
        ordered = sorted(cells, key=_cell_cost, reverse=True)  # stable: grid order among equals
        pending = {remote.remote(c, str(grid_dir), threads): c for c in ordered}
        pids, threads_seen, nice_seen = set(), set(), set()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cell = pending.pop(ref)
                try:
                    status = ray.get(ref)
                    pids.add(status.get("pid"))
                    threads_seen.add(status.get("threads"))
                    nice_seen.add(status.get("niceness"))
                except Exception as exc:  # the worker died: recorded as a failed cell
                    status = {"cell_id": cell.cell_id, "status": "failed", "error": f"ray task failed: {exc}",
                              "wall_s": float("nan")}
                finish(cell, status)
        ended = time.perf_counter()
    return {"startup_s": started - t0, "cells_s": ended - started, "shutdown_s": time.perf_counter() - ended,
            "workers": len(pids - {None}), "threads_per_cell": sorted(threads_seen - {None}),
            "worker_niceness": sorted(nice_seen - {None})}


def run_grid(spec: GridSpec | str | os.PathLike | dict, out: str | os.PathLike, *,
             executor: Literal["local", "ray"] = "local", resume: bool = False, overwrite: bool = False,
             ray_address: str | None = None, num_cpus: int | None = None,
             progress: Callable[[int], None] | None = None) -> dict:
    """Run every cell of a grid into ``out`` and ingest the results into ``out/results.duckdb``.

    Parameters
    ----------
    spec : a :class:`GridSpec`, or a YAML path / dict read by :func:`load_grid`
    out : the grid directory
    executor : ``local`` or ``ray``
    resume : continue a grid in ``out`` (finished cells are skipped, failed ones retried)
    overwrite : start over in a non-empty ``out`` (everything in it is deleted)
    ray_address : a running Ray cluster (default: start a local one)
    num_cpus : CPUs of the local Ray cluster (default: all)
    progress : called with 1 as each cell finishes

    Returns
    -------
    dict: ``cells``, ``done``, ``skipped``, ``failed`` (list of ``{cell_id, error}``), ``out``, and
    ``timing``: ``executor``, ``startup_s`` (Ray: starting or reaching the cluster), ``cells_s``
    (running the cells and ingesting their rows), ``shutdown_s`` (Ray: stopping a cluster started
    here), ``total_s``, ``workers`` (distinct processes that ran cells: 1 locally; on Ray, the
    workers it started and reused) and ``threads_per_cell`` (torch's threads in the cells: the
    local executor leaves torch at its default, a Ray task is held to its ``num_cpus``; results
    can differ in the last digits between thread counts). Also in ``summary.json``.
    """
    import shutil

    import yaml

    from .._io import write_json_atomic, write_text_atomic
    from ._store import ResultsStore

    if not isinstance(spec, GridSpec):
        spec = load_grid(spec)
    if executor not in ("local", "ray"):
        raise FairfoundryError(f"unknown executor {executor!r}; use local or ray")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if overwrite:
            shutil.rmtree(out)
        elif not resume:
            raise FairfoundryError(f"{out} is not empty", hint="pass --resume to continue this grid, or --overwrite "
                                                              "to start over")
        elif not (out / "grid.json").is_file():
            raise FairfoundryError(f"{out} is not a grid directory (no grid.json): refusing to resume into it")
    out.mkdir(parents=True, exist_ok=True)
    for stale in (out / "cells").glob("*/.staging-cell-*") if (out / "cells").exists() else []:
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed run
    cells = grid_cells(spec)
    if resume and (out / "grid.json").is_file():
        old = json.loads((out / "grid.json").read_text(encoding="utf-8"))
        if old.get("spec") != json.loads(spec.model_dump_json()):
            log.warning("the grid changed since %s was started: cells whose configuration or inputs changed "
                        "are new cells; the others are kept", out)
    write_text_atomic(out / "grid.yaml", yaml.safe_dump(json.loads(spec.model_dump_json()), sort_keys=False))
    from .._io import write_sidecar

    write_sidecar(out / "grid.json", kind="fairfoundry.bench-grid", config=None,
                  seed=None, spec=json.loads(spec.model_dump_json()), cells=[c.cell_id for c in cells])
    summary = {"out": str(out), "cells": len(cells), "done": 0, "skipped": 0, "failed": []}
    with ResultsStore(out / "results.duckdb") as store:
        store.register_cells(cells)

        def finish(cell: Cell, status: dict) -> None:
            if status["status"] == "failed":
                summary["failed"].append({"cell_id": cell.cell_id, **cell.axes, "error": status.get("error")})
                log.warning("cell %s (%s) failed: %s", cell.cell_id, cell.axes, status.get("error"))
            else:
                summary[status["status"]] += 1
                store.ingest(cell, Path(status["rows"]))
            store.set_status(cell.cell_id, status["status"] if status["status"] != "skipped" else "done",
                             error=status.get("error"), wall_s=status.get("wall_s"))
            if progress is not None:
                progress(1)

        timing: dict[str, Any] = {"executor": executor}
        t0 = time.perf_counter()
        if executor == "local":
            pids = set()
            for cell in cells:
                status = run_cell(cell, out)
                pids.add(status.get("pid"))
                finish(cell, status)
            torch = sys.modules.get("torch")  # imported by the cells that ran; not imported here
            timing.update(startup_s=0.0, cells_s=time.perf_counter() - t0, workers=len(pids - {None}),
                          threads_per_cell=[torch.get_num_threads()] if torch is not None else [])
        else:
            todo = []
            for cell in cells:
                if (out / "cells" / cell.cell_id / "rows.parquet").is_file():
                    finish(cell, run_cell(cell, out))  # skipped without a task
                else:
                    todo.append(cell)
            timing.update(startup_s=0.0, cells_s=0.0, shutdown_s=0.0, workers=0)
            if todo:
                timing.update(_ray_cells(todo, out, resources=spec.resources, address=ray_address,
                                         num_cpus=num_cpus, finish=finish))
        timing["total_s"] = time.perf_counter() - t0
    summary["timing"] = timing
    write_json_atomic(out / "summary.json", summary)
    return summary
