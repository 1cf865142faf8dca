"""Balanced curation: hierarchical k-means with resampling evens out very unequal regions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _curate_data import rings

from fairfoundry.curate import HierarchicalKMeans, balanced_allocation


def test_rings_curated_sample_is_balanced():
    X, ring = rings()
    hk = HierarchicalKMeans(n_clusters=(100, 20, 5), resampling_steps=(3, 1, 0), seed=0).fit(X)
    idx = hk.balanced_sample(1000, seed=0)
    counts = np.bincount(ring[idx], minlength=5)
    assert len(idx) == 1000 and len(set(idx)) == 1000
    assert counts.max() / counts.min() <= 3
    # proportional (random) sampling: 20000 / 200 = a ratio of 100
    prop = np.bincount(ring, minlength=5)
    assert prop.max() / prop.min() == 100


def test_resampling_spreads_centroids():
    # k-means centroids crowd where the density is high; resampling flattens them (Vo et al.)
    X = np.random.default_rng(0).normal(0, 1, (5000, 1)).astype(np.float32)
    plain = HierarchicalKMeans(n_clusters=(30,), resampling_steps=0, seed=0).fit(X).centroids_[0]
    resampled = HierarchicalKMeans(n_clusters=(30,), resampling_steps=10, resample_size=20, seed=0).fit(X).centroids_[0]
    assert resampled.std() > 1.2 * plain.std()


def test_balance_jointly_with_attribute():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 4)).astype(np.float32)
    g = (rng.random(3000) < 0.1).astype(int)  # 10 % minority
    hk = HierarchicalKMeans(n_clusters=(20, 4), seed=0).fit(X)
    share = g[hk.balanced_sample(400, seed=0, groups=g)].mean()
    assert 0.35 <= share <= 0.65  # from 10 % to about half
    assert g[hk.balanced_sample(400, seed=0)].mean() < 0.2


def test_allocation_water_filling_and_seeded():
    a = balanced_allocation([5, 100, 100], 105, rng=np.random.default_rng(0))
    assert a.tolist() == [5, 50, 50]
    h1 = HierarchicalKMeans(n_clusters=(10, 3), seed=3).fit(rings((300, 50, 80))[0])
    h2 = HierarchicalKMeans(n_clusters=(10, 3), seed=3).fit(rings((300, 50, 80))[0])
    assert np.array_equal(h1.balanced_sample(60, seed=1), h2.balanced_sample(60, seed=1))


def test_faiss_backend_matches_torch_quality():
    pytest.importorskip("faiss")
    from fairfoundry.curate import kmeans

    X, _ = rings((2000, 500, 500))

    def inertia(C, lab):
        return float(((X - C[lab]) ** 2).sum())

    torch_fit = inertia(*kmeans(X, 20, seed=0))
    faiss_fit = inertia(*kmeans(X, 20, seed=0, backend="faiss"))
    assert faiss_fit <= 1.05 * torch_fit and torch_fit <= 1.05 * faiss_fit


def test_curate_balance_cli(cli, tmp_path):
    X, ring = rings((2000, 60, 300, 150, 800))
    m = pd.DataFrame({"sample_id": [f"s{i}" for i in range(len(X))], "ring": ring,
                      "sex": np.where(np.arange(len(X)) % 3 == 0, "female", "male")})
    m.to_csv(tmp_path / "m.csv", index=False)
    np.save(tmp_path / "e.npy", X)
    r = cli("curate", "balance", "--manifest", tmp_path / "m.csv", "--embeddings", tmp_path / "e.npy",
            "--target", "250", "--k", "100,20,5", "--resampling-steps", "3,1,0", "--sensitive", "ring", "--out", tmp_path / "b")
    assert r.code == 0, r
    cur = pd.read_csv(tmp_path / "b" / "manifest.csv")
    c = cur["ring"].value_counts()
    assert len(cur) == 250 and c.max() / c.min() <= 3 and {"cluster_l1", "cluster_l3"} <= set(cur.columns)
    dec = pd.read_csv(tmp_path / "b" / "decisions.csv")
    assert (dec["decision"] == "keep").sum() == 250 and dec.loc[dec["decision"] == "drop", "reason"].str.contains(
        "quota").all()
    cl = pd.read_csv(tmp_path / "b" / "clusters.csv")
    assert cl.groupby("level")["n_before"].sum().eq(len(X)).all()
    html = (tmp_path / "b" / "report.html").read_text()
    assert "Cluster sizes before / after" in html and "Group composition" in html


@pytest.mark.parametrize("args, words", [(["--target", "99999"], "target=99999 is larger than the 3310 rows"),
                                         (["--target", "10", "--k", "5000"], "k=5000 at level 1")])
def test_curate_balance_bad_input(cli, tmp_path, args, words):
    X, _ = rings((2000, 60, 300, 150, 800))
    pd.DataFrame({"sample_id": [f"s{i}" for i in range(len(X))]}).to_csv(tmp_path / "m.csv", index=False)
    np.save(tmp_path / "e.npy", X)
    r = cli("curate", "balance", "--manifest", tmp_path / "m.csv", "--embeddings", tmp_path / "e.npy", *args,
            "--out", tmp_path / "b")
    assert r.code == 2 and words in r.err and not (tmp_path / "b").exists()
