"""The evaluation HTML report: self-contained, readable, and rendered by headless Chromium."""

import base64
import html as html_lib
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fairfoundry
from fairfoundry.datasets import nih_chexnet
from fairfoundry.report import gap_readings

_IMG = re.compile(r'<img[^>]*src="([^"]*)"')


@pytest.fixture(scope="module")
def nih_eval():
    """3 real NIH labels on a patient-level slice, bootstrap clustered by patient."""
    df = nih_chexnet()
    keep = df["patient_id"].drop_duplicates().sample(1500, random_state=1)
    df = df[df["patient_id"].isin(keep)]
    return fairfoundry.evaluate(df, label=["Effusion", "Cardiomegaly", "Edema"], sensitive=["sex", "age"],
                                bins={"age": [40, 60]}, bootstrap=30, cluster="patient_id", seed=0)


@pytest.fixture(scope="module")
def report(nih_eval, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    nih_eval.to_html(path)
    return path


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, after checking its signature and IHDR checksum."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    crc = struct.unpack(">I", data[29:33])[0]
    assert zlib.crc32(data[12:29]) == crc
    return struct.unpack(">II", data[16:24])


def test_report_is_self_contained_with_valid_embedded_pngs(report):
    html = report.read_text()
    srcs = _IMG.findall(html)
    assert len(srcs) >= 8  # per attribute: metrics, forest, ROC, calibration
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        w, h = _png_size(base64.b64decode(src.split(",", 1)[1]))
        assert w > 200 and h > 100
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing to fetch: opens offline
    assert "<script" not in html


def test_report_reads_the_findings_in_words(nih_eval, report):
    readings = gap_readings(nih_eval)
    pattern = re.compile(r"^(\w+): .+ for (sex|age)=\S+ is \d\.\d\d lower than for (sex|age)=\S+ "
                         r"\(\d\.\d\d, [\d,]+ of [\d,]+ [a-z ]+, vs \d\.\d\d, [\d,]+ of [\d,]+ [a-z ]+; "
                         r"95% CI of the difference \d\.\d\d to \d\.\d\d; adjusted p = ")
    assert all(pattern.match(r) for r in readings), readings
    html = html_lib.unescape(report.read_text())
    assert "Findings, in words" in html and "A difference is stated only when" in html
    if readings:
        assert readings[0].split(" (")[0] in html
    else:
        assert "No difference between groups is clear at 95%" in html
    assert "chosen on split" in html and ">val<" in html


def test_gap_reading_names_the_lower_group():
    rng = np.random.default_rng(0)
    n = 2000
    sex = rng.choice(["female", "male"], n)
    y = rng.integers(0, 2, n)
    p = np.where((y == 1) & (sex == "male"), 0.9, np.where(y == 1, rng.choice([0.2, 0.9], n), 0.1))
    df = pd.DataFrame({"y": y, "p": p, "sex": sex})
    ev = fairfoundry.evaluate(df, label="y", sensitive="sex", threshold=0.5, split_col=None,
                              headline_permutations=100)
    tpr = [r for r in gap_readings(ev) if "TPR" in r][0]
    assert tpr.startswith("y: TPR (sensitivity) for sex=female is 0.5") and "than for sex=male" in tpr


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_headless_chromium_renders_the_plots(report, tmp_path):
    import matplotlib.image as mpimg

    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--window-size=1200,4000", f"--screenshot={shot}", Path(report).resolve().as_uri()],
            check=True, capture_output=True, timeout=120)
    img = mpimg.imread(shot)[..., :3]
    assert img.shape[:2] == (4000, 1200)
    assert img.std() > 0.05  # not blank
    # plots are the only saturated colour on the page: many such pixels means they rendered
    saturation = img.max(axis=2) - img.min(axis=2)
    assert (saturation > 0.3).mean() > 0.003
