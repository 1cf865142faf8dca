"""Fixtures of the curation tests: planted near-duplicates of the bundled NIH X-rays, rings."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    """The 300 bundled NIH X-rays (300 patients) plus 60 planted near-duplicates.

    Each copy is resized, JPEG re-encoded, cropped by 5 % or brightened / darkened by 10 %; it
    keeps its patient's id, except every 10th copy, which gets a new patient id (leakage).
    Returns (manifest path, set of true (original, copy) pairs).
    """
    from PIL import Image, ImageEnhance

    from fairfoundry.datasets import nih_images

    src = nih_images()
    m = pd.read_csv(src)
    root = tmp_path_factory.mktemp("planted")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    rows = [{"sample_id": r.sample_id, "patient_id": str(r.patient_id), "path": str(src.parent / r.path),
             "split": r.split, "sex": r.sex, "age": r.age} for r in m.itertuples()]
    kinds = ["resize", "jpeg", "crop", "brighter", "darker"]
    truth = set()
    for t, i in enumerate(rng.choice(len(m), 60, replace=False)):
        im = Image.open(src.parent / m.path[i]).convert("L")
        w, h = im.size
        kind = kinds[t % 5]
        if kind == "resize":
            v = im.resize((200, 200))
        elif kind == "jpeg":
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=70)
            v = Image.open(io.BytesIO(buf.getvalue()))
        elif kind == "crop":
            c = int(round(0.05 * w))
            left, top = int(rng.integers(0, c + 1)), int(rng.integers(0, c + 1))
            v = im.crop((left, top, w - (c - left), h - (c - top)))
        else:
            v = ImageEnhance.Brightness(im).enhance(1.1 if kind == "brighter" else 0.9)
        name = f"copy{t}_{kind}"
        v.save(root / "images" / f"{name}.png")
        rows.append({"sample_id": name, "patient_id": f"new{t}" if t % 10 == 0 else str(m.patient_id[i]),
                     "path": f"images/{name}.png", "split": "train", "sex": m.sex[i], "age": m.age[i]})
        truth.add(tuple(sorted((m.sample_id[i], name))))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv", truth
