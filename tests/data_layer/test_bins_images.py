import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.data import bin_values, load_image, parse_bins
from fairfoundry.datasets import nih_images


def test_bins_are_left_closed_and_keep_unknown():
    cats = bin_values([0, 39.9, 40, 59, 60, 79.99, 80, 95, np.nan], [40, 60, 80])
    assert list(cats) == ["<40", "<40", "40-59", "40-59", "60-79", "60-79", "80+", "80+", "unknown"]
    assert list(cats.categories) == ["<40", "40-59", "60-79", "80+", "unknown"]


def test_bins_match_pandas_cut():
    rng = np.random.default_rng(0)
    ages = rng.integers(0, 100, 1000)
    ours = bin_values(ages, [18, 65]).codes
    ref = pd.cut(ages, [-np.inf, 18, 65, np.inf], right=False, labels=False)
    assert np.array_equal(ours, ref)


def test_parse_bins_errors():
    assert parse_bins(["age=40,60,80"]) == {"age": [40.0, 60.0, 80.0]}
    with pytest.raises(FairfoundryError):
        parse_bins(["age=60,40"])
    with pytest.raises(FairfoundryError):
        parse_bins(["age"])


def test_load_real_nih_image():
    man = pd.read_csv(nih_images())
    img = load_image(nih_images().parent / man["path"].iloc[0])
    assert img.ndim == 2 and img.dtype == np.uint8 and img.shape == (256, 256)


def test_load_image_error_names_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(FairfoundryError, match="broken.png"):
        load_image(bad)
