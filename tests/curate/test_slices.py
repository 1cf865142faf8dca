"""Slice discovery recovers a planted underperforming slice (flipped-label shortcut)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairfoundry.curate import wilson_interval


def _planted(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (8, 16))
    blob = rng.integers(0, 8, n)
    X = centres[blob] + rng.normal(0, 1, (n, 16))
    logit = X @ rng.normal(size=16) / 4
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < p).astype(int)
    planted = (blob == 3) & (rng.random(n) < 0.8)  # the shortcut: labels flipped in part of one region
    y[planted] = 1 - y[planted]
    return X.astype(np.float32), y, p, planted


def test_curate_slices_recovers_planted_slice(cli, tmp_path):
    X, y, p, planted = _planted()
    m = pd.DataFrame({"sample_id": [f"s{i}" for i in range(len(y))], "y_true": y, "y_score": p,
                      "split": "test"})
    m.to_parquet(tmp_path / "preds.parquet")
    np.save(tmp_path / "e.npy", X)
    r = cli("curate", "slices", "--manifest", tmp_path / "preds.parquet", "--embeddings", tmp_path / "e.npy",
            "--split", "test", "--slices", "8", "--out", tmp_path / "s")
    assert r.code == 0, r
    sl = pd.read_csv(tmp_path / "s" / "slices.csv")
    assert list(sl["rank"]) == list(range(1, len(sl) + 1)) and sl["error_rate"].is_monotonic_decreasing
    out = pd.read_csv(tmp_path / "s" / "manifest.csv")
    top3 = set(sl["slice"].head(3))
    assert out.loc[planted, "slice"].isin(top3).mean() >= 0.8
    assert (sl["ci_low"] <= sl["error_rate"]).all() and (sl["error_rate"] <= sl["ci_high"]).all()
    assert sl["examples"].str.split().str.len().max() == 8
    r = cli("curate", "slices", "--manifest", tmp_path / "preds.parquet", "--embeddings", tmp_path / "e.npy",
            "--split", "val", "--out", tmp_path / "s2")
    assert r.code == 2 and "no row has split 'val'" in r.err and not (tmp_path / "s2").exists()


def test_wilson_matches_statsmodels_formula():
    lo, hi = wilson_interval(0, 20)
    assert lo == 0 and 0.15 < hi < 0.17  # 0.161 (Wilson 1927)
    assert np.isnan(wilson_interval(0, 0)[0])
