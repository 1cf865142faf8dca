"""Embedding extraction with a content-addressed, sharded, resumable cache.

Layout of the cache (default ``$FAIRFOUNDRY_CACHE/embeddings`` or ``~/.cache/fairfoundry/embeddings``)::

    <cache>/<encoder key>/encoder.json        what the key stands for (model, weights, preprocessing)
    <cache>/<encoder key>/<shard key>.npz     float32 embeddings + ok mask + sample ids of one shard

The encoder key hashes backend, model id, constructor kwargs, weights fingerprint (sha256 of the
file(s) or ``random:seed``), preprocessing, precision and the versions of the libraries that
compute the numbers (:func:`library_versions`: fairfoundry, torch, torchvision, Pillow and the
backend's library), so upgrading any of them recomputes rather than reusing stale embeddings; the
device is not in the key (CPU and GPU float32 results agree to ~1e-5). A shard key hashes the encoder key and,
for each of the shard's rows, ``sample_id``, absolute path, file size and mtime. A shard file is
written atomically (temp file + ``os.replace``) only once complete, so a run killed at any point
(even ``kill -9``) leaves only whole shards, and the next run recomputes only the missing ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import FairfoundryError
from .._io import prepare_out_dir, staged_dir, write_json_atomic, write_sidecar
from ._registry import RANDOM, load_encoder, resolve_model

__all__ = ["extract_embeddings", "read_embeddings", "ExtractionResult", "default_cache_dir",
           "read_image_manifest", "EMBEDDING_FILES"]

log = logging.getLogger(__name__)

SCHEMA = 1
#: files an ``embed`` run writes to its output directory (sidecar last)
EMBEDDING_FILES = ("embeddings.npy", "sample_ids.txt", "skipped.csv", "embeddings.parquet",
                   "embeddings.json")
_EXECUTORS = ("local", "ray")
_ON_ERROR = ("strict", "skip")


@dataclass
class ExtractionResult:
    """What :func:`extract_embeddings` did."""

    out: Path
    n: int
    dim: int
    skipped: list[str]
    shards_total: int
    shards_computed: int
    shards_reused: int
    cache_key: str
    up_to_date: bool = False


def default_cache_dir() -> Path:
    """``$FAIRFOUNDRY_CACHE/embeddings``, else ``~/.cache/fairfoundry/embeddings``."""
    root = os.environ.get("FAIRFOUNDRY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fairfoundry")
    return Path(root) / "embeddings"


def _sha(obj: Any, n: int = 24) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def read_image_manifest(manifest: str | os.PathLike, *, allow_outside_root: bool = False):
    """Read a manifest with ``sample_id`` and ``path``; add ``_abspath`` (resolved against its
    folder by :func:`fairfoundry.data.resolve_paths`: a relative path climbing out of the
    folder is refused unless ``allow_outside_root``).

    Returns
    -------
    pandas.DataFrame
        The manifest (ids as strings) plus ``_abspath``.
    """
    manifest = Path(manifest)
    try:
        from ..data import read_manifest
    except ImportError:  # pragma: no cover - the data layer always provides it
        read_manifest = None
    if read_manifest is not None:
        frame = read_manifest(manifest, required=("sample_id", "path"))
    else:  # pragma: no cover
        from .._errors import did_you_mean
        from .._io import read_table

        frame = read_table(manifest, what="manifest")
        for col in ("sample_id", "path"):
            if col not in frame.columns:
                raise FairfoundryError(f"manifest {manifest} lacks column {col!r}",
                                       hint=did_you_mean(col, frame.columns, what="its columns"))
        frame["sample_id"] = frame["sample_id"].astype(str)
        dup = frame["sample_id"].duplicated()
        if dup.any():
            raise FairfoundryError(f"manifest {manifest}: duplicate sample_id "
                                   f"{frame.loc[dup, 'sample_id'].iloc[0]!r}")
    empty = frame["path"].isna() | (frame["path"].astype(str).str.strip() == "")
    if empty.any():
        rows = (frame.index[empty.to_numpy()] + 2).tolist()[:5]
        raise FairfoundryError(f"manifest {manifest}: column 'path' is empty in {int(empty.sum())} "
                               f"row(s) (file lines {rows})")
    bad_ids = frame["sample_id"].astype(str).str.contains("[\r\n]", regex=True)
    if bad_ids.any():
        raise FairfoundryError(f"manifest {manifest}: sample_id values may not contain line breaks")
    from ..data import resolve_paths

    frame = frame.reset_index(drop=True)
    frame["_abspath"] = resolve_paths(frame["path"].astype(str), root=manifest.resolve().parent,
                                      allow_outside_root=allow_outside_root,
                                      source=f"manifest {manifest}")
    return frame


def _file_stats(paths: list[str]) -> list[tuple[int, int]]:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((-1, -1))
    return out


#: libraries whose version can change the numbers, per backend (besides torch, torchvision,
#: Pillow and fairfoundry itself, which every backend uses)
_NUMERIC_LIBS = {"timm": ("timm",), "retfound": ("timm",), "open_clip": ("open_clip_torch", "timm"),
                 "hf": ("transformers",), "xrv": ("torchxrayvision",)}


def library_versions(backend: str) -> dict[str, str | None]:
    """Versions of the libraries that compute an embedding with ``backend`` (part of the cache key).

    A new torch, timm, open_clip, transformers, torchxrayvision, torchvision, Pillow or fairfoundry
    release can change embeddings numerically (a kernel, a default, a resize); keying the cache on
    their versions means an upgrade recomputes instead of silently reusing stale shards.
    """
    from importlib import metadata

    from .. import __version__

    out: dict[str, str | None] = {"fairfoundry": __version__}
    for pkg in ("torch", "torchvision", "pillow", *_NUMERIC_LIBS.get(backend, ())):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _encoder_key(ref, *, seed: int, amp: bool) -> tuple[str, dict]:
    wfp = ref.weights_fingerprint()
    if wfp == RANDOM:
        wfp = f"random:seed={seed}"
    ident = {"schema": SCHEMA, "backend": ref.backend, "model": ref.model_id,
             "model_kwargs": ref.model_kwargs, "weights": wfp,
             "preprocessing": ref.preprocessing.to_dict() if ref.preprocessing else None,
             "amp": bool(amp), "libraries": library_versions(ref.backend)}
    return _sha(ident), ident


def _save_shard(path: Path, emb, ok, ids: list[str]) -> None:
    import numpy as np

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, emb=emb.astype(np.float32), ok=ok.astype(bool), ids=np.asarray(ids, dtype=str))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _load_shard(path: Path, ids: list[str]):
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            emb, ok, sids = z["emb"], z["ok"], z["ids"]
    except Exception as exc:  # unreadable shard: treat as missing
        log.warning("ignoring unreadable cache shard %s: %s", path, exc)
        return None
    if list(map(str, sids)) != ids:
        raise FairfoundryError(
            f"cache shard {path} holds other sample_ids than the manifest rows it is keyed by",
            hint=f"the cache is corrupted or was edited; delete {path.parent} or use another --cache-dir")
    return emb, ok


def _clean_stale_temps(folder: Path) -> None:
    for tmp in folder.glob(".*.tmp"):
        parts = tmp.name.split(".")
        try:
            pid = int(parts[-2])
        except (ValueError, IndexError):
            continue
        try:
            os.kill(pid, 0)
            alive = pid != os.getpid()
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            with contextlib.suppress(OSError):
                tmp.unlink()


def extract_embeddings(manifest: str | os.PathLike, model: str, *, out: str | os.PathLike,
                       weights=None, device: str = "cpu", batch_size: int = 32,
                       num_workers: int = 0, shard_size: int = 256,
                       cache_dir: str | os.PathLike | None = None, executor: str = "local",
                       on_error: str = "strict", overwrite: bool = False,
                       trust_checkpoint: bool = False, download: bool = False, seed: int = 0,
                       model_kwargs: dict | None = None, amp: bool | None = None,
                       parquet: bool = False, ray_address: str | None = None,
                       ray_num_cpus: int | None = None,
                       progress: Callable[[int], None] | None = None,
                       allow_outside_root: bool = False) -> ExtractionResult:
    """Embed every image of a manifest with one encoder; cached, sharded and resumable.

    Parameters
    ----------
    manifest : path to a CSV/TSV/Parquet with ``sample_id`` and ``path`` (relative to the manifest)
    model : preset, ``backend:id`` or local checkpoint (see :func:`load_encoder`)
    out : output directory (``embeddings.npy``, ``sample_ids.txt``, ``embeddings.json``)
    weights, trust_checkpoint, download, seed, model_kwargs : passed to :func:`load_encoder`
    device : ``cpu`` / ``cuda`` / ...
    batch_size : images per forward pass (batches never cross shard boundaries)
    num_workers : DataLoader worker processes decoding images (local executor)
    shard_size : rows per cache shard (the unit of resumption)
    cache_dir : cache root (default :func:`default_cache_dir`)
    executor : ``"local"`` (default, no Ray) or ``"ray"`` (one Ray task per missing shard)
    on_error : ``"strict"`` (unreadable images are an error listing them) or ``"skip"`` (left
        out of the embeddings and listed in ``skipped.csv``)
    overwrite : replace existing outputs in ``out``
    amp : mixed precision (default: on for CUDA)
    parquet : also write ``embeddings.parquet`` (``sample_id`` + ``e0..e{d-1}``)
    ray_address, ray_num_cpus : Ray cluster address (default: start a local instance) and CPUs
    progress : called with the number of images finished
    allow_outside_root : accept relative paths that climb out of the manifest's folder

    Returns
    -------
    ExtractionResult

    Raises
    ------
    FairfoundryError
        Bad manifest, missing or unreadable images (strict), unknown model, bad weights, outputs
        present without ``overwrite``. Nothing is written to ``out`` on error.
    """
    _check_options(executor=executor, on_error=on_error, batch_size=batch_size,
                   shard_size=shard_size, num_workers=num_workers)
    out = Path(out)
    frame, ids, paths, stats = _image_inputs(manifest, on_error=on_error,
                                             allow_outside_root=allow_outside_root)
    ref = resolve_model(model, weights=weights, model_kwargs=model_kwargs)
    use_amp = bool(amp) if amp is not None else str(device).startswith("cuda")
    key, ident = _encoder_key(ref, seed=seed, amp=use_amp)
    manifest_fp = _sha([ids, paths, stats], 16)
    run_key = _sha([key, manifest_fp, on_error, bool(parquet)], 16)
    side = out / "embeddings.json"
    done = _up_to_date(out, run_key, key)
    if done is not None:
        return done
    prepare_out_dir(out, overwrite=overwrite, outputs=list(EMBEDDING_FILES))

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    plan = _plan_shards(cache / key, key, ids, paths, stats, shard_size=int(shard_size))
    if progress:
        progress(sum(plan.bounds[s][1] - plan.bounds[s][0] for s in plan.results))
    load_args = {"name_or_path": str(model), "weights": None if weights is None else str(weights),
                 "trust_checkpoint": bool(trust_checkpoint), "download": bool(download),
                 "seed": int(seed), "model_kwargs": dict(model_kwargs or {})}
    info = _compute_shards(plan, load_args, paths, key=key, ident=ident, executor=executor,
                           device=device, batch_size=int(batch_size),
                           num_workers=int(num_workers), amp=use_amp, ray_address=ray_address,
                           ray_num_cpus=ray_num_cpus, progress=progress)
    emb, kept_ids, skipped, bad = _assemble(plan, ids, paths, on_error=on_error)
    dim = int(info["embed_dim"])
    _write_outputs(out, emb, kept_ids, skipped, [frame["path"].iloc[i] for i in bad],
                   parquet=parquet)
    config = {"model": str(model), "weights": load_args["weights"], "device": str(device),
              "batch_size": int(batch_size), "num_workers": int(num_workers),
              "shard_size": int(shard_size), "executor": executor, "on_error": on_error,
              "amp": use_amp, "model_kwargs": dict(model_kwargs or {}), "cache_dir": str(cache)}
    n_shards, reused = len(plan.bounds), plan.reused
    write_sidecar(side, kind="embeddings", config=config, seed=int(seed),
                  inputs={"manifest": str(Path(manifest).resolve()), "manifest_fingerprint": manifest_fp,
                          "n_rows": len(ids)},
                  model=str(model), encoder=info, weights_id=info.get("weights_id"),
                  preprocessing=info.get("preprocessing"), cache_key=key, run_key=run_key,
                  n=int(emb.shape[0]), dim=dim, skipped=skipped, shards_total=n_shards,
                  shards_computed=n_shards - reused, shards_reused=reused,
                  files={"embeddings": "embeddings.npy", "sample_ids": "sample_ids.txt"})
    return ExtractionResult(out, int(emb.shape[0]), dim, skipped, n_shards, n_shards - reused,
                            reused, key)


# --------------------------------------------------------------- the steps of extract_embeddings
def _check_options(*, executor, on_error, batch_size, shard_size, num_workers) -> None:
    if executor not in _EXECUTORS:
        raise FairfoundryError(f"unknown executor {executor!r}", hint=f"use one of {', '.join(_EXECUTORS)}")
    if on_error not in _ON_ERROR:
        raise FairfoundryError(f"unknown on_error {on_error!r}", hint=f"use one of {', '.join(_ON_ERROR)}")
    if int(batch_size) < 1 or int(shard_size) < 1:
        raise FairfoundryError("batch_size and shard_size must be positive")
    if int(num_workers) < 0:
        raise FairfoundryError("num_workers must be >= 0")


def _image_inputs(manifest, *, on_error: str, allow_outside_root: bool):
    """The manifest, its ids, absolute paths and file stats (missing files refused when strict)."""
    frame = read_image_manifest(manifest, allow_outside_root=allow_outside_root)
    ids = frame["sample_id"].astype(str).tolist()
    paths = frame["_abspath"].tolist()
    stats = _file_stats(paths)
    missing = [frame["path"].iloc[i] for i, s in enumerate(stats) if s[0] < 0]
    if missing and on_error == "strict":
        raise FairfoundryError(
            f"{len(missing)} image file(s) of manifest {manifest} not found: "
            + ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else ""),
            hint="fix the paths (relative to the manifest), or pass --on-error skip to leave them out")
    return frame, ids, paths, stats


def _up_to_date(out: Path, run_key: str, key: str) -> ExtractionResult | None:
    """The previous result when ``out``'s sidecar has the same run key (nothing to do)."""
    side = out / "embeddings.json"
    if not (side.is_file() and (out / "embeddings.npy").is_file()):
        return None
    try:
        prev = json.loads(side.read_text(encoding="utf-8"))
    except ValueError:
        prev = {}
    if prev.get("run_key") != run_key:
        return None
    log.info("%s is up to date (run key %s)", out, run_key)
    total = int(prev.get("shards_total", 0))
    return ExtractionResult(out, int(prev.get("n", 0)), int(prev.get("dim", 0)),
                            list(prev.get("skipped", [])), total, 0, total, key, up_to_date=True)


