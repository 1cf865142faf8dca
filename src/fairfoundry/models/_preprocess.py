"""Turn an image array (from :func:`fairfoundry.data.load_image`) into a model input tensor."""

from __future__ import annotations

import math

from .._errors import FairfoundryError
from ._spec import Preprocessing

__all__ = ["preprocess_image", "to_unit_range", "shorter_side"]

_LUMA = (0.299, 0.587, 0.114)


def to_unit_range(image):
    """Pixel values of ``image`` as float32 in ``[0, 1]`` (by dtype for integers, min-max for floats).

    Parameters
    ----------
    image : numpy.ndarray of shape (H, W) or (H, W, C)

    Returns
    -------
    numpy.ndarray, float32, same shape
    """
    import numpy as np

    arr = np.asarray(image)
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if info.min < 0:
            arr = arr.astype(np.float32)
            lo, hi = float(arr.min()), float(arr.max())
            return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        return arr.astype(np.float32) / np.float32(info.max)
    arr = arr.astype(np.float32)
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if 0.0 <= lo and hi <= 1.0:
        return arr
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def shorter_side(prep: Preprocessing) -> int:
    """Shorter side before the centre crop: ``floor(size / crop_pct)`` (timm's ``scale_size``,
    RETFound/MAE's ``int(input_size / crop_pct)``), at least ``size``."""
    return max(prep.size, int(math.floor(prep.size / prep.crop_pct + 1e-6)))


def preprocess_image(image, prep: Preprocessing, *, source: str = "image"):
    """Apply ``prep`` (see :class:`Preprocessing`) to one image.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` grayscale or ``(H, W, 3)`` / ``(H, W, 4)`` colour, any integer or float dtype.
    prep : Preprocessing
    source : str
        Name used in error messages (the file path).

    Returns
    -------
    torch.Tensor of shape (prep.channels, prep.size, prep.size), float32
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    arr = to_unit_range(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or min(arr.shape[:2]) < 1:
        raise FairfoundryError(f"{source}: expected a 2-D grayscale or RGB image, got shape "
                               f"{tuple(np.asarray(image).shape)}")
    if arr.ndim == 2:
        x = torch.from_numpy(np.ascontiguousarray(arr))[None]
    else:
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    if prep.channels == 1 and x.shape[0] == 3:
        weights = _LUMA if prep.gray == "luma" else (1 / 3, 1 / 3, 1 / 3)
        w = torch.tensor(weights, dtype=x.dtype).view(3, 1, 1)
        x = (x * w).sum(0, keepdim=True)

    h, w = x.shape[1:]
    size = prep.size
    if prep.resize == "squash":
        out_hw = (size, size)
    else:
        short = shorter_side(prep)
        scale = short / min(h, w)
        out_hw = (max(short, int(math.floor(h * scale + 0.5))),
                  max(short, int(math.floor(w * scale + 0.5))))
        if min(h, w) == h:
            out_hw = (short, out_hw[1])
        else:
            out_hw = (out_hw[0], short)
    if (h, w) != out_hw:
        mode = prep.interpolation
        kwargs = {} if mode == "nearest" else {"align_corners": False, "antialias": True}
        x = F.interpolate(x[None].float(), size=out_hw, mode=mode, **kwargs)[0]
        if mode == "bicubic":
            x = x.clamp_(0.0, 1.0)
    if prep.resize == "shortest":
        # torchvision's center_crop offsets: int(round((H - size) / 2)), Python (banker's) rounding
        top = int(round((x.shape[1] - size) / 2.0))
        left = int(round((x.shape[2] - size) / 2.0))
        x = x[:, top:top + size, left:left + size]
    if prep.channels == 3 and x.shape[0] == 1:  # after resizing: 3x less work
        x = x.expand(3, -1, -1)
    lo, hi = prep.value_range
    if (lo, hi) != (0.0, 1.0):
        x = x * (hi - lo) + lo
    mean = torch.tensor(prep.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(prep.std, dtype=torch.float32).view(-1, 1, 1)
    return ((x - mean) / std).contiguous()
