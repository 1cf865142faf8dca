"""evaluate_group_means: the engine's replicates for per-sample values (Dice, hallucination flags)."""

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.metrics import evaluate_group_means, evaluate_groups


def test_same_replicates_as_the_engine_for_a_rate():
    # the share of y=0 rows called positive is the engine's FPR: same plan, same numbers
    rng = np.random.default_rng(1)
    n = 300
    g, s = rng.integers(0, 3, n), rng.random(n)
    o = np.lexsort((s, g))  # the engine's layout (group, then score) = ours
    g, s = g[o], s[o]
    names = ["a", "b", "c"]
    a = evaluate_groups(np.zeros(n), s, threshold=0.5, groups=g, group_names=names,
                        metrics=["n", "fpr"], n_bootstrap=200, seed=3)
    b = evaluate_group_means((s >= 0.5).astype(float), groups=g, group_names=names,
                             metric_names=["fpr"], n_bootstrap=200, seed=3)
    np.testing.assert_allclose(a.replicates["fpr"], b.replicates["fpr"])
    pa = a.per_group.query("metric == 'fpr'").reset_index(drop=True)
    for c in ("group", "estimate", "ci_low", "ci_high", "n"):
        assert pa[c].tolist() == pytest.approx(b.per_group[c].tolist()) if c != "group" else \
            pa[c].tolist() == b.per_group[c].tolist()
    ga = a.summary.set_index("metric").loc["fpr_gap", ["estimate", "ci_low", "ci_high"]]
    gb = b.summary.set_index("metric").loc["fpr_gap", ["estimate", "ci_low", "ci_high"]]
    np.testing.assert_allclose(ga.to_numpy(float), gb.to_numpy(float))


def test_means_match_pandas_and_nan_values_are_left_out():
    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({"g": rng.integers(0, 3, n), "v": rng.random(n), "w": rng.random(n)})
    df.loc[df.index % 7 == 0, "w"] = np.nan
    r = evaluate_group_means(df[["v", "w"]].to_numpy(), groups=df["g"].to_numpy(),
                             group_names=["x", "y", "z"], metric_names=["v", "w"])
    for m in ("v", "w"):
        got = r.per_group.query("metric == @m and group != 'overall'")
        want = df.groupby("g")[m].mean().to_numpy()
        np.testing.assert_allclose(got["estimate"], want)
        assert got["n"].tolist() == df.groupby("g")[m].count().tolist()
        assert r.estimate(m, "overall") == pytest.approx(df[m].mean())


def test_replicate_is_the_mean_over_its_explicit_resample_clustered_by_patient():
    rng = np.random.default_rng(2)
    n = 90
    g = rng.integers(0, 2, n)
    pid = np.where(g == 0, rng.integers(0, 20, n), 100 + rng.integers(0, 20, n))
    v = rng.random(n)
    r = evaluate_group_means(v, groups=g, group_names=["a", "b"], cluster=pid,
                             n_bootstrap=20, seed=5)
    assert r.config["clustered"] and r.config["cluster_stratified"]
    for b in (0, 7, 19):
        rows = r.replicate_rows(b)
        for k in (0, 1):
            sel = rows[g[rows] == k]
            assert r.replicates["value"][b, k] == pytest.approx(v[sel].mean())
        # whole patients: a drawn patient brings all its rows
        drawn = pd.Series(pid[rows]).value_counts()
        sizes = pd.Series(pid).value_counts()
        assert all(drawn[p] % sizes[p] == 0 for p in drawn.index)


def test_gap_test_null_error_rate_and_ci_coverage():
    # null simulation: equal rates in two groups -> the permutation test rejects ~5 %,
    # and the 95 % CI of each group's rate covers the truth ~95 %
    rng = np.random.default_rng(11)
    rejections, covered = 0, 0
    sims = 60
    for _ in range(sims):
        n = 200
        g = rng.integers(0, 2, n)
        v = (rng.random(n) < 0.2).astype(float)
        r = evaluate_group_means(v, groups=g, group_names=["a", "b"], n_bootstrap=100,
                                 n_permutations=49, seed=int(rng.integers(1 << 30)))
        rejections += r.summary.set_index("metric").loc["value_gap", "p_value"] <= 0.05
        row = r.per_group.query("group == 'a'").iloc[0]
        covered += row.ci_low <= 0.2 <= row.ci_high
    assert rejections / sims <= 0.13  # 5 % expected; binomial sd ~ 2.8 %
    assert covered / sims >= 0.85


def test_bad_input_and_empty_groups():
    with pytest.raises(FairfoundryError, match="integer codes"):
        evaluate_group_means([1.0, 2.0], groups=np.array([0.0, 1.0]), group_names=["a", "b"])
    with pytest.raises(FairfoundryError, match="infinite"):
        evaluate_group_means([1.0, np.inf], groups=np.array([0, 1]), group_names=["a", "b"])
    r = evaluate_group_means([1.0, 0.0], groups=np.array([0, 0]), group_names=["a", "b"])
    row = r.per_group.query("group == 'b'").iloc[0]
    assert np.isnan(row.estimate) and row.reason == "group is empty"
