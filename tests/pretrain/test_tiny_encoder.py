"""The bundled ``fairfoundry-tiny`` encoder: shipped, registered, offline, documented."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

WEIGHTS = (Path(__file__).resolve().parents[2] / "src" / "fairfoundry" / "pretrain" / "_weights")


def test_bundled_weights_are_small_safetensors_trained_on_nih_only():
    from fairfoundry.pretrain import load_pretrained_vit

    path = WEIGHTS / "fairfoundry-tiny.safetensors"
    assert path.stat().st_size < 5_000_000
    backbone, meta = load_pretrained_vit(path)
    assert "NIH" in meta["data"] and "HAM" not in meta["data"]
    assert json.loads(meta["timm_spec"])["img_size"] == 64
    record = json.loads((WEIGHTS / "fairfoundry-tiny.json").read_text())
    assert record["config"]["manifest"] == "fairfoundry.datasets.nih_images()"
    assert record["final_loss"] < record["first_loss"]  # it did learn


def test_zoo_preset_loads_offline_and_matches_the_pretrain_export():
    from fairfoundry.data import load_image
    from fairfoundry.datasets import nih_images
    from fairfoundry.models import get_preset, load_encoder
    from fairfoundry.pretrain import load_pretrained_vit

    preset = get_preset("fairfoundry-tiny")
    assert preset.embed_dim == 192 and "NIH" in preset.licence
    enc = load_encoder("fairfoundry-tiny")
    backbone, _ = load_pretrained_vit(WEIGHTS / "fairfoundry-tiny.safetensors")
    backbone.eval()
    x = torch.rand(3, 3, 64, 64)
    assert torch.allclose(enc.encode_image((x - 0.5) / 0.5), backbone((x - 0.5) / 0.5), atol=1e-4)

    import pandas as pd

    frame = pd.read_csv(nih_images())
    images = [load_image(nih_images().parent / p) for p in frame["path"].iloc[:8]]
    z = enc.encode_image(images).numpy()
    assert z.shape == (8, 192) and np.isfinite(z).all()
    assert np.linalg.matrix_rank(z, tol=1e-3) > 4  # different X-rays, different embeddings
