"""Reading inputs and writing artifacts atomically, with provenance sidecars.

Every artifact fairfoundry writes goes through :func:`write_atomic` (temp file, then
``os.replace``), so a crash never leaves a half-written file, and run directories get a
sidecar JSON (:func:`write_sidecar`) written last: its presence means "complete".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._errors import FairfoundryError

__all__ = [
    "write_atomic",
    "write_text_atomic",
    "write_json_atomic",
    "write_table_atomic",
    "read_table",
    "prepare_out_dir",
    "staged_dir",
    "versions",
    "git_sha",
    "file_fingerprint",
    "frame_fingerprint",
    "write_sidecar",
    "to_jsonable",
]

SCHEMA_VERSION = 1


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically move the temp file onto ``path``.

    The temp file lives in the same directory (so ``os.replace`` is atomic) and is removed
    if ``write`` raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; give normal file mode
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert numpy / pandas / Path values to plain JSON types; NaN becomes ``None``."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "model_dump"):
        return to_jsonable(obj.model_dump())
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (NaN -> null) atomically."""
    return write_text_atomic(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame):
    """A copy of ``frame`` whose text cells that a spreadsheet would run as a formula (starting
    with ``= + - @``, tab or carriage return, OWASP "CSV injection") start with ``'``.
    Numbers, and text that reads as a number (``-0.5``), are left alone."""
    import pandas as pd

    out = None
    for col in frame.columns:
        s = frame[col]
        if not (s.dtype == object or pd.api.types.is_string_dtype(s)):
            continue
        text = s.astype("string")
        risky = text.str.startswith(_FORMULA_START).fillna(False).astype(bool)
        if risky.any():
            risky &= pd.to_numeric(text, errors="coerce").isna()
        if risky.any():
            out = frame.copy() if out is None else out
            out[col] = s.astype(object).where(~risky, "'" + text.astype(str))
    return frame if out is None else out


def md_escape(text) -> str:
    """User-supplied text for Markdown (model card, datasheet): characters that Markdown or an
    HTML renderer would interpret (``* _ ` [ ] < > # | \\``) are backslash-escaped, and line
    breaks become spaces, so a dataset name cannot inject links, tables or HTML."""
    import re

    s = " ".join(str(text).split())
    return re.sub(r"([\\`*_\[\]<>#|!{}])", r"\\\1", s)


def write_table_atomic(path: str | os.PathLike, frame, *, report: bool = False) -> Path:
    """Write a DataFrame as CSV, TSV or Parquet (by suffix) atomically.

    ``report=True`` (tables meant to be opened in a spreadsheet, not read back as data)
    neutralises formula cells (:func:`neutralise_formulas`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if report and suffix != ".parquet":
        frame = neutralise_formulas(frame)

    def _write(tmp: Path) -> None:
        if suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif suffix in (".tsv", ".tab"):
            frame.to_csv(tmp, sep="\t", index=False)
        else:
            frame.to_csv(tmp, index=False)

    return write_atomic(path, _write)


def check_header(path: str | os.PathLike, *, sep: str | None = ",", what: str = "input") -> None:
    """Refuse a delimited text file whose header names a column twice (pandas would silently
    rename the second ``p`` to ``p.1``)."""
    import csv
    import gzip

    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError):
        return  # the reader reports unreadable files
    if sep is None:
        try:
            sep = csv.Sniffer().sniff(first).delimiter
        except csv.Error:
            return
    header = next(csv.reader([first], delimiter=sep), [])
    seen: dict[str, int] = {}
    for i, name in enumerate(h.strip() for h in header):
        if name in seen and name:
            raise FairfoundryError(
                f"{what} file {path}: the header names column {name!r} twice (columns "
                f"{seen[name] + 1} and {i + 1})", hint="rename or drop one of them")
        seen[name] = i


def read_table(path: str | os.PathLike, *, what: str = "input"):
    """Read a CSV, TSV (optionally gzipped) or Parquet file into a DataFrame.

    Raises
    ------
    FairfoundryError
        If the file does not exist, cannot be parsed, or is empty.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FairfoundryError(f"{what} file not found: {path}")
    if path.is_dir():
        raise FairfoundryError(f"{what} {path} is a directory, expected a CSV, TSV or Parquet file")
    name = path.name.lower()
    try:
        if name.endswith(".parquet") or name.endswith(".pq"):
            frame = pd.read_parquet(path)
        elif name.endswith((".tsv", ".tsv.gz", ".tab")):
            check_header(path, sep="\t", what=what)
            frame = pd.read_csv(path, sep="\t", low_memory=False)
        else:
            check_header(path, sep=None if name.endswith(".txt") else ",", what=what)
            frame = pd.read_csv(path, sep=None if name.endswith(".txt") else ",", low_memory=False,
                                engine="python" if name.endswith(".txt") else "c")
    except pd.errors.EmptyDataError as exc:
        raise FairfoundryError(f"{what} file {path} is empty") from exc
    except FairfoundryError:
        raise
    except Exception as exc:  # any parser failure is a user-input problem
        raise FairfoundryError(f"cannot read {what} file {path}: {exc}".splitlines()[0]) from exc
    if frame.shape[0] == 0:
        raise FairfoundryError(f"{what} file {path} has a header but no rows")
    return frame


