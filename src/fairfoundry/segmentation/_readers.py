"""Binary mask readers: PNG (and other Pillow images), NIfTI, npz / npy.

Every reader returns ``(mask, spacing)``: a boolean array and the voxel spacing (NIfTI header
zooms; ``None`` for images and arrays). A mask must be binary: values in {0, 1}, or {0, 255}
for 8-bit images (as saved by most tools); anything else raises, naming the file. Arrays are
loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError

__all__ = ["read_mask", "MASK_SUFFIXES"]

MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".nii", ".nii.gz", ".npz", ".npy")


def _binary(a: np.ndarray, where: str) -> np.ndarray:
    if a.dtype == bool:
        return a
    if not np.issubdtype(a.dtype, np.number):
        raise FairfoundryError(f"mask {where} is not numeric (dtype {a.dtype})")
    vals = np.unique(a)
    if vals.size > 2 or not (set(vals.tolist()) <= {0, 1} or set(vals.tolist()) <= {0, 255}):
        shown = ", ".join(f"{v:g}" for v in vals[:6]) + (", ..." if vals.size > 6 else "")
        raise FairfoundryError(f"mask {where} is not binary: values {shown}",
                               hint="masks must hold 0/1 (or 0/255); threshold probability "
                                    "maps and split multi-class label maps first")
    return a > 0


def read_mask(path: str | os.PathLike, *, key: str | None = None) -> tuple[np.ndarray,
                                                                           tuple | None]:
    """Read one binary mask. ``key`` picks the array of an ``.npz`` with several (default: the
    only one, or ``mask``)."""
    path = Path(path)
    if not path.exists():
        raise FairfoundryError(f"mask file not found: {path}")
    name = path.name.lower()
    spacing = None
    try:
        if name.endswith((".nii", ".nii.gz")):
            try:
                import nibabel as nib
            except ImportError:
                raise FairfoundryError(f"mask {path}: reading NIfTI needs nibabel",
                                       hint="pip install 'fairfoundry[medical]'") from None

            img = nib.load(str(path))
            a = np.asarray(img.dataobj)
            spacing = tuple(float(z) for z in img.header.get_zooms()[: a.ndim])
        elif name.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                k = key or ("mask" if "mask" in keys else (keys[0] if len(keys) == 1 else None))
                if k is None or k not in keys:
                    raise FairfoundryError(f"mask {path} holds arrays {keys}; which one?",
                                           hint="name it 'mask', or save one array per file")
                a = z[k]
        elif name.endswith(".npy"):
            a = np.load(path, allow_pickle=False)
        elif name.endswith((".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")):
            from PIL import Image

            with Image.open(path) as im:
                if im.mode in ("RGB", "RGBA", "P", "LA"):
                    im = im.convert("L")
                a = np.asarray(im)
        else:
            raise FairfoundryError(f"mask {path}: unknown file type",
                                   hint=f"use one of {', '.join(MASK_SUFFIXES)}")
    except FairfoundryError:
        raise
    except Exception as exc:  # a corrupt file is a user-input problem
        raise FairfoundryError(f"cannot read mask {path}: {exc}".splitlines()[0]) from exc
    return _binary(np.asarray(a), str(path)), spacing
