"""Batched, seeded, medical-sensible image augmentations for self-supervised pre-training.

Natural-image recipes (SimCLR, DINO) lean on colour jitter, grayscale conversion and
horizontal flips. On medical images these change what the image means: colour jitter on a
grayscale X-ray only adds channel noise the model must learn to ignore, and a horizontal flip
moves the heart to the right (a real condition, dextrocardia). So the presets here are per
modality:

===========  ===========================================================================
modality     augmentations
===========  ===========================================================================
``xray``     random resized crop, rotation +-10 deg, brightness/contrast (the same change on
             every channel, so no colour), gamma, light blur; **no flip, no colour jitter**
``ct``/      as ``xray``
``mri``
``derm``     random resized crop, any rotation, horizontal and vertical flips (lesions have
             no orientation), mild colour jitter (lighting and camera differences)
``fundus``   crop, rotation, horizontal flip (left/right eyes), mild colour jitter
``natural``  crop, flip, strong colour jitter, grayscale (the SimCLR recipe)
===========  ===========================================================================

Every field can be overridden (``Augment.preset("xray", color_jitter=0.2)``): colour jitter on
X-rays only when asked. All operations run on the batch on its device (one affine resample per
image for crop + rotation + flip) and draw their randomness from an explicit
``torch.Generator``, so a run is reproducible from its seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F

from .._errors import FairfoundryError, did_you_mean

__all__ = ["Augment", "MODALITIES"]


@dataclass(frozen=True)
class Augment:
    """Augmentation recipe; see the module docstring for the per-modality presets.

    Parameters
    ----------
    scale : (float, float)
        Range of the crop's area as a fraction of the image (random resized crop).
    ratio : (float, float)
        Range of the crop's aspect ratio.
    rotation : float
        Maximum absolute rotation in degrees.
    hflip, vflip : float
        Probabilities of a horizontal / vertical flip.
    brightness, contrast : float
        Maximum relative change (the same on every channel: never changes colour).
    gamma : float
        Gamma is drawn in ``[1 - gamma, 1 + gamma]``.
    color_jitter : float
        Maximum per-channel gain change and saturation change (0 disables; changes colour).
    grayscale : float
        Probability of converting the image to grayscale.
    blur : float
        Probability of a Gaussian blur (sigma drawn in ``blur_sigma``).
    blur_sigma : (float, float)
        Range of the blur's sigma, in pixels of the output.
    noise : float
        Standard deviation of additive Gaussian noise (images are in ``[0, 1]``).
    """

    scale: tuple[float, float] = (0.4, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotation: float = 10.0
    hflip: float = 0.0
    vflip: float = 0.0
    brightness: float = 0.2
    contrast: float = 0.2
    gamma: float = 0.2
    color_jitter: float = 0.0
    grayscale: float = 0.0
    blur: float = 0.2
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    noise: float = 0.0

    @classmethod
    def preset(cls, modality: str = "xray", **overrides) -> Augment:
        """The recipe for a modality (``xray``, ``ct``, ``mri``, ``derm``, ``fundus``,
        ``natural``), with fields overridden by keyword."""
        key = str(modality).lower()
        if key not in MODALITIES:
            raise FairfoundryError(f"unknown modality {modality!r}",
                                   hint=did_you_mean(key, MODALITIES, what="modalities"))
        aug = MODALITIES[key]
        bad = sorted(set(overrides) - set(asdict(aug)))
        if bad:
            raise FairfoundryError(f"unknown augmentation option(s) {', '.join(bad)}",
                                   hint=f"options are: {', '.join(asdict(aug))}")
        return replace(aug, **overrides)

    def with_scale(self, scale: tuple[float, float]) -> Augment:
        """A copy with another crop-area range (DINO's global vs local crops)."""
        return replace(self, scale=tuple(scale))

    def to_dict(self) -> dict:
        return asdict(self)

    # ------------------------------------------------------------------------------------
    def __call__(self, images: torch.Tensor, *, size: int | tuple[int, int],
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch of images in ``[0, 1]``.

        Parameters
        ----------
        images : Tensor ``(B, C, H, W)`` float in ``[0, 1]``
        size : int or (int, int)
            Output resolution (the crop is resampled to it).
        generator : torch.Generator, optional
            Source of randomness (on the CPU); seeded by the runner.

        Returns
        -------
        Tensor ``(B, C, size, size)`` in ``[0, 1]``
        """
        out_h, out_w = (size, size) if isinstance(size, int) else size
        b, c = images.shape[:2]
        dev, dt = images.device, images.dtype

        def u(lo, hi, n=b):
            return torch.rand(n, generator=generator) * (hi - lo) + lo

        # --- geometry: one affine map per image (crop + aspect + rotation + flips)
        area = u(*self.scale)
        log_r = u(math.log(self.ratio[0]), math.log(self.ratio[1]))
        r = torch.exp(log_r)
        cw = torch.sqrt(area * r).clamp(max=1.0)
        ch = torch.sqrt(area / r).clamp(max=1.0)
        cx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - cw)
        cy = (torch.rand(b, generator=generator) * 2 - 1) * (1 - ch)
        ang = u(-self.rotation, self.rotation) * math.pi / 180
        fx = torch.where(torch.rand(b, generator=generator) < self.hflip, -1.0, 1.0)
        fy = torch.where(torch.rand(b, generator=generator) < self.vflip, -1.0, 1.0)
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.stack([
            torch.stack([cw * cos * fx, -ch * sin * fy, cx], dim=-1),
            torch.stack([cw * sin * fx, ch * cos * fy, cy], dim=-1),
        ], dim=1).to(dev, dt)
        grid = F.affine_grid(theta, [b, c, out_h, out_w], align_corners=False)
        x = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                          align_corners=False)

        # --- intensity: the same change on every channel (no colour change)
        def per_image(v):
            return v.to(dev, dt).view(b, 1, 1, 1)

        if self.contrast > 0:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * per_image(u(1 - self.contrast, 1 + self.contrast)) + mean
        if self.brightness > 0:
            x = x + per_image(u(-self.brightness, self.brightness)) * 0.5
        x = x.clamp(0, 1)
        if self.gamma > 0:
            x = x.clamp_min(1e-6) ** per_image(u(1 - self.gamma, 1 + self.gamma))

        # --- colour (only when asked)
        if self.color_jitter > 0 and c > 1:
            gains = 1 + (torch.rand(b, c, generator=generator) * 2 - 1) * self.color_jitter
            x = x * gains.to(dev, dt).view(b, c, 1, 1)
            sat = per_image(u(1 - self.color_jitter, 1 + self.color_jitter))
            gray = x.mean(dim=1, keepdim=True)
            x = (gray + (x - gray) * sat).clamp(0, 1)
        if self.grayscale > 0 and c > 1:
            to_gray = per_image((torch.rand(b, generator=generator) < self.grayscale).float())
            x = x * (1 - to_gray) + x.mean(dim=1, keepdim=True) * to_gray

        # --- blur (one sigma per batch, applied to a random subset) and noise
        if self.blur > 0:
            which = torch.rand(b, generator=generator) < self.blur
            sigma = float(u(*self.blur_sigma, n=1))
            if bool(which.any()):
                x = torch.where(per_image(which.float()) > 0, _gaussian_blur(x, sigma), x)
        if self.noise > 0:
            noise = torch.randn(x.shape, generator=generator).to(dev, dt)
            x = x + noise * self.noise
        return x.clamp(0, 1)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    pad = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    if pad < radius:
        return x
    xp = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    xp = F.conv2d(xp, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(xp, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


_XRAY = Augment()
MODALITIES: dict[str, Augment] = {
    "xray": _XRAY,
    "ct": _XRAY,
    "mri": _XRAY,
    "derm": Augment(rotation=180.0, hflip=0.5, vflip=0.5, color_jitter=0.1, gamma=0.1),
    "fundus": Augment(rotation=20.0, hflip=0.5, color_jitter=0.1, gamma=0.1),
    "natural": Augment(scale=(0.08, 1.0), rotation=0.0, hflip=0.5, brightness=0.4,
                       contrast=0.4, gamma=0.0, color_jitter=0.4, grayscale=0.2, blur=0.5),
}
