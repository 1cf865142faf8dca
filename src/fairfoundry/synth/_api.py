"""Train a generator on a manifest, load it back, sample requested cells into a manifest."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from .._errors import FairfoundryError
from ._conditions import Conditions, parse_cells

__all__ = ["GENERATOR_FILES", "SAMPLE_FILES", "train_generator", "load_generator", "sample_generator",
           "read_generator_info"]

log = logging.getLogger(__name__)

#: files of a trained generator directory (``generator.json`` is written last: its presence means complete)
GENERATOR_FILES = ("weights.safetensors", "train_ids.txt", "generator.json")
#: files of a sample directory (plus ``images/*.png``)
SAMPLE_FILES = ("manifest.csv", "synthesis.json")


def _logged(progress, total: int, what: str):
    """Wrap a ``progress(n)`` callback so that, when stderr is not a terminal, a plain line
    (step, rate, ETA) is logged at most every 30 s."""
    import sys
    import time

    if sys.stderr.isatty():
        return progress
    state = {"done": 0, "t0": time.perf_counter(), "last": time.perf_counter()}

    def advance(n: int = 1) -> None:
        state["done"] += n
        now = time.perf_counter()
        if now - state["last"] >= 30 or state["done"] == total:
            rate = state["done"] / max(now - state["t0"], 1e-9)
            eta = (total - state["done"]) / rate if rate > 0 else float("nan")
            log.info("%s: %d/%d (%.2f/s, ETA %.0f s)", what, state["done"], total, rate, eta)
            state["last"] = now
        if progress is not None:
            progress(n)

    return advance


def _train_rows(frame, split: str | None, split_col: str, where: str):
    if split is None or split_col not in frame.columns:
        return frame
    rows = frame[frame[split_col].astype(str) == split]
    if len(rows) == 0:
        raise FairfoundryError(f"{where} has no rows with {split_col} == {split!r}",
                               hint=f"{split_col} values: {', '.join(sorted(map(str, frame[split_col].unique())))}")
    return rows


def train_generator(manifest: str | os.PathLike, *, condition, out: str | os.PathLike, generator: str = "ddpm",
                    settings: dict | None = None, split: str | None = "train", split_col: str = "split",
                    resume: bool = False, overwrite: bool = False, progress=None,
                    allow_outside_root: bool = False) -> Path:
    """Train a conditional generator on the images of ``manifest`` and write ``out``.

    Parameters
    ----------
    manifest : CSV/Parquet with ``sample_id``, ``path`` and the condition columns.
    condition : condition columns (a label and protected attributes), e.g. ``["Effusion", "sex"]``;
        rows where any of them is missing/``unknown`` are left out (and counted).
    out : generator directory: :data:`GENERATOR_FILES` plus ``checkpoints/`` (resumable).
    generator : registry name (:func:`list_generators`).
    settings : generator config fields (:class:`DiffusionConfig`), e.g. ``{"steps": 500}``.
    split : train only on rows with ``split_col == split`` when that column exists (None: all rows).
    resume : continue the interrupted or finished run in ``out`` (its config must match except
        ``steps``, ``device`` and ``checkpoint_every``).

    Returns
    -------
    pathlib.Path of ``out``.
    """
    from .._io import file_fingerprint, prepare_out_dir, write_sidecar, write_text_atomic
    from ..data import read_manifest
    from ._images import load_images, resolve_paths
    from ._registry import get_generator

    cls = get_generator(generator)
    config = cls.Config.from_user(**(settings or {}))
    frame = read_manifest(manifest, required=("sample_id",))
    where = f"manifest {manifest}"
    rows = _train_rows(frame, split, split_col, where)
    cols = list(condition) if not isinstance(condition, str) else condition.split(",")
    conditions, keep = Conditions.from_frame(rows, cols, where=where)
    rows = rows[keep]
    # paths are checked before the generator is built (a bad row fails in a second)
    paths = resolve_paths(rows, frame.attrs.get("manifest_path", manifest),
                          allow_outside_root=allow_outside_root)
    gen = cls(config, conditions)
    out = Path(out)
    ckpt = out / "checkpoints"
    if resume:
        saved = ckpt / "config.json"
        if not saved.exists() or not (ckpt / "last" / "weights.safetensors").exists():
            raise FairfoundryError(f"--resume: no checkpoint in {ckpt}", hint="train without --resume first")
        prev = json.loads(saved.read_text())
        if prev.get("hash") != gen.hash:
            a, b = prev.get("config", {}), config.to_dict()
            diff = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in b if k not in ("steps", "device", "checkpoint_every")
                    and a.get(k) != b.get(k)]
            if prev.get("conditions", {}).get("values") != [list(v) for v in conditions.values] or \
                    prev.get("conditions", {}).get("columns") != list(conditions.columns):
                diff.append(f"conditions: {prev.get('conditions', {}).get('columns')} -> {list(conditions.columns)}")
            raise FairfoundryError(f"the checkpoint in {ckpt} comes from another config ({'; '.join(diff)})",
                                   hint="resume with the settings it was trained with, or train into a new --out")
    else:
        prepare_out_dir(out, overwrite=overwrite, outputs=None)
    images = load_images(paths, size=config.image_size, channels=config.channels)
    codes = conditions.encode_frame(rows)
    if overwrite and not resume and ckpt.exists():
        shutil.rmtree(ckpt)
    start = None
    if resume:
        start = json.loads((ckpt / "last" / "state.json").read_text()).get("step")
    log.info("training generator %s on %d images (%s)", generator, len(rows), ", ".join(
        f"{k}: {v}" for k, v in conditions.counts.items()))
    gen.fit(images, codes, checkpoint_dir=ckpt, resume=resume,
            progress=_logged(progress, config.steps, "generator training steps"))
    gen.train_info["resumed_from_step"] = start
    gen.save_weights(out / "weights.safetensors")
    write_text_atomic(out / "train_ids.txt", "\n".join(rows["sample_id"].astype(str)) + "\n")
    write_sidecar(out / "generator.json", kind="fairfoundry.synth.generator", config=config.to_dict(),
                  seed=config.seed, inputs={"manifest": str(Path(manifest).resolve()),
                                            "manifest_sha256": file_fingerprint(manifest),
                                            "split": split, "rows_used": int(len(rows)),
                                            "rows_missing_condition": int((~keep).sum())},
                  generator=generator, conditions=conditions.to_dict(), config_hash=gen.hash, train=gen.train_info)
    return out


def read_generator_info(path: str | os.PathLike) -> dict:
    """The ``generator.json`` of a generator directory (a :class:`FairfoundryError` if incomplete)."""
    path = Path(path)
    info_file = path / "generator.json"
    if not info_file.exists():
        raise FairfoundryError(f"{path} is not a trained generator (no generator.json)",
                               hint="train one with `fairfoundry synth train`")
    try:
        return json.loads(info_file.read_text())
    except json.JSONDecodeError as exc:
        raise FairfoundryError(f"cannot read {info_file}: {exc}") from exc


def load_generator(path: str | os.PathLike):
    """Rebuild the generator saved in ``path`` (config from ``generator.json``, EMA weights)."""
    from ._registry import get_generator

    info = read_generator_info(path)
    cls = get_generator(info.get("generator", "ddpm"))
    try:
        config = cls.Config.from_user(**info["config"])
        conditions = Conditions.from_dict(info["conditions"])
    except (KeyError, TypeError) as exc:
        raise FairfoundryError(f"{Path(path) / 'generator.json'} is incomplete: {exc}") from exc
    gen = cls(config, conditions)
    gen.load_weights(Path(path) / "weights.safetensors")
    gen.train_info = info.get("train", {})
    return gen


def sample_generator(generator_dir: str | os.PathLike, *, cells: str, out: str | os.PathLike, seed: int = 0,
                     guidance: float = 2.0, sample_steps: int = 25, sampler: str = "ddim", batch_size: int = 64,
                     device: str | None = None, overwrite: bool = False, progress=None) -> Path:
    """Generate the requested cells and write a manifest of the images, tagged ``synthetic=1``.

    Parameters
    ----------
    generator_dir : a directory written by :func:`train_generator`.
    cells : ``"Effusion=1,sex=female:200;Effusion=1,sex=male:50"`` (see :func:`parse_cells`).
    out : sample directory: ``images/*.png``, ``manifest.csv`` (``sample_id``, ``path`` relative to it,
        the condition columns, ``cell``, ``synthetic``, ``seed``) and ``synthesis.json``.
    seed, guidance, sample_steps, sampler : see :meth:`DiffusionGenerator.sample`.

    Returns
    -------
    pathlib.Path of ``out``.
    """
    import numpy as np
    import pandas as pd

    from .._io import prepare_out_dir, staged_dir, write_sidecar, write_table_atomic
    from ._images import save_png, to_uint8

    gen = load_generator(generator_dir)
    requests = parse_cells(cells, gen.conditions)
    prepare_out_dir(out, overwrite=overwrite, outputs=["manifest.csv", "synthesis.json", "images"])
    codes = np.concatenate([np.tile(gen.conditions.encode_cell(r.values), (r.n, 1)) for r in requests])
    x = gen.sample(codes, seed=seed, guidance=guidance, sample_steps=sample_steps, sampler=sampler,
                   batch_size=batch_size, device=device, progress=progress)
    arr = to_uint8(x)
    rows, i = [], 0
    for r in requests:
        for k in range(r.n):
            sid = f"syn-{i:06d}"
            rows.append({"sample_id": sid, "path": f"images/{sid}.png", **r.values, "cell": r.name,
                         "synthetic": 1, "seed": seed, "cell_index": k})
            i += 1
    frame = pd.DataFrame(rows)
    info = read_generator_info(generator_dir)
    with staged_dir(out) as stage:
        for row, img in zip(rows, arr, strict=True):
            save_png(stage / row["path"], img)
        write_table_atomic(stage / "manifest.csv", frame)
        write_sidecar(stage / "synthesis.json", kind="fairfoundry.synth.sample", seed=seed,
                      config={"cells": cells, "guidance": guidance, "sample_steps": sample_steps, "sampler": sampler},
                      inputs={"generator": str(Path(generator_dir).resolve()), "config_hash": info.get("config_hash"),
                              "generator_train_manifest": info.get("inputs", {}).get("manifest")},
                      cells=[{"cell": r.name, "n": r.n, "training_images": gen.conditions.counts.get(r.name, 0)}
                             for r in requests])
    return Path(out)
