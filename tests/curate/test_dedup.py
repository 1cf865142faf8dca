"""Duplicates: planted near-duplicates of real X-rays are found, distinct patients are not flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _found(pairs):
    return {tuple(sorted(p)) for p in zip(pairs["sample_id_a"], pairs["sample_id_b"], strict=True)}


def test_curate_dedup_finds_planted_near_duplicates(cli, planted, tmp_path):
    manifest, truth = planted
    r = cli("curate", "dedup", "--manifest", manifest, "--out", tmp_path / "d")
    assert r.code == 0, r
    pairs = pd.read_csv(tmp_path / "d" / "pairs.csv")
    found = _found(pairs)
    tp = len(found & truth)
    assert tp / len(found) >= 0.95 and tp / len(truth) >= 0.95  # precision and recall
    # no pair of two original images (300 distinct patients) is flagged
    originals = set(pd.read_csv(manifest).query("~sample_id.str.startswith('copy')", engine="python")["sample_id"])
    assert not any(a in originals and b in originals for a, b in found)
    dec = pd.read_csv(tmp_path / "d" / "decisions.csv")
    dropped = set(dec.loc[dec["decision"] == "drop", "sample_id"])
    assert {b for _, b in truth} == dropped  # the copy (later row) is dropped, the original kept
    kept = pd.read_csv(tmp_path / "d" / "manifest.csv")
    assert len(kept) == 300 and not kept["sample_id"].str.startswith("copy").any()
    leak = pd.read_csv(tmp_path / "d" / "leakage.csv")
    # copies with a new patient id, and copies of val/test originals placed in train, are leakage
    assert leak["cross_patient"].sum() == 6 and (leak["cross_split"] | leak["cross_patient"]).all()
    assert pairs["similarity"].between(0, 1.0001).all() and "hash_distance" in pairs
    html = (tmp_path / "d" / "report.html").read_text()
    assert "Leakage" in html and "data:image/png;base64" in html


def test_exact_duplicates_reuse_sha256(cli, planted, tmp_path):
    import shutil

    manifest, _ = planted
    m = pd.read_csv(manifest).head(20)
    m["path"] = [str(manifest.parent / p) if not p.startswith("/") else p for p in m["path"]]
    shutil.copy(m["path"].iloc[0], tmp_path / "twin.png")
    m.loc[len(m)] = {**m.iloc[0].to_dict(), "sample_id": "twin", "path": str(tmp_path / "twin.png")}
    m.to_csv(tmp_path / "m.csv", index=False)
    r = cli("curate", "dedup", "--manifest", tmp_path / "m.csv", "--out", tmp_path / "d", "--no-near")
    assert r.code == 0, r
    pairs = pd.read_csv(tmp_path / "d" / "pairs.csv")
    assert pairs[["kind", "sample_id_b"]].values.tolist() == [["exact", "twin"]]


def test_semantic_duplicates_keep_rule():
    from fairfoundry.curate import semantic_duplicates

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 32)).astype(np.float32)
    X = np.r_[X, X[:10] + rng.normal(0, 1e-3, (10, 32)).astype(np.float32)]
    pairs, dropped = semantic_duplicates(X, n_clusters=5, threshold=0.99, keep="first")
    assert {(int(a), int(b)) for a, b in pairs[["i", "j"]].values} == {(i, 200 + i) for i in range(10)}
    assert sorted(dropped) == list(range(200, 210))
    _, far = semantic_duplicates(X, n_clusters=5, threshold=0.99, keep="farthest")
    assert len(far) == 10 and all(min(i, j) % 200 == max(i, j) % 200 for i, (j, _) in far.items())


def test_dedup_bad_input_exit_2_nothing_written(cli, planted, tmp_path):
    manifest, _ = planted
    m = pd.read_csv(manifest)
    m.loc[5, "path"] = "images/missing.png"
    m.to_csv(tmp_path / "m.csv", index=False)
    r = cli("curate", "dedup", "--manifest", tmp_path / "m.csv", "--out", tmp_path / "o")
    assert r.code == 2 and "row 5" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "o").exists()
    np.save(tmp_path / "e.npy", np.zeros((3, 4), dtype=np.float32))
    r = cli("curate", "dedup", "--manifest", manifest, "--embeddings", tmp_path / "e.npy", "--no-near",
            "--no-exact", "--out", tmp_path / "o")
    assert r.code == 2 and "not aligned" in r.err and "3 rows" in r.err
    assert not (tmp_path / "o").exists()
