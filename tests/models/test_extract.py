"""Extraction: alignment, content-addressed cache, skipped/strict images, outputs never partial."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import fairfoundry.models._extract as extract_mod
from fairfoundry._errors import FairfoundryError
from fairfoundry.data import load_image
from fairfoundry.models import extract_embeddings, load_encoder, read_embeddings


def test_embeddings_align_to_manifest_and_match_a_direct_forward(tmp_path, tiny_encoder_file,
                                                                 small_manifest):
    man = small_manifest(__import__("fairfoundry.datasets", fromlist=["x"]).nih_images(), 40)
    res = extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "emb", shard_size=16,
                             batch_size=8, cache_dir=tmp_path / "cache")
    assert (res.n, res.dim, res.shards_total, res.shards_computed) == (40, 32, 3, 3)
    ids, arr, meta = read_embeddings(tmp_path / "emb")
    frame = pd.read_csv(man, dtype={"sample_id": str})
    assert list(ids) == frame["sample_id"].tolist()
    assert arr.dtype == np.float32 and arr.shape == (40, 32)
    enc = load_encoder(tiny_encoder_file)
    direct = enc.encode_image([load_image(p) for p in frame["path"][:8]]).numpy()
    np.testing.assert_allclose(arr[:8], direct, rtol=1e-5, atol=1e-6)
    # sidecar: model, weights hash, preprocessing, manifest fingerprint, versions
    assert meta["weights_id"] == enc.weights_id and meta["weights_id"].startswith("sha256:")
    assert meta["preprocessing"]["size"] == 32
    assert meta["inputs"]["manifest_fingerprint"] and meta["versions"]["torch"]
    assert meta["n"] == 40 and meta["dim"] == 32


def test_second_run_does_no_work_and_another_out_reuses_the_cache(tmp_path, tiny_encoder_file,
                                                                   small_manifest, monkeypatch):
    from fairfoundry.datasets import nih_images

    man = small_manifest(nih_images(), 24)
    kw = {"shard_size": 8, "cache_dir": tmp_path / "cache"}
    first = extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "a", **kw)
    assert first.shards_computed == 3

    def boom(*a, **k):
        raise AssertionError("the encoder must not be loaded when everything is cached")

    monkeypatch.setattr(extract_mod, "load_encoder", boom)
    again = extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "a", **kw)
    assert again.up_to_date and again.shards_computed == 0
    other = extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "b", **kw)
    assert (other.shards_computed, other.shards_reused) == (0, 3)
    np.testing.assert_array_equal(read_embeddings(tmp_path / "a")[1], read_embeddings(tmp_path / "b")[1])


def test_library_upgrade_recomputes_instead_of_reusing_stale_shards(tmp_path, tiny_encoder_file,
                                                                    small_manifest, monkeypatch):
    from fairfoundry.datasets import nih_images

    man = small_manifest(nih_images(), 4)
    kw = {"shard_size": 4, "cache_dir": tmp_path / "cache"}
    first = extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "a", **kw)
    meta = read_embeddings(tmp_path / "a")[2]
    enc_json = json.loads((tmp_path / "cache" / first.cache_key / "encoder.json").read_text())
    libs = enc_json["identity"]["libraries"]
    assert libs["torch"] and libs["timm"] and libs["fairfoundry"]
    real = extract_mod.library_versions
    monkeypatch.setattr(extract_mod, "library_versions", lambda b: {**real(b), "timm": "999.0"})
    again = extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "b", **kw)
    assert again.cache_key != meta["cache_key"] and again.shards_computed == 1


def test_changed_image_recomputes_only_its_shard(tmp_path, tiny_encoder_file, small_manifest):
    import shutil

    from fairfoundry.datasets import nih_images

    src = small_manifest(nih_images(), 16)
    frame = pd.read_csv(src, dtype={"sample_id": str})
    local = tmp_path / "imgs"
    local.mkdir()
    for p in frame["path"]:
        shutil.copy(p, local)
    frame["path"] = ["imgs/" + p.split("/")[-1] for p in frame["path"]]  # relative to the manifest
    man = tmp_path / "m.csv"
    frame.to_csv(man, index=False)
    kw = {"shard_size": 8, "cache_dir": tmp_path / "cache", "overwrite": True}
    extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "e", **kw)
    img = local / frame["path"][12].split("/")[-1]
    shutil.copy(local / frame["path"][0].split("/")[-1], img)  # replace image 12 by image 0
    res = extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "e", **kw)
    assert (res.shards_computed, res.shards_reused) == (1, 1)
    arr = read_embeddings(tmp_path / "e")[1]
    np.testing.assert_allclose(arr[12], arr[0], atol=1e-6)


def test_unreadable_images_strict_lists_them_skip_leaves_them_out(tmp_path, tiny_encoder_file,
                                                                  small_manifest):
    from fairfoundry.datasets import nih_images

    man = small_manifest(nih_images(), 10)
    frame = pd.read_csv(man, dtype={"sample_id": str})
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    bad2 = tmp_path / "empty.jpg"
    bad2.write_bytes(b"")
    frame.loc[3, "path"] = str(bad)
    frame.loc[9, "path"] = str(bad2)  # another shard
    frame.to_csv(man, index=False)
    kw = {"cache_dir": tmp_path / "cache", "shard_size": 4}
    # strict: every unreadable image is listed (not only the first shard's), nothing written
    with pytest.raises(FairfoundryError, match="2 image\\(s\\) could not be read: .*broken.png.*empty.jpg"):
        extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "strict", **kw)
    assert not (tmp_path / "strict").exists() or not any((tmp_path / "strict").iterdir())
    with pytest.raises(FairfoundryError, match="2 image\\(s\\) could not be read"):  # from the cache too
        extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "strict", **kw)
    frame.loc[9, "path"] = frame["path"][8]
    frame.loc[9, "sample_id"] = "copy-of-8"
    frame.to_csv(man, index=False)
    res = extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "skip", on_error="skip", **kw)
    assert res.n == 9 and res.skipped == [frame["sample_id"][3]]
    ids, arr, meta = read_embeddings(tmp_path / "skip")
    assert frame["sample_id"][3] not in set(ids) and np.isfinite(arr).all()
    skipped = pd.read_csv(tmp_path / "skip" / "skipped.csv", dtype=str)
    assert skipped["path"].tolist() == [str(bad)]
    # a missing file is reported before any work, with its manifest path
    frame.loc[5, "path"] = "does/not/exist.png"
    frame.to_csv(man, index=False)
    with pytest.raises(FairfoundryError, match="1 image file\\(s\\) of manifest .* not found: does/not/exist.png"):
        extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "missing", **kw)
    assert not (tmp_path / "missing").exists()


def test_existing_outputs_need_overwrite_and_bad_manifests_fail_clearly(tmp_path, tiny_encoder_file,
                                                                        small_manifest):
    from fairfoundry.datasets import nih_images

    man = small_manifest(nih_images(), 4)
    out = tmp_path / "out"
    out.mkdir()
    (out / "embeddings.npy").write_bytes(b"user file")
    with pytest.raises(FairfoundryError, match="already holds embeddings.npy"):
        extract_embeddings(man, str(tiny_encoder_file), out=out, cache_dir=tmp_path / "c")
    assert (out / "embeddings.npy").read_bytes() == b"user file"
    nopath = tmp_path / "nopath.csv"
    pd.DataFrame({"sample_id": ["a"], "file": ["x.png"]}).to_csv(nopath, index=False)
    with pytest.raises(FairfoundryError, match="lacks required column 'path'"):
        extract_embeddings(nopath, str(tiny_encoder_file), out=tmp_path / "o2")
    with pytest.raises(FairfoundryError, match="unknown executor"):
        extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "o3", executor="dask")


def test_corrupted_cache_shard_is_reported(tmp_path, tiny_encoder_file, small_manifest):
    from fairfoundry.datasets import nih_images

    man = small_manifest(nih_images(), 4)
    res = extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "a", cache_dir=tmp_path / "c")
    shard = next((tmp_path / "c" / res.cache_key).glob("*.npz"))
    with np.load(shard) as z:
        emb, ok = z["emb"], z["ok"]
    np.savez(shard, emb=emb, ok=ok, ids=np.asarray(["x", "y", "z", "w"]))
    with pytest.raises(FairfoundryError, match="holds other sample_ids than the manifest rows"):
        extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "b", cache_dir=tmp_path / "c")
    # a truncated shard (e.g. a disk that filled up) is ignored and recomputed
    shard.write_bytes(b"PK\x03\x04 truncated")
    res = extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "b", cache_dir=tmp_path / "c")
    assert res.shards_computed == 1
    assert json.loads((tmp_path / "b" / "embeddings.json").read_text())["n"] == 4


def test_read_embeddings_rejects_incomplete_directories(tmp_path):
    with pytest.raises(FairfoundryError, match="not found"):
        read_embeddings(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    np.save(tmp_path / "half" / "embeddings.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(FairfoundryError, match="no embeddings.json"):
        read_embeddings(tmp_path / "half")


def test_dataloader_workers_give_identical_embeddings(tmp_path, tiny_encoder_file, small_manifest):
    from fairfoundry.datasets import nih_images

    man = small_manifest(nih_images(), 20)
    extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "w0", cache_dir=tmp_path / "c0",
                       num_workers=0, shard_size=8, batch_size=4)
    extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "w2", cache_dir=tmp_path / "c2",
                       num_workers=2, shard_size=8, batch_size=4)
    ids0, a, _ = read_embeddings(tmp_path / "w0")
    ids2, b, _ = read_embeddings(tmp_path / "w2")
    assert list(ids0) == list(ids2)
    np.testing.assert_array_equal(a, b)
