"""Readers that turn files on disk into manifests: DICOM headers, image folders, npz bundles.

Each reader returns ``(manifest, problems)``: a manifest DataFrame with canonical columns and a
DataFrame of files that could not be read (``path``, ``error``), so one bad file is listed in a
report instead of stopping a 100,000-file scan. Pass ``strict=True`` to raise on the first one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from .._errors import FairfoundryError
from ._harmonise import age_from_dates, harmonise_age, harmonise_race, harmonise_sex
from ._images import DICOM_SUFFIXES, IMAGE_SUFFIXES, NIFTI_SUFFIXES, _is_dicom

__all__ = ["DICOM_KEYWORDS", "PROBLEM_COLUMNS", "check_images", "load_npz_image", "read_dicom_header",
           "read_npz_bundle", "scan_dicom", "scan_images"]

log = logging.getLogger(__name__)

PROBLEM_COLUMNS = ["path", "error"]

#: DICOM keywords read by :func:`read_dicom_header` (raw values, before harmonisation).
DICOM_KEYWORDS = ("PatientID", "PatientSex", "PatientAge", "PatientBirthDate", "StudyDate",
                  "EthnicGroup", "Manufacturer", "InstitutionName", "Modality",
                  "BodyPartExamined", "ViewPosition", "StudyInstanceUID", "SOPInstanceUID",
                  "Rows", "Columns")


def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def read_dicom_header(path: str | os.PathLike, *, force: bool = True) -> dict:
    """Read the demographic and acquisition tags of one DICOM file (pixels are not decoded).

    Parameters
    ----------
    path : DICOM file
    force : read files without a preamble / file meta header (``pydicom.dcmread(force=True)``)

    Returns
    -------
    dict
        The raw tags of :data:`DICOM_KEYWORDS` (strings or None) plus harmonised ``sex``
        (``O`` -> other, missing -> unknown), ``age`` in years from PatientAge (``058Y``,
        ``006M``, ``003W``, ``010D``) or, when absent, from PatientBirthDate and StudyDate
        (invalid dates -> NaN), ``age_source`` (``PatientAge``, ``BirthDate``, or None),
        ``race`` from EthnicGroup (free text; unrecognised -> unknown), ``site`` from
        InstitutionName (else Manufacturer).

    Raises
    ------
    FairfoundryError
        If the file is missing or is not DICOM (with ``force=False``, no ``DICM`` preamble).
    """
    import math

    try:
        import pydicom
    except ImportError as exc:  # pragma: no cover - in the medical extra
        raise FairfoundryError("reading DICOM needs pydicom",
                               hint="pip install 'fairfoundry[medical]'") from exc
    path = Path(path)
    if not path.exists():
        raise FairfoundryError(f"DICOM file not found: {path}")
    try:
        ds = pydicom.dcmread(path, force=force, stop_before_pixels=True)
    except Exception as exc:
        hint = None if force else "pass force=True (--force) for files without a DICOM preamble"
        raise FairfoundryError(f"cannot read DICOM header of {path}: {exc}".splitlines()[0],
                               hint=hint) from exc
    raw = {k: _text(ds.get(k)) for k in DICOM_KEYWORDS}
    if all(v is None for v in raw.values()):
        raise FairfoundryError(f"{path} is not a DICOM file (no known tags)")
    sex = harmonise_sex([raw["PatientSex"]], strict=False, name=f"PatientSex of {path.name}")[0]
    age = math.nan
    source = None
    if raw["PatientAge"]:
        age = float(harmonise_age([raw["PatientAge"]], strict=False, name="PatientAge").iloc[0])
        source = "PatientAge" if not math.isnan(age) else None
    if math.isnan(age) and raw["PatientBirthDate"] and raw["StudyDate"]:
        age = float(age_from_dates([raw["PatientBirthDate"]], [raw["StudyDate"]])[0])
        source = "BirthDate" if not math.isnan(age) else None
    race = harmonise_race([raw["EthnicGroup"]], strict=False, name="EthnicGroup")[0]
    return {**raw, "sex": sex, "age": age, "age_source": source, "race": race,
            "site": raw["InstitutionName"] or raw["Manufacturer"]}


def _walk(root: Path, accept: Callable[[Path], bool]) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not name.startswith(".") and accept(p):
                files.append(p)
    return files


def scan_dicom(root: str | os.PathLike, *, force: bool = True, check: bool = False,
               strict: bool = False, progress: Callable[[int], None] | None = None):
    """Build a manifest from every DICOM file under ``root`` (``.dcm``/``.dicom`` or files with
    the ``DICM`` magic).

    With ``check=True`` the pixels of every file are decoded too (:func:`load_image`), and files
    without pixel data or with an undecodable transfer syntax are listed as problems.

    Returns
    -------
    (manifest, problems)
        ``manifest``: ``sample_id`` (relative path), ``patient_id`` (PatientID), ``path``
        (relative to ``root``), ``sex``, ``age``, ``race``, ``site``, ``modality``,
        ``body_part``, ``view``, ``manufacturer``, ``study_date``, ``age_source``.
        ``problems``: files whose header could not be read (``path``, ``error``).
    """
    import pandas as pd

    root = Path(root)
    if not root.is_dir():
        raise FairfoundryError(f"DICOM root {root} is not a directory")
    files = _walk(root, lambda p: p.name.lower().endswith(DICOM_SUFFIXES) or _is_dicom(p))
    if not files:
        raise FairfoundryError(f"no DICOM files under {root}")
    from ._images import load_image

    rows, problems = [], []
    for p in files:
        rel = p.relative_to(root).as_posix()
        try:
            h = read_dicom_header(p, force=force)
            if check:
                load_image(p)
        except FairfoundryError as err:
            if strict:
                raise
            problems.append({"path": rel, "error": err.message})
            continue
        finally:
            if progress is not None:
                progress(1)
        rows.append({"sample_id": rel, "patient_id": h["PatientID"], "path": rel,
                     "sex": h["sex"], "age": h["age"], "race": h["race"], "site": h["site"],
                     "modality": h["Modality"], "body_part": h["BodyPartExamined"],
                     "view": h["ViewPosition"], "manufacturer": h["Manufacturer"],
                     "study_date": h["StudyDate"], "age_source": h["age_source"]})
    manifest = pd.DataFrame(rows)
    return manifest, pd.DataFrame(problems, columns=PROBLEM_COLUMNS)


def scan_images(root: str | os.PathLike, *, check: bool = False, strict: bool = False,
                label_from_folder: bool = False,
                progress: Callable[[int], None] | None = None):
    """Build a manifest from an image folder (PNG/JPEG/TIFF/BMP, DICOM, NIfTI).

    Parameters
    ----------
    root : folder to walk (hidden files and folders are skipped)
    check : decode every image with :func:`load_image` and list the unreadable ones
    strict : raise on the first unreadable image instead of listing it
    label_from_folder : add a ``label`` column with the name of each file's parent folder
        (the ImageNet-style ``root/<class>/<image>`` layout)

    Returns
    -------
    (manifest, problems)
        ``manifest`` has ``sample_id`` (relative path without suffix), ``path`` (relative to
        ``root``) and optionally ``label``, ``height``, ``width``, ``dtype``.
    """
    import pandas as pd

    from ._images import load_image

    root = Path(root)
    if not root.is_dir():
        raise FairfoundryError(f"image root {root} is not a directory")
    suffixes = tuple(s for s in IMAGE_SUFFIXES) + NIFTI_SUFFIXES
    files = _walk(root, lambda p: p.name.lower().endswith(suffixes))
    if not files:
        raise FairfoundryError(f"no image files under {root}",
                               hint=f"looked for {', '.join(suffixes)}")
    rows, problems = [], []
    for p in files:
        rel = p.relative_to(root).as_posix()
        row = {"sample_id": rel.rsplit(".", 2 if rel.lower().endswith(".nii.gz") else 1)[0],
               "path": rel}
        if label_from_folder:
            row["label"] = p.parent.name if p.parent != root else None
        if check:
            try:
                arr = load_image(p)
                row.update(height=int(arr.shape[0]), width=int(arr.shape[1]), dtype=str(arr.dtype))
            except FairfoundryError as err:
                if strict:
                    raise
                problems.append({"path": rel, "error": err.message})
                if progress is not None:
                    progress(1)
                continue
        rows.append(row)
        if progress is not None:
            progress(1)
    return pd.DataFrame(rows), pd.DataFrame(problems, columns=PROBLEM_COLUMNS)


def read_npz_bundle(path: str | os.PathLike, *, image_key: str = "images"):
    """Read a MedMNIST-style npz (``<split>_images``, ``<split>_labels``) into a manifest.

    Each image becomes one row with ``sample_id`` ``<split>_<index>``, ``split``, ``label``
    (one ``label_<k>`` column per label for multi-label files) and ``path`` set to the array
    reference ``<file>.npz#<split>_images[<index>]`` (read with :func:`load_npz_image`).
    MedMNIST carries no demographics, so no protected attribute column is added.

    Returns
    -------
    (manifest, problems)
    """
    import numpy as np
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FairfoundryError(f"npz file not found: {path}")
    try:
        bundle = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise FairfoundryError(f"cannot read npz {path}: {exc}".splitlines()[0]) from exc
    with bundle:
        keys = set(bundle.files)
        splits = [k[: -len(f"_{image_key}")] for k in sorted(keys) if k.endswith(f"_{image_key}")]
        if not splits:
            raise FairfoundryError(f"npz {path} has no '<split>_{image_key}' arrays",
                                   hint=f"its arrays are: {', '.join(sorted(keys))}")
        frames = []
        for split in splits:
            n = bundle[f"{split}_{image_key}"].shape[0]
            frame = pd.DataFrame({
                "sample_id": [f"{split}_{i}" for i in range(n)],
                "split": split,
                "path": [f"{path.name}#{split}_{image_key}[{i}]" for i in range(n)],
            })
            if f"{split}_labels" in keys:
                labels = np.asarray(bundle[f"{split}_labels"])
                if labels.shape[0] != n:
                    raise FairfoundryError(f"npz {path}: {split}_labels has {labels.shape[0]} rows "
                                           f"but {split}_{image_key} has {n}")
                labels = labels.reshape(n, -1)
                if labels.shape[1] == 1:
                    frame["label"] = labels[:, 0]
                else:
                    for k in range(labels.shape[1]):
                        frame[f"label_{k}"] = labels[:, k]
            frames.append(frame)
    order = {"train": 0, "val": 1, "test": 2}
    frames.sort(key=lambda f: order.get(f["split"].iloc[0], 3))
    return pd.concat(frames, ignore_index=True), pd.DataFrame(columns=PROBLEM_COLUMNS)


def load_npz_image(reference: str, *, base: str | os.PathLike = "."):
    """Load one image from an array reference ``file.npz#key[index]`` (relative to ``base``)."""
    import re

    import numpy as np

    m = re.fullmatch(r"(.+)#(\w+)\[(\d+)\]", reference)
    if m is None:
        raise FairfoundryError(f"not an npz array reference: {reference!r}",
                               hint="expected file.npz#key[index]")
    file = Path(base) / m.group(1)
    if not file.exists():
        raise FairfoundryError(f"npz file not found: {file}")
    with np.load(file, allow_pickle=False) as bundle:
        if m.group(2) not in bundle.files:
            raise FairfoundryError(f"npz {file} has no array {m.group(2)!r}")
        arr = bundle[m.group(2)]
        idx = int(m.group(3))
        if idx >= arr.shape[0]:
            raise FairfoundryError(f"index {idx} out of range for {file}#{m.group(2)} "
                                   f"({arr.shape[0]} images)")
        return np.asarray(arr[idx])


