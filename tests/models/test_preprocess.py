"""Preprocessing: channels, bit depth, resize/crop, torchxrayvision scaling, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairfoundry._errors import FairfoundryError
from fairfoundry.models import Preprocessing, preprocess_image, to_unit_range

XRV = Preprocessing(size=16, channels=1, mean=(0.0,), std=(1.0,), value_range=(-1024, 1024),
                    interpolation="bilinear")


def test_xrv_scaling_maps_black_and_white_to_minus_and_plus_1024():
    black = np.zeros((20, 20), np.uint8)
    white = np.full((20, 20), 255, np.uint8)
    assert torch.allclose(preprocess_image(black, XRV), torch.full((1, 16, 16), -1024.0))
    assert torch.allclose(preprocess_image(white, XRV), torch.full((1, 16, 16), 1024.0))
    # torchxrayvision's own normalize gives the same value for mid-grey
    import torchxrayvision as xrv

    grey = np.full((16, 16), 100, np.uint8)
    ours = preprocess_image(grey, XRV)[0, 0, 0].item()
    theirs = float(xrv.datasets.normalize(grey.astype(np.float32), 255)[0, 0])
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_sixteen_bit_images_use_their_full_range():
    img = np.full((8, 8), 65535, np.uint16)
    assert to_unit_range(img).max() == pytest.approx(1.0)
    assert to_unit_range(np.full((8, 8), 255, np.uint16)).max() == pytest.approx(255 / 65535)


def test_grey_becomes_three_identical_channels_and_rgb_becomes_luminance():
    prep = Preprocessing(size=8, channels=3, mean=(0.0,) * 3, std=(1.0,) * 3)
    grey = np.random.default_rng(0).integers(0, 255, (8, 8)).astype(np.uint8)
    x = preprocess_image(grey, prep)
    assert x.shape == (3, 8, 8)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    y = preprocess_image(rgb, Preprocessing(size=8, channels=1, mean=(0.0,), std=(1.0,)))
    assert y.shape == (1, 8, 8)
    assert torch.allclose(y, torch.full_like(y, 0.299))


def test_normalisation_uses_mean_and_std_per_channel():
    prep = Preprocessing(size=4, channels=3, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    x = preprocess_image(np.full((4, 4, 3), 255, np.uint8), prep)
    assert torch.allclose(x[:, 0, 0], torch.tensor([1.0, 3.0, 0.5]))


def test_shortest_side_resize_then_centre_crop_keeps_the_centre():
    img = np.zeros((20, 40), np.uint8)
    img[:, 15:25] = 255  # a white band in the centre
    prep = Preprocessing(size=10, channels=1, mean=(0.0,), std=(1.0,), interpolation="nearest")
    x = preprocess_image(img, prep)
    assert x.shape == (1, 10, 10)
    assert x[0, :, 5].min() == 1.0  # the centre column is white
    assert x[0, :, 0].max() == 0.0  # the border is black (cropped from 20 columns)
    squash = preprocess_image(img, prep.replace(resize="squash"))
    assert squash.shape == (1, 10, 10) and squash[0, :, 0].max() == 0.0


def test_preprocessing_round_trips_through_dict_and_rejects_bad_values():
    p = Preprocessing(size=32, channels=1, mean=(0.1,), std=(0.2,), value_range=(-1024, 1024))
    assert Preprocessing.from_dict(p.to_dict()) == p
    with pytest.raises(FairfoundryError, match="channels"):
        Preprocessing(channels=2)
    with pytest.raises(FairfoundryError, match="unknown preprocessing keys: sise"):
        Preprocessing.from_dict({"sise": 3})
    with pytest.raises(FairfoundryError, match="std must be positive"):
        Preprocessing(std=(0, 1, 1))
    with pytest.raises(FairfoundryError, match="expected a 2-D grayscale or RGB"):
        preprocess_image(np.zeros((4, 4, 5)), p)


def test_gray_mode_mean_is_the_plain_channel_mean_as_torchxrayvision_documents():
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    luma = preprocess_image(rgb, Preprocessing(size=8, channels=1, mean=(0.0,), std=(1.0,)))
    mean = preprocess_image(rgb, Preprocessing(size=8, channels=1, mean=(0.0,), std=(1.0,), gray="mean"))
    assert float(luma.mean()) == pytest.approx(0.299, abs=1e-6)
    assert float(mean.mean()) == pytest.approx(1 / 3, abs=1e-6)
    with pytest.raises(FairfoundryError, match="gray mode"):
        Preprocessing(gray="average")


@pytest.mark.parametrize("hw", [(300, 257), (257, 411), (224, 224), (97, 130)])
def test_resize_and_crop_match_torchvision_on_the_timm_eval_recipe(hw):
    """Oracle: torchvision resize (shorter side floor(224 / 0.9) = 248, bicubic, antialias) +
    center_crop + normalize, i.e. timm's eval transform done on tensors."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    img = np.random.default_rng(1).integers(0, 256, (*hw, 3)).astype(np.uint8)
    prep = Preprocessing(size=224, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=0.9)
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    h, w = hw
    s = 248 / min(h, w)
    size = [248, max(248, int(np.floor(w * s + 0.5)))] if h <= w else [max(248, int(np.floor(h * s + 0.5))), 248]
    ref = TF.center_crop(TF.resize(x, size, interpolation=InterpolationMode.BICUBIC, antialias=True)
                         .clamp(0, 1), [224])
    ref = TF.normalize(ref, [0.5] * 3, [0.5] * 3)
    torch.testing.assert_close(preprocess_image(img, prep), ref, rtol=0, atol=1e-5)
