"""Reading one image file into a numpy array (PNG/JPEG/TIFF/BMP via Pillow).

:func:`load_image` is the one entry point every component uses to read pixels, so adding a
format (DICOM, NIfTI, ...) is done here once. Arrays keep their bit depth: 8-bit images are
``uint8``, 16-bit ``uint16``; grayscale is ``(H, W)``, colour ``(H, W, 3)``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._errors import FairfoundryError

__all__ = ["load_image", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def load_image(path: str | os.PathLike):
    """Read an image file into a numpy array.

    Parameters
    ----------
    path : path to a PNG, JPEG, TIFF or BMP file

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` for grayscale (``uint8`` or ``uint16``), ``(H, W, 3)`` ``uint8`` for colour
        (alpha dropped, palette expanded).

    Raises
    ------
    FairfoundryError
        If the file is missing or cannot be decoded (the message names the file).
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
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