@dataclass
class _ShardPlan:
    """Shards of the manifest (row bounds and cache files) and those already in the cache."""

    folder: Path
    bounds: list[tuple[int, int]]
    files: list[Path]
    results: dict[int, tuple]
    reused: int
    ids: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)  # unreadable images

    @property
    def todo(self) -> list[int]:
        return [s for s in range(len(self.bounds)) if s not in self.results]


def _plan_shards(folder: Path, key: str, ids, paths, stats, *, shard_size: int) -> _ShardPlan:
    folder.mkdir(parents=True, exist_ok=True)
    _clean_stale_temps(folder)
    bounds = [(a, min(a + shard_size, len(ids))) for a in range(0, len(ids), shard_size)]
    files = [folder / f"{_sha([key, ids[a:b], paths[a:b], stats[a:b]], 24)}.npz" for a, b in bounds]
    results: dict[int, tuple] = {}
    for s, f in enumerate(files):
        if f.is_file():
            got = _load_shard(f, ids[bounds[s][0]:bounds[s][1]])
            if got is not None:
                results[s] = got
    return _ShardPlan(folder, bounds, files, results, len(results), list(ids))


def _compute_shards(plan: _ShardPlan, load_args: dict, paths, *, key, ident, executor, device,
                    batch_size, num_workers, amp, ray_address, ray_num_cpus, progress) -> dict:
    """Embed the shards not in the cache (locally or one Ray task each); return the encoder
    info (read from the cache folder when every shard was cached)."""
    import numpy as np

    enc_json = plan.folder / "encoder.json"
    info = None
    if enc_json.is_file():
        with contextlib.suppress(ValueError):
            info = json.loads(enc_json.read_text(encoding="utf-8")).get("encoder")
    todo = plan.todo
    if not todo and info is not None:
        return info
    if executor == "local" or info is None:
        encoder = load_encoder(device=device, **load_args)
        info = encoder.info()
        write_json_atomic(enc_json, {"key": key, "identity": ident, "encoder": info})
    ids_of = plan.ids

    def finish(s: int, emb, ok, errs) -> None:
        # strict mode does not stop at the first unreadable image: every shard is finished
        # (and cached), so the error lists all unreadable images and a re-run after fixing
        # them recomputes only their shards
        a, b = plan.bounds[s]
        _save_shard(plan.files[s], emb, ok, ids_of[a:b])
        plan.results[s] = (emb, ok)
        plan.failures.extend((paths[a + i], errs[i]) for i in np.flatnonzero(~ok))

    if todo and executor == "local":
        _run_local(encoder, paths, plan.bounds, todo, finish, batch_size=batch_size,
                   num_workers=num_workers, amp=amp, progress=progress)
    elif todo:
        from ._ray import run_ray

        run_ray(load_args, paths, plan.bounds, todo, finish, batch_size=batch_size,
                device=str(device), amp=amp, address=ray_address, num_cpus=ray_num_cpus,
                progress=progress)
    return info