def check_images(manifest, *, root: str | os.PathLike = ".", path_col: str = "path",
                 strict: bool = False, progress: Callable[[int], None] | None = None,
                 allow_outside_root: bool = False):
    """Decode every image of a manifest with :func:`load_image` and list those that fail.

    Parameters
    ----------
    manifest : DataFrame with ``path_col`` (paths relative to ``root``, absolute paths, or npz
        array references ``file.npz#key[i]``)
    root : folder relative paths start from (usually the manifest's folder)
    strict : raise on the first missing or unreadable image instead of listing it

    Returns
    -------
    pandas.DataFrame ``(path, error)``, one row per missing or undecodable image.
    """
    import pandas as pd

    from ._images import load_image

    if path_col not in manifest.columns:
        raise FairfoundryError(f"image check needs a {path_col!r} column in the manifest")
    from ._paths import resolve_paths

    root = Path(root)
    problems = []
    full_paths = resolve_paths(manifest[path_col], root=root, allow_outside_root=allow_outside_root)
    for p, full in zip(manifest[path_col], full_paths, strict=True):
        if progress is not None:
            progress(1)
        if full is None:
            problems.append({"path": "", "error": "empty path"})
            continue
        text = str(p)
        try:
            if "#" in text and ".npz#" in text:
                load_npz_image(full)
            else:
                full = Path(full)
                if not full.exists():
                    raise FairfoundryError(f"image file not found: {full}")
                load_image(full)
        except FairfoundryError as err:
            if strict:
                raise
            problems.append({"path": text, "error": err.message})
    return pd.DataFrame(problems, columns=PROBLEM_COLUMNS)
