"""Fixtures for the model-zoo tests: a tiny random-init encoder saved once, real image manifests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

TINY_VIT = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}


@pytest.fixture(scope="session")
def tiny_encoder_file(tmp_path_factory) -> Path:
    """A tiny timm ViT (random init, seed 0) saved with its architecture as .safetensors."""
    from fairfoundry.models import load_encoder, save_encoder

    enc = load_encoder("timm:vit_tiny_patch16_224", weights="random", model_kwargs=TINY_VIT)
    return save_encoder(enc, tmp_path_factory.mktemp("enc") / "tiny-vit.safetensors")


@pytest.fixture(scope="session")
def nih_manifest() -> Path:
    from fairfoundry.datasets import nih_images

    return nih_images()


@pytest.fixture(scope="session")
def ham_manifest(tmp_path_factory, data_dir) -> Path:
    """Manifest (sample_id, path, sex, age, dx, site) of the 486 real HAM10000 test images."""
    root = data_dir / "ham10000_images_224"
    meta = pd.read_csv(root / "metadata.csv")
    frame = pd.DataFrame({
        "sample_id": meta["image_id"], "patient_id": meta["lesion_id"],
        "path": [str(root / f) for f in meta["file"]],
        "sex": meta["sex"], "age": meta["age"], "dx": meta["dx"], "site": meta["dataset"]})
    out = tmp_path_factory.mktemp("ham") / "manifest.csv"
    frame.to_csv(out, index=False)
    return out


@pytest.fixture
def tiny_vit() -> dict:
    """timm kwargs of the tiny ViT used throughout (32 px, 1 block, 32-d)."""
    return dict(TINY_VIT)


@pytest.fixture
def small_manifest(tmp_path):
    """Factory: the first ``n`` rows of a manifest, with absolute paths, written to tmp_path."""

    def make(src: Path, n: int, name: str = "manifest.csv") -> Path:
        frame = pd.read_csv(src, dtype={"sample_id": str, "patient_id": str}).head(n).copy()
        frame["path"] = [str((Path(src).parent / p).resolve()) for p in frame["path"]]
        out = tmp_path / name
        frame.to_csv(out, index=False)
        return out

    return make
