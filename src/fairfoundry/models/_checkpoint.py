"""Reading weights files safely and loading them into a module with clear mismatch messages.

* ``.safetensors``: always safe.
* ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt``: ``torch.load(weights_only=True)``; a checkpoint that
  needs arbitrary Python objects (full pickled models, argparse namespaces) is refused unless the
  caller passes ``trust_checkpoint=True`` (``--trust-checkpoint``), because unpickling runs code.
* ``.pkl`` / ``.pickle``: refused unless ``trust_checkpoint=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from .._errors import FairfoundryError

__all__ = ["read_state_dict", "load_state_dict_into", "convert_command", "weights_hash", "resolve_weights_path",
           "SAFETENSORS_META_KEY"]

#: key of the safetensors header metadata that holds a fairfoundry encoder description
SAFETENSORS_META_KEY = "fairfoundry.encoder"

_TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar")
_PICKLE_SUFFIXES = (".pkl", ".pickle")
_HASH_CACHE: dict[tuple, str] = {}


def resolve_weights_path(spec: str | os.PathLike) -> Path:
    """Turn a weights location into a path: ``package:<module>/<relative path>`` or a file path."""
    text = str(spec)
    if text.startswith("package:"):
        from importlib import resources

        rest = text[len("package:"):]
        module, _, rel = rest.partition("/")
        if not module or not rel:
            raise FairfoundryError(f"bad package weights location {text!r}",
                                   hint="use package:<python.module>/<relative/path>")
        try:
            root = resources.files(module)
        except ModuleNotFoundError as exc:
            raise FairfoundryError(f"weights location {text!r}: module {module!r} not found") from exc
        return Path(str(root.joinpath(rel)))
    return Path(text).expanduser()


def weights_hash(path: str | os.PathLike) -> str:
    """SHA-256 (hex, 16 chars) of a weights file, or of all weight files of a directory.

    Memoised per (path, size, mtime) within the process.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    else:
        files = [path]
    stats = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if stats in _HASH_CACHE:
        return _HASH_CACHE[stats]
    h = hashlib.sha256()
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                h.update(block)
    digest = h.hexdigest()[:16]
    _HASH_CACHE[stats] = digest
    return digest


def convert_command(model_name: str | None, path: Path) -> str:
    """The one-time command that rewrites a pickled checkpoint as ``.safetensors``."""
    out = path.with_name(path.name.split(".")[0] + ".safetensors")
    return (f"fairfoundry models convert {model_name or '<MODEL>'} --weights {path} "
            f"--trust-checkpoint --out {out} (then use --model {out})")


def _refuse_pickle(path: Path, why: str, model_name: str | None = None) -> FairfoundryError:
    return FairfoundryError(
        f"refusing to unpickle checkpoint {path}: {why}; re-run with --trust-checkpoint "
        "(trust_checkpoint=True) if you trust where the file comes from",
        hint="unpickling can run arbitrary code. Or convert it once to a safe .safetensors file "
        f"and use that from then on: {convert_command(model_name, path)}",
    )


