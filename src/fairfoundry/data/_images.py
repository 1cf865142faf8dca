"""Reading one image file into a numpy array (PNG/JPEG/TIFF/BMP via Pillow, DICOM via pydicom,
NIfTI via nibabel).

:func:`load_image` is the one entry point every component uses to read pixels, so adding a
format is done here once. Arrays keep their bit depth: 8-bit images are ``uint8``, 16-bit
``uint16``; grayscale is ``(H, W)``, colour ``(H, W, 3)``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._errors import FairfoundryError

__all__ = ["load_image", "IMAGE_SUFFIXES", "DICOM_SUFFIXES", "NIFTI_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom", ".nii",
                  ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _is_dicom(path: Path) -> bool:
    if path.name.lower().endswith(DICOM_SUFFIXES):
        return True
    if path.suffix:
        return False
    try:  # extension-less files (DICOMDIR trees): look for the DICM magic after the preamble
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _load_dicom(path: Path):
    import numpy as np

    try:
        import pydicom
    except ImportError as exc:  # pragma: no cover - pydicom is in the medical extra
        raise FairfoundryError(f"reading DICOM {path} needs pydicom",
                               hint="pip install 'fairfoundry[medical]'") from exc
    try:
        ds = pydicom.dcmread(path, force=True)
    except FileNotFoundError as exc:
        raise FairfoundryError(f"image file not found: {path}") from exc
    except Exception as exc:
        raise FairfoundryError(f"cannot read DICOM {path}: {exc}".splitlines()[0]) from exc
    if "PixelData" not in ds:
        raise FairfoundryError(
            f"DICOM {path} has no pixel data (Modality {ds.get('Modality', '?')})",
            hint="the file may be truncated or a non-image object (RTSTRUCT, ECG, ...)")
    try:
        arr = ds.pixel_array
    except Exception as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", syntax)
        raise FairfoundryError(
            # every decoder's reason on one line (pydicom lists one per plugin)
            " ".join(f"cannot decode pixels of DICOM {path} (transfer syntax {name}): {exc}"
                     .split())[:600],
            hint="compressed DICOMs need pylibjpeg, pylibjpeg-libjpeg and pylibjpeg-openjpeg "
                 "(pip install 'fairfoundry[medical]') or GDCM") from exc
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        # MONOCHROME1: low values are bright; invert so every grayscale array means the same.
        bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8))
        if np.issubdtype(arr.dtype, np.unsignedinteger):
            arr = ((1 << bits) - 1 - arr.astype(np.int64)).clip(0, None).astype(arr.dtype)
        else:
            arr = (arr.max() + arr.min() - arr).astype(arr.dtype)
    return arr


def _load_nifti(path: Path):
    import numpy as np

    try:
        import nibabel
    except ImportError as exc:  # pragma: no cover - nibabel is in the medical extra
        raise FairfoundryError(f"reading NIfTI {path} needs nibabel",
                               hint="pip install 'fairfoundry[medical]'") from exc
    try:
        img = nibabel.load(str(path))
        return np.asanyarray(img.dataobj)
    except FileNotFoundError as exc:
        raise FairfoundryError(f"image file not found: {path}") from exc
    except Exception as exc:
        raise FairfoundryError(f"cannot read NIfTI {path}: {exc}".splitlines()[0]) from exc


def load_image(path: str | os.PathLike):
    """Read an image file into a numpy array.

    Parameters
    ----------
    path : path to a PNG, JPEG, TIFF, BMP, DICOM (``.dcm``, or no suffix with the ``DICM``
        magic) or NIfTI (``.nii``, ``.nii.gz``) file

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` for grayscale (``uint8`` or ``uint16``, 8- and 16-bit PNG keep their depth),
        ``(H, W, 3)`` ``uint8`` for colour (alpha dropped, palette expanded).
        DICOM: the stored pixel values in their stored dtype (``uint8``, ``uint16`` or ``int16``;
        no rescale slope/intercept applied), ``(frames, H, W)`` for multi-frame files,
        MONOCHROME1 inverted so that high values are bright. Headers are read with
        ``force=True`` so files without a preamble or file meta still load.
        NIfTI: the volume (``(X, Y, Z[, T])``) with the header's scaling applied.
        npz array references ``dir/file.npz#train_images[3]`` (as in MedMNIST manifests): that
        array row, as stored.

    Raises
    ------
    FairfoundryError
        If the file is missing or cannot be decoded (the message names the file).
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    text = str(path)
    if ".npz#" in text:  # array reference into an npz bundle (MedMNIST manifests)
        from ._readers import load_npz_image

        file, _, key = text.partition(".npz#")
        return load_npz_image(f"{Path(file).name}.npz#{key}", base=Path(file).parent)
    path = Path(path)
    if path.name.lower().endswith(NIFTI_SUFFIXES):
        return _load_nifti(path)
    if _is_dicom(path):
        return _load_dicom(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.int64)
                return np.clip(arr, 0, 65535).astype(np.uint16)
            if im.mode in ("L", "1"):
                return np.asarray(im.convert("L"), dtype=np.uint8)
            if im.mode == "LA":
                return np.asarray(im.convert("L"), dtype=np.uint8)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError as exc:
        raise FairfoundryError(f"image file not found: {path}") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FairfoundryError(f"cannot read image {path}: {exc}".splitlines()[0]) from exc
