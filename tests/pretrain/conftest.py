"""Tiny image data for the pre-training tests: textures that a linear probe can tell apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CLASSES = ("horizontal", "vertical", "checker", "blob")


def texture(kind: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A 2-D grayscale texture in [0, 255] with a random phase and noise."""
    y, x = np.mgrid[0:size, 0:size].astype(float)
    period = rng.uniform(5, 8)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "horizontal":
        img = np.sin(2 * np.pi * y / period + phase)
    elif kind == "vertical":
        img = np.sin(2 * np.pi * x / period + phase)
    elif kind == "checker":
        img = np.sin(2 * np.pi * x / period + phase) * np.sin(2 * np.pi * y / period + phase)
    else:
        cy, cx = rng.uniform(8, size - 8, 2)
        img = 2 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * rng.uniform(3, 6) ** 2)) - 1
    img = img + rng.normal(0, 0.3, img.shape)
    return np.clip((img + 1.5) / 3 * 255, 0, 255).astype(np.uint8)


def write_textures(folder, n: int, *, seed: int = 0, size: int = 32,
                   female_fraction: float = 0.5) -> pd.DataFrame:
    from PIL import Image

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    n_female = int(round(n * female_fraction))
    for i in range(n):
        kind = CLASSES[i % len(CLASSES)]
        name = f"images/img{i:03d}.png"
        Image.fromarray(texture(kind, rng, size)).save(folder / name)
        rows.append({"sample_id": f"s{i:03d}", "patient_id": f"p{i:03d}", "path": name,
                     "sex": "female" if i < n_female else "male",
                     "age": float(rng.integers(20, 90)), "texture": kind,
                     "label": int(kind in ("horizontal", "checker")),
                     "caption": f"an image of {kind} texture"})
    frame = pd.DataFrame(rows)
    frame.to_csv(folder / "manifest.csv", index=False)
    return frame


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory):
    """48 textured 32 px PNGs (4 classes, sex 50/50) with a manifest.csv; returns its path."""
    folder = tmp_path_factory.mktemp("textures")
    write_textures(folder, 48)
    return folder / "manifest.csv"


@pytest.fixture(scope="session")
def skewed_manifest(tmp_path_factory):
    """40 textured PNGs, 90 % female, for sampling tests."""
    folder = tmp_path_factory.mktemp("skewed")
    write_textures(folder, 40, seed=1, female_fraction=0.9)
    return folder / "manifest.csv"


#: the tiny ViT used across tests (options of fairfoundry.pretrain.build_vit)
_TINY_VIT = {"model": "vit_tiny_patch16_224", "image_size": 32, "patch_size": 8, "embed_dim": 32,
            "depth": 2, "num_heads": 2}

#: tiny heads per objective (the paper defaults are far too big for a test)
_TINY_OPTIONS = {
    "mae": {"decoder_dim": 32, "decoder_depth": 1, "decoder_heads": 2},
    "simclr": {"proj_hidden": 64, "proj_dim": 32},
    "dino": {"out_dim": 256, "head_hidden": 64, "head_bottleneck": 32, "local_crops": 2},
    "ijepa": {"predictor_dim": 32, "predictor_depth": 1, "predictor_heads": 2},
    "clip": {"embed_dim": 32, "text_width": 32, "text_depth": 1, "text_heads": 2,
             "context_length": 40},
    "siglip": {"embed_dim": 32, "text_width": 32, "text_depth": 1, "text_heads": 2,
               "context_length": 40},
}


@pytest.fixture(scope="session")
def tiny_vit() -> dict:
    """Options of ``build_vit`` for a 32 px, patch 8, width 32, depth 2 ViT."""
    return dict(_TINY_VIT)


@pytest.fixture(scope="session")
def tiny_options() -> dict:
    """Small heads per objective (the papers' defaults are far too big for a test)."""
    return {k: dict(v) for k, v in _TINY_OPTIONS.items()}


@pytest.fixture(scope="session")
def write_textures_fn():
    """The texture-manifest writer, for tests that need more (held-out) data."""
    return write_textures


@pytest.fixture(scope="session")
def nih_probe_dir(tmp_path_factory):
    """The bundled NIH X-rays as ``train.csv`` (the train split, for pre-training) and
    ``probe.csv`` (every row; its test rows point at files that do not exist, so a run that
    read one would fail). Paths are absolute."""
    import fairfoundry

    nih = Path(fairfoundry.__file__).parent / "datasets" / "_data" / "nih_images_256" / "manifest.csv"
    d = tmp_path_factory.mktemp("nih")
    m = pd.read_csv(nih)
    m["path"] = [str(nih.parent / p) for p in m["path"]]
    m[m["split"] == "train"].to_csv(d / "train.csv", index=False)
    test = m["split"] == "test"
    m.loc[test, "path"] = [str(d / "unreadable" / f"{i}.png") for i in range(int(test.sum()))]
    m.to_csv(d / "probe.csv", index=False)
    return d