def _assemble(plan: _ShardPlan, ids, paths, *, on_error: str):
    """Embeddings of the readable images in manifest order, their ids, the skipped ids and the
    rows of the unreadable images (an error listing them when strict)."""
    import numpy as np

    n = len(plan.bounds)
    emb = np.concatenate([plan.results[s][0] for s in range(n)]) if n else np.zeros((0, 0))
    ok = np.concatenate([plan.results[s][1] for s in range(n)]) if n else np.zeros(0, bool)
    bad = [int(i) for i in np.flatnonzero(~ok)]
    if bad and on_error == "strict":
        why = dict(plan.failures)
        raise _unreadable([(paths[i], why.get(paths[i]) or "unreadable (cached result)") for i in bad])
    keep = np.flatnonzero(ok)
    emb = np.ascontiguousarray(emb[keep], dtype=np.float32)
    return emb, [ids[i] for i in keep], [ids[i] for i in bad], bad


def _write_outputs(out: Path, emb, kept_ids, skipped, skipped_paths, *, parquet: bool) -> None:
    """``embeddings.npy``, ``sample_ids.txt`` (+ ``skipped.csv``, ``embeddings.parquet``),
    staged and moved in at once; files an earlier run left that this one does not write go."""
    import numpy as np

    with contextlib.suppress(FileNotFoundError):
        (out / "embeddings.json").unlink()  # a crash below must not leave an old sidecar
    with staged_dir(out) as stage:
        np.save(stage / "embeddings.npy", emb)
        (stage / "sample_ids.txt").write_text("".join(f"{i}\n" for i in kept_ids), encoding="utf-8")
        if skipped:
            import pandas as pd

            pd.DataFrame({"sample_id": skipped, "path": skipped_paths}).to_csv(
                stage / "skipped.csv", index=False)
        if parquet:
            import pandas as pd

            cols = {"sample_id": kept_ids, **{f"e{j}": emb[:, j] for j in range(emb.shape[1])}}
            pd.DataFrame(cols).to_parquet(stage / "embeddings.parquet", index=False)
    stale = ([] if skipped else ["skipped.csv"]) + ([] if parquet else ["embeddings.parquet"])
    for name in stale:  # left by an earlier run being overwritten
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()


