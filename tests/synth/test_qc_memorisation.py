"""Memorisation check in encoder space on real NIH X-rays: copies flagged, fresh real images not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from fairfoundry.datasets import nih_images
from fairfoundry.synth import run_qc
from fairfoundry.synth._images import load_images, save_png, to_uint8


def _fake_sample(rows, base: Path, out: Path, size: int = 32) -> Path:
    """A 'generator' whose samples are the given real images, saved at its resolution as PNG."""
    arr = to_uint8(load_images([base / p for p in rows["path"]], size=size, channels=1))
    recs = []
    for i, (img, r) in enumerate(zip(arr, rows.itertuples(index=False), strict=True)):
        save_png(out / "images" / f"s{i}.png", img)
        recs.append({"sample_id": f"s{i}", "path": f"images/s{i}.png", "sex": r.sex,
                     "Infiltration": r.Infiltration, "cell": f"Infiltration={r.Infiltration},sex={r.sex}",
                     "synthetic": 1})
    pd.DataFrame(recs).to_csv(out / "manifest.csv", index=False)
    return out / "manifest.csv"


@pytest.fixture(scope="module")
def nih(tmp_path_factory):
    m = pd.read_csv(nih_images())
    return m, nih_images().parent, tmp_path_factory.mktemp("mem")


def test_a_generator_returning_training_images_is_flagged_and_fresh_images_are_not(nih):
    m, base, tmp = nih
    # a smaller real manifest keeps the test fast: 100 training and 40 held-out patients
    train = m[m["split"] == "train"].sample(100, random_state=0)
    held = m[m["split"] != "train"].sample(40, random_state=0)
    real = pd.concat([train, held]).assign(path=lambda d: [str(base / p) for p in d["path"]])
    real.to_csv(tmp / "real.csv", index=False)
    copies = _fake_sample(train.head(40), base, tmp / "copies")
    fresh = _fake_sample(held, base, tmp / "fresh")
    q1 = run_qc(tmp / "real.csv", copies, out=tmp / "q1", conditions=["Infiltration", "sex"])
    q2 = run_qc(tmp / "real.csv", fresh, out=tmp / "q2", conditions=["Infiltration", "sex"])
    c = pd.read_csv(q1 / "per_sample.csv")
    f = pd.read_csv(q2 / "per_sample.csv")
    assert c["copy"].mean() >= 0.9, c["copy"].mean()
    assert f["copy"].mean() <= 0.1, f["copy"].mean()
    # per group too (minority cells memorise first): every cell of the copies is flagged
    table = pd.read_csv(q1 / "qc.csv")
    assert (table["copy_rate"] >= 0.9).all() and len(table) >= 3
    # the held-out calibration: real held-out images of each cell are not copies of the training set
    assert (table["heldout_real_copy_rate"].dropna() <= 0.1).all()
    # copies are rejected and listed with the reason
    rej = pd.read_csv(q1 / "rejected.csv")
    assert len(rej) >= 0.9 * len(c) and rej["reason"].str.contains("copy of a training image").all()
    html = (q1 / "qc.html").read_text()
    assert "FD_fairfoundry-tiny" in html and "data:image/png;base64," in html
    assert np.isfinite(table["FD_fairfoundry-tiny"]).all()