def prepare_out_dir(out: str | os.PathLike, *, overwrite: bool, outputs: list[str] | None = None) -> Path:
    """Check that ``out`` may be written to without losing anything the user has.

    ``out`` may not exist, or be empty. If it holds any of ``outputs`` (or anything at all when
    ``outputs`` is None), ``overwrite`` must be True.
    """
    out = Path(out)
    remove_stale_staging(out)  # what a killed run (kill -9) left next to it
    if out.exists() and not out.is_dir():
        raise FairfoundryError(f"--out {out} exists and is not a directory")
    if out.exists():
        present = [p.name for p in out.iterdir() if not p.name.startswith(".")]
        clash = present if outputs is None else [o for o in outputs if (out / o).exists()]
        if clash and not overwrite:
            raise FairfoundryError(
                f"output directory {out} already holds {', '.join(sorted(clash)[:5])}",
                hint="pass --overwrite to replace them, or choose another --out",
            )
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_staging(out: str | os.PathLike, *, max_age_s: float = 3600.0) -> list[Path]:
    """Remove the staging folders a killed run (``kill -9``) left next to ``out``.

    A staging folder is ``.<out>.staging-<pid>-<random>``; it is stale when its process no
    longer runs (or, for a folder without a pid, when it is older than ``max_age_s``). Returns
    the folders removed.
    """
    import time

    out = Path(out)
    removed = []
    if not out.parent.is_dir():
        return removed
    for d in out.parent.glob(f".{out.name}.staging-*"):
        try:  # another process may be removing or renaming it right now
            if not d.is_dir():
                continue
            tail = d.name.rsplit(".staging-", 1)[1]
            pid = tail.split("-", 1)[0]
            if pid.isdigit() and "-" in tail:
                stale = int(pid) != os.getpid() and not _pid_alive(int(pid))
            else:
                stale = time.time() - d.stat().st_mtime > max_age_s
        except OSError:
            continue
        if stale:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Stage a run's outputs in a hidden sibling directory, then move them into ``out``.

    Either every file appears in ``out`` or none does (files already in ``out`` that the run
    does not produce are left alone).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-{os.getpid()}-", dir=out.parent))
    try:
        yield stage
        out.mkdir(parents=True, exist_ok=True)
        for item in sorted(stage.rglob("*")):
            if item.is_file():
                target = out / item.relative_to(stage)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def git_sha() -> str | None:
    """The git commit of the fairfoundry source tree, when it is a checkout."""
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Versions of Python, fairfoundry and the key libraries (only those already importable)."""
    from importlib import metadata

    from . import __version__

    out: dict[str, str | None] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "fairfoundry": __version__,
        "git_sha": git_sha(),
    }
    for pkg in ("numpy", "pandas", "scipy", "scikit-learn", "torch", "timm", *extra):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def file_fingerprint(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def frame_fingerprint(frame) -> str:
    """Order-sensitive SHA-256 of a DataFrame's columns and values (hex, 16 chars)."""
    import pandas as pd

    h = hashlib.sha256()
    h.update("\x1f".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return h.hexdigest()[:16]


def write_sidecar(path: str | os.PathLike, *, kind: str, config: dict | None = None,
                  seed: int | None = None, inputs: dict | None = None, **extra: Any) -> Path:
    """Write a provenance sidecar JSON: schema version, kind, config, seed, versions, inputs."""
    payload = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "config": config or {},
        "inputs": inputs or {},
        "versions": versions(),
        **extra,
    }
    return write_json_atomic(path, payload)


