"""Image paths of a manifest, resolved once: relative to a root folder, never climbing out of it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .._errors import FairfoundryError

__all__ = ["resolve_paths", "manifest_root"]


def manifest_root(frame, default: str | os.PathLike | None = None) -> Path:
    """The folder a manifest's relative paths start from: ``default`` when given, else the
    folder of the file :func:`read_manifest` read it from, else the working directory."""
    if default is not None:
        return Path(default)
    path = getattr(frame, "attrs", {}).get("manifest_path")
    return Path(path).parent if path else Path(".")


def resolve_paths(paths: Iterable, *, root: str | os.PathLike, allow_outside_root: bool = False,
                  source: str = "manifest", column: str = "path",
                  row_numbers: Iterable[int] | None = None) -> list[str | None]:
    """Absolute paths of a manifest's ``path`` values.

    Relative paths are joined to ``root``; one that climbs out of it (``../../etc/passwd``) is
    refused with its 1-based row named, unless ``allow_outside_root``. Absolute paths are kept
    (the user wrote them); empty values give None; npz array references (``file.npz#key[i]``)
    are resolved on their file part. ``row_numbers`` gives the 1-based data row of each value
    when ``paths`` is a subset of the manifest (default: 1, 2, ...).

    Examples
    --------
    >>> resolve_paths(["a/x.png"], root="/data")
    ['/data/a/x.png']
    >>> resolve_paths(["../../etc/passwd"], root="/data")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fairfoundry._errors.FairfoundryError: manifest: row 1: path '../../etc/passwd' points outside ...
    """
    base = os.path.abspath(root)
    prefix = base.rstrip(os.sep) + os.sep
    out: list[str | None] = []
    numbers = list(row_numbers) if row_numbers is not None else None
    for i, p in enumerate(paths):
        if p is None or p != p or str(p).strip() == "":
            out.append(None)
            continue
        text = str(p)
        file, sep, ref = text.partition("#") if ".npz#" in text else (text, "", "")
        if os.path.isabs(file):
            out.append(text)
            continue
        full = os.path.normpath(os.path.join(base, file))
        if not allow_outside_root and not (full == base or full.startswith(prefix)):
            raise FairfoundryError(
                f"{source}: row {numbers[i] if numbers else i + 1}: {column} {text!r} points "
                f"outside the root folder {root}",
                hint="relative paths start at the root (the manifest's folder or --root); pass "
                     "--allow-outside-root (allow_outside_root=True) if the files really live "
                     "there")
        out.append(full + sep + ref)
    return out