def _unreadable(failures: list[tuple[str, str]]) -> FairfoundryError:
    shown = "; ".join(f"{p} ({e})" if e else p for p, e in failures[:10])
    return FairfoundryError(
        f"{len(failures)} image(s) could not be read: {shown}" + (" ..." if len(failures) > 10 else ""),
        hint="fix or remove them, or pass --on-error skip to leave them out (listed in skipped.csv)")


def _run_local(encoder, paths, bounds, todo, finish, *, batch_size, num_workers, amp, progress):
    import numpy as np

    from ._loader import iterate_batches

    todo_bounds = [bounds[s] for s in todo]
    shard_of = {}
    for s in todo:
        a, b = bounds[s]
        shard_of.update(dict.fromkeys(range(a, b), s))
    bufs = {s: (np.full((bounds[s][1] - bounds[s][0], encoder.embed_dim), np.nan, np.float32),
                np.zeros(bounds[s][1] - bounds[s][0], bool), [""] * (bounds[s][1] - bounds[s][0]))
            for s in todo}
    left = {s: bounds[s][1] - bounds[s][0] for s in todo}
    pin = str(encoder.device).startswith("cuda")
    for idx, x, ok, err in iterate_batches(paths, encoder.preprocessing, todo_bounds,
                                           batch_size=batch_size, num_workers=num_workers,
                                           pin_memory=pin):
        out = encoder.encode_image(x, amp=amp).cpu().numpy()
        s = shard_of[idx[0]]
        a = bounds[s][0]
        emb, okb, errs = bufs[s]
        rel = [i - a for i in idx]
        emb[rel] = out
        okb[rel] = ok
        for r, e in zip(rel, err, strict=True):
            errs[r] = e
        left[s] -= len(idx)
        if progress:
            progress(len(idx))
        if left[s] == 0:
            emb[~okb] = np.nan
            finish(s, emb, okb, errs)
            del bufs[s]