def save_safetensors(path: str | os.PathLike, tensors: dict, *, metadata: dict | None = None) -> Path:
    """Write ``tensors`` (torch) as ``.safetensors`` atomically, with the header in a fixed
    order: safetensors writes its ``__metadata__`` from a hash map, so two identical runs would
    otherwise give different bytes. The header keys are sorted in place (same length, same
    offsets), so identical inputs give identical files."""
    from safetensors.torch import save_file

    def write(p):
        save_file(tensors, str(p), metadata=metadata)
        canonical_safetensors_header(p)

    return write_atomic(path, write)


def canonical_safetensors_header(path: str | os.PathLike) -> None:
    """Rewrite a ``.safetensors`` header with sorted keys (metadata included), in place."""
    import json
    import struct

    with open(path, "r+b") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        raw = fh.read(n)
        header = json.loads(raw)
        if "__metadata__" in header and isinstance(header["__metadata__"], dict):
            header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(dict(sorted(header.items())), separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")
        if len(text) > n:  # pragma: no cover - reordering never lengthens compact JSON
            return
        fh.seek(8)
        fh.write(text + b" " * (n - len(text)))


def read_json(path: str | os.PathLike, *, what: str = "file"):
    """Parse a JSON file; malformed JSON raises naming the file, line and column."""
    import json

    path = Path(path)
    if not path.exists():
        raise FairfoundryError(f"{what} file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FairfoundryError(f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                               f"column {exc.colno}") from exc
    except UnicodeDecodeError as exc:
        raise FairfoundryError(f"{what} {path} is not UTF-8 text") from exc


def read_yaml_mapping(path: str | os.PathLike, *, what: str = "config", keys_hint: str = "") -> dict:
    """Read a YAML file that must hold a mapping, with one clear error naming the file.

    Parameters
    ----------
    path : the YAML file
    what : what the file is, for messages ("config", "spec", ...)
    keys_hint : optional example keys shown when the file is not a mapping

    Raises
    ------
    FairfoundryError
        If the file is missing, is not valid YAML, or does not hold a mapping (an empty file is
        an empty mapping).
    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise FairfoundryError(f"{what} file not found: {path}")
    try:
        # the C loader when libyaml is there (the same safe constructors, ~10x faster: the
        # audit page reads every shipped spec)
        data = yaml.load(path.read_text(encoding="utf-8"),
                         Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:  # also tags such as !!python/object (safe loading refuses them)
        first = " ".join(str(exc).split())
        raise FairfoundryError(f"{what} {path} is not valid YAML: {first[:200]}",
                               hint="plain YAML only: Python tags (!!python/...) are refused") from exc
    except UnicodeDecodeError as exc:
        raise FairfoundryError(f"{what} {path} is not UTF-8 text") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        extra = f" ({keys_hint})" if keys_hint else ""
        raise FairfoundryError(f"{what} {path} must hold a mapping of keys to values{extra}")
    return data
