"""Proxy groups: separate column, agreement with CIs, null simulation of the CI, usable as --sensitive."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairfoundry.curate import proxy_agreement, proxy_groups


def _blobs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    X = rng.normal(size=(n, 8)) + np.where(sex == "female", 2.5, -2.5)[:, None] * np.eye(8)[0]
    return X.astype(np.float32), sex, rng.choice(["<40", "40-59", "60+"], n)


def test_proxies_recover_a_planted_attribute_not_an_unrelated_one():
    X, sex, age = _blobs(200)
    for method in ("kmeans", "tsne-dbscan"):
        p = proxy_groups(X, method=method, n_clusters=2, seed=0)
        r_sex = proxy_agreement(p.labels, sex, n_boot=30, n_perm=10)
        r_age = proxy_agreement(p.labels, age, n_boot=30, n_perm=10)
        assert r_sex["ami_ci_low"] > 0.5, method
        assert r_age["ami_ci_low"] <= 0 <= r_age["ami_ci_high"] + 0.02, method
        assert r_sex["ami_ci_low"] <= r_sex["ami"] <= r_sex["ami_ci_high"]


def test_null_simulation_ci_covers_zero():
    # an attribute unrelated to the clusters: the 95% CI of AMI should cover 0 in about 95% of data sets
    rng = np.random.default_rng(0)
    cover = []
    for rep in range(50):
        proxy = rng.choice(["c0", "c1", "c2"], 100)
        attr = rng.choice(["a", "b"], 100)
        r = proxy_agreement(proxy, attr, n_boot=60, n_perm=0, seed=rep)
        cover.append(r["ami_ci_low"] <= 0 <= r["ami_ci_high"])
    assert np.mean(cover) >= 0.86  # 50 data sets; nominal 0.95


def test_curate_proxies_cli_and_use_as_sensitive(cli, tmp_path):
    X, sex, age = _blobs()
    rng = np.random.default_rng(1)
    m = pd.DataFrame({"sample_id": [f"s{i}" for i in range(len(X))], "sex": sex, "age": rng.uniform(20, 90, len(X)),
                      "y": rng.integers(0, 2, len(X)), "p": rng.random(len(X))})
    m.to_csv(tmp_path / "m.csv", index=False)
    np.save(tmp_path / "e.npy", X)
    r = cli("curate", "proxies", "--manifest", tmp_path / "m.csv", "--embeddings", tmp_path / "e.npy", "--k", "2",
            "--compare", "sex", "--compare", "age", "--bins", "age=40,60,80", "--bootstrap", "20", "--out", tmp_path / "p")
    assert r.code == 0, r
    out = pd.read_csv(tmp_path / "p" / "manifest.csv")
    assert set(out["proxy_cluster"]) == {"c0", "c1"} and (out["sex"] == m["sex"]).all()  # real column untouched
    ag = pd.read_csv(tmp_path / "p" / "agreement.csv").set_index("attribute")
    assert ag.loc["sex", "ami"] > 0.5 and ag.index[1].startswith("age (bins")
    r = cli("evaluate", tmp_path / "p" / "manifest.csv", "--label", "y", "--score", "p", "--sensitive", "proxy_cluster",
            "--threshold", "0.5", "--out", tmp_path / "ev", "--bootstrap", "20")
    assert r.code == 0, r
    r = cli("curate", "proxies", "--manifest", tmp_path / "p" / "manifest.csv", "--embeddings", tmp_path / "e.npy",
            "--out", tmp_path / "p2")
    assert r.code == 2 and "already has a 'proxy_cluster' column" in r.err and not (tmp_path / "p2").exists()
    r = cli("curate", "proxies", "--manifest", tmp_path / "m.csv", "--embeddings", tmp_path / "e.npy", "--k", "9999",
            "--out", tmp_path / "p3")
    assert r.code == 2 and "k=9999 is larger than the 400 rows" in r.err and not (tmp_path / "p3").exists()


def test_ami_ari_match_scikit_learn():
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    from fairfoundry.curate import adjusted_mutual_info, adjusted_rand

    rng = np.random.default_rng(0)
    for n, ka, kb in [(100, 3, 2), (300, 2, 4), (50, 5, 5), (20, 1, 3), (10, 1, 1)]:
        a = rng.integers(0, ka, n)
        b = np.where(rng.random(n) < 0.6, a % kb, rng.integers(0, kb, n))
        assert abs(adjusted_mutual_info(a, b) - adjusted_mutual_info_score(a, b)) < 1e-9
        assert abs(adjusted_rand(a, b) - adjusted_rand_score(a, b)) < 1e-9


def test_embed_directory_missing_a_row_is_named(cli, tmp_path):
    import json

    X, sex, _ = _blobs(50)
    ids = [f"s{i}" for i in range(50)]
    pd.DataFrame({"sample_id": ids, "sex": sex}).to_csv(tmp_path / "m.csv", index=False)
    emb = tmp_path / "emb"
    emb.mkdir()
    np.save(emb / "embeddings.npy", X[:49])  # an embed run of another manifest: s49 is missing
    (emb / "sample_ids.txt").write_text("\n".join(ids[:49]) + "\n")
    (emb / "embeddings.json").write_text(json.dumps({"n": 49}))
    r = cli("curate", "proxies", "--manifest", tmp_path / "m.csv", "--embeddings", emb, "--out", tmp_path / "p")
    assert r.code == 2 and "not aligned" in r.err and "row 49" in r.err and "'s49'" in r.err
    assert not (tmp_path / "p").exists()