def read_embeddings(path: str | os.PathLike):
    """Read an ``embed`` output directory.

    Parameters
    ----------
    path : directory written by :func:`extract_embeddings` (``fairfoundry embed --out``)

    Returns
    -------
    sample_ids : numpy.ndarray of str, shape (n,)
    embeddings : numpy.ndarray of float32, shape (n, d)
    meta : dict
        The sidecar: model, encoder (weights id, preprocessing, embed_dim), manifest
        fingerprint, cache key, versions, config.

    Raises
    ------
    FairfoundryError
        Not an embeddings directory, incomplete run (no sidecar) or inconsistent files.
    """
    import numpy as np

    path = Path(path)
    if not path.is_dir():
        raise FairfoundryError(f"embeddings directory not found: {path}",
                               hint="pass the --out directory of `fairfoundry embed`")
    side = path / "embeddings.json"
    if not side.is_file():
        raise FairfoundryError(f"{path} has no embeddings.json: not a finished `fairfoundry embed` output",
                               hint="re-run `fairfoundry embed` (it resumes from its cache)")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        arr = np.load(path / "embeddings.npy", allow_pickle=False)
        ids = (path / "sample_ids.txt").read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as exc:
        raise FairfoundryError(f"cannot read embeddings in {path}: {exc}".splitlines()[0]) from exc
    if arr.ndim != 2 or arr.shape[0] != len(ids) or arr.shape[0] != meta.get("n", arr.shape[0]):
        raise FairfoundryError(f"{path}: embeddings.npy has shape {arr.shape} but sample_ids.txt "
                               f"lists {len(ids)} ids", hint="re-run `fairfoundry embed --overwrite`")
    return np.asarray(ids, dtype=str), arr.astype(np.float32, copy=False), meta