def read_safetensors_metadata(path: str | os.PathLike) -> dict:
    """The ``__metadata__`` header of a safetensors file (str -> str)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if n <= 0 or n > 100_000_000:
                raise ValueError("bad header length")
            header = json.loads(fh.read(n))
    except (OSError, ValueError) as exc:
        raise FairfoundryError(f"cannot read safetensors file {path}: {exc}") from exc
    return header.get("__metadata__") or {}


def read_state_dict(path: str | os.PathLike, *, trust_checkpoint: bool = False,
                    model_name: str | None = None) -> dict:
    """Read a weights file into a flat ``{name: tensor}`` dict (on CPU).

    Parameters
    ----------
    path : path to a ``.safetensors``, torch (``.pt``/``.pth``/``.bin``/``.ckpt``) or pickle file
    trust_checkpoint : bool
        Allow full unpickling (arbitrary code execution) for files that need it.
    model_name : str, optional
        The model the file is for; the refusal message then gives the exact conversion command.

    Returns
    -------
    dict
        The raw checkpoint content: a state dict, or a dict that wraps one (``{"model": ...}``,
        ``{"state_dict": ...}``); callers unwrap with :func:`unwrap_state_dict`.
    """
    import torch

    path = resolve_weights_path(path)
    if not path.exists():
        raise FairfoundryError(f"weights file not found: {path}")
    if path.is_dir():
        raise FairfoundryError(f"weights path {path} is a directory, expected a file",
                               hint="for a Hugging Face model folder use --model hf:<folder>")
    name = path.name.lower()
    if name.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise FairfoundryError(f"cannot read safetensors file {path}: {exc}".splitlines()[0]) from exc
    if name.endswith(_PICKLE_SUFFIXES):
        if not trust_checkpoint:
            raise _refuse_pickle(path, "it is a Python pickle", model_name)
        import pickle

        with open(path, "rb") as fh:
            obj = pickle.load(fh)  # unsafe-load: opt-in
        return _as_dict(obj, path)
    import argparse

    try:
        # argparse.Namespace (training args stored by MAE/RETFound/DINO checkpoints) is plain data
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        msg = str(exc)
        if "weights_only" in msg or "Unsupported global" in msg or "WeightsUnpickler" in msg:
            if not trust_checkpoint:
                raise _refuse_pickle(path, "it holds Python objects that are not tensors",
                                     model_name) from exc
            try:
                obj = torch.load(path, map_location="cpu", weights_only=False)  # unsafe-load: opt-in
            except Exception as exc2:
                raise FairfoundryError(f"cannot read checkpoint {path}: {exc2}".splitlines()[0]) from exc2
        else:
            raise FairfoundryError(f"cannot read checkpoint {path}: {msg}".splitlines()[0],
                                   hint="expected a .safetensors or torch .pt/.pth file") from exc
    return _as_dict(obj, path)


def _as_dict(obj, path: Path) -> dict:
    import torch

    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        return obj
    raise FairfoundryError(f"checkpoint {path} holds a {type(obj).__name__}, expected a state dict")


def unwrap_state_dict(obj: dict, *, keys: Iterable[str] = ("state_dict", "model", "module",
                                                             "model_state_dict", "teacher")) -> dict:
    """Return the tensor dict inside a checkpoint wrapper, and strip a ``module.`` prefix."""
    import torch

    sd = obj
    for _ in range(3):
        if any(isinstance(v, torch.Tensor) for v in sd.values()):
            break
        for k in keys:
            if isinstance(sd.get(k), dict):
                sd = sd[k]
                break
        else:
            break
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _short(keys: list[str], n: int = 8) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_state_dict_into(module, state_dict: dict, *, source: str, model_name: str,
                         ignore_missing: Iterable[str] = (), ignore_unexpected: Iterable[str] = ()):
    """Load ``state_dict`` into ``module`` strictly, explaining any mismatch.

    Keys starting with a prefix in ``ignore_missing`` may be absent from the file (e.g. a
    classifier head that feature extraction does not use); keys starting with a prefix in
    ``ignore_unexpected`` may be extra in the file (e.g. an MAE decoder).

    Raises
    ------
    FairfoundryError
        Naming the missing, unexpected and wrongly shaped keys, when the weights do not fit.
    """
    ignore_missing = tuple(ignore_missing)
    ignore_unexpected = tuple(ignore_unexpected)
    own = module.state_dict()
    sd = {k: v for k, v in state_dict.items() if not (ignore_unexpected and k.startswith(ignore_unexpected))}
    missing = [k for k in own if k not in sd and not (ignore_missing and k.startswith(ignore_missing))]
    unexpected = [k for k in sd if k not in own]
    shape = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}"
             for k in sd if k in own and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"missing keys: {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_short(unexpected)}")
        if shape:
            parts.append(f"shape mismatch (file vs model): {_short(shape, 5)}")
        raise FairfoundryError(
            f"weights {source} do not fit model {model_name}: " + "; ".join(parts),
            hint="the file was saved from a different architecture or size; check --model, "
            "or save the model with fairfoundry.models.save_encoder so the file carries its config",
        )
    module.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)
    return module
