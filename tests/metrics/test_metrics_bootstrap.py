"""Bootstrap CIs, clustered resampling, BCa and permutation p-values."""

from __future__ import annotations

import numpy as np
import pytest
from _metrics_oracle import group_metrics, make_data

import fairfoundry.metrics as fm

NAMES = ["a", "b", "c"]


def _run(y, s, g, **kw):
    kw.setdefault("group_names", NAMES)
    return fm.evaluate_groups(y, s, threshold=0.5, groups=g, **kw)


def _clustered(seed, n_patients=150, per=6, effect=0.0):
    """Several images per patient sharing a patient effect on label and score."""
    rng = np.random.default_rng(seed)
    pid = np.repeat(np.arange(n_patients), per)
    grp = rng.integers(0, 3, n_patients)[pid]
    u = rng.normal(0, 1.2, n_patients)[pid]
    y = (rng.random(len(pid)) < 1 / (1 + np.exp(-(u - 0.5)))).astype(int)
    s = 1 / (1 + np.exp(-(0.8 * u + 0.6 * y - 0.3 + effect * (grp == 2)
                          + rng.normal(0, 0.3, len(pid)))))
    return y, s, grp, pid


def test_same_seed_same_cis_and_other_seed_other_cis():
    y, s, g = make_data(0, 600, 3)
    a = _run(y, s, g, n_bootstrap=40, n_permutations=20, seed=7)
    a2 = _run(y, s, g, n_bootstrap=40, n_permutations=20, seed=7)
    # other chunking and threads: the same replicates (only float summation order differs)
    b = _run(y, s, g, n_bootstrap=40, n_permutations=20, seed=7, n_jobs=2, chunk_elements=1000)
    c = _run(y, s, g, n_bootstrap=40, seed=8)
    for col in ("ci_low", "ci_high"):
        np.testing.assert_array_equal(a.per_group[col], a2.per_group[col])
        np.testing.assert_array_equal(a.summary[col], a2.summary[col])
        np.testing.assert_allclose(a.per_group[col], b.per_group[col], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a.summary[col], b.summary[col], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(a.summary["p_value"], a2.summary["p_value"])
    np.testing.assert_array_equal(a.summary["p_value"], b.summary["p_value"])
    assert not np.allclose(a.per_group["ci_low"], c.per_group["ci_low"], equal_nan=True)
    assert a.config["seed"] == 7 and a.config["n_bootstrap"] == 40
    # every CI brackets... at least the bulk of its estimates
    pg = a.per_group.dropna(subset=["ci_low"])
    inside = (pg["ci_low"] <= pg["estimate"] + 1e-12) & (pg["estimate"] <= pg["ci_high"] + 1e-12)
    assert inside.mean() > 0.95


@pytest.mark.parametrize("clustered", [False, True])
def test_weights_equal_explicit_resampled_copies(clustered):
    """The slow obvious bootstrap (copy the resampled rows, recompute with scikit-learn) is
    the oracle for the weighted one, replicate by replicate."""
    if clustered:
        y, s, g, pid = _clustered(1, n_patients=60, per=5)
    else:
        y, s, g = make_data(1, 300, 3)
        pid = None
    res = _run(y, s, g, n_bootstrap=4, cluster=pid, seed=3, calibration_bootstrap="newton",
               ece_strategy="quantile", ece_bins=5)
    for b in range(4):
        rows = res.replicate_rows(b)
        assert len(rows) == len(y) if not clustered else len(rows) > 0
        yb, sb, gb = y[rows], s[rows], g[rows]
        for k, name in enumerate([*NAMES, "overall"]):
            mask = (gb == k) if name != "overall" else np.ones(len(yb), bool)
            want = group_metrics(yb[mask], sb[mask], 0.5, ece_bins=5, ece_strategy="quantile")
            for m, v in want.items():
                got = res.replicates[m][b, k]
                assert got == pytest.approx(v, abs=1e-9, nan_ok=True), (b, name, m)
        # summaries of a replicate are the summaries of its per-group values
        auc = res.replicates["auc"][b, :3]
        assert res.replicates["auc_gap"][b] == pytest.approx(np.nanmax(auc) - np.nanmin(auc))


def test_stratified_bootstrap_keeps_group_sizes():
    y, s, g = make_data(2, 500, 3)
    res = _run(y, s, g, n_bootstrap=10)
    for b in range(10):
        rows = res.replicate_rows(b)
        np.testing.assert_array_equal(np.bincount(g[rows], minlength=3), np.bincount(g))
    n = res.per_group.query("metric == 'n' and group != 'overall'")
    assert (n["ci_low"] == n["estimate"]).all() and (n["ci_high"] == n["estimate"]).all()


def test_clustered_bootstrap_is_wider_than_row_bootstrap_on_clustered_data():
    y, s, g, pid = _clustered(4, n_patients=200, per=8)
    row = _run(y, s, g, n_bootstrap=150, seed=1, metrics=["auc", "tpr", "prevalence"])
    clu = _run(y, s, g, n_bootstrap=150, seed=1, metrics=["auc", "tpr", "prevalence"],
               cluster=pid)
    assert clu.config["cluster_stratified"] is True

    def width(r, metric):
        x = r.per_group.query("metric == @metric and group == 'overall'")
        return float((x["ci_high"] - x["ci_low"]).iloc[0])

    for metric in ("prevalence", "tpr"):
        assert width(clu, metric) > 1.3 * width(row, metric), metric
    assert width(clu, "auc") > width(row, "auc")
    # whole patients are drawn: every replicate row set is a union of complete patients
    rows = clu.replicate_rows(0)
    counts = np.bincount(pid[rows], minlength=200)
    assert np.all(counts % 8 == 0)


def test_fair_model_gap_cis_cover_zero_and_gaps_are_not_significant():
    rng = np.random.default_rng(5)
    n = 3000
    g = rng.integers(0, 3, n)
    y = (rng.random(n) < 0.3).astype(int)
    s = np.clip(0.3 * y + 0.6 * rng.random(n), 0, 1)  # the same model for every group
    metrics = ["auc", "tpr", "fpr", "accuracy", "ece", "selection_rate", "ppv"]
    res = _run(y, s, g, n_bootstrap=300, n_permutations=200, seed=2, metrics=metrics)
    sm = res.summary.set_index("metric")
    for m in ("auc", "tpr", "fpr", "accuracy", "selection_rate", "ppv"):
        gap = sm.loc[f"{m}_gap"]
        assert gap["ci_low"] == 0.0 and gap["ci_high"] >= gap["estimate"] > 0, m
        assert gap["p_value"] > 0.05, m
    for name in ("equalized_odds_difference", "demographic_parity_difference",
                 "equal_opportunity_difference", "predictive_parity_difference"):
        assert sm.loc[name, "ci_low"] == 0.0 and sm.loc[name, "p_value"] > 0.05, name
    assert sm.loc["equalized_odds_score", "ci_high"] == 1.0
    # equalized odds combines two gaps, so each is taken at 1 - alpha/2 (both hold together):
    # its interval contains the combination of the two 95% gap intervals
    eo, tg, fg = (sm.loc[k] for k in ("equalized_odds_difference", "tpr_gap", "fpr_gap"))
    assert eo["ci_high"] >= max(tg["ci_high"], fg["ci_high"])
    assert eo["ci_low"] <= max(tg["ci_low"], fg["ci_low"])
    alpha2 = fm.pairwise_gap_interval(res.replicates["tpr"][:, :3],
                                      res.per_group.query("metric == 'tpr' and group != 'overall'")
                                      ["estimate"].to_numpy(), confidence=0.975)
    assert eo["ci_high"] >= alpha2[1]
    # the naive percentile interval of the max - min replicates never reaches 0
    naive = _run(y, s, g, n_bootstrap=300, seed=2, metrics=metrics, gap_ci="percentile")
    assert (naive.summary.set_index("metric").loc[[f"{m}_gap" for m in metrics], "ci_low"]
            > 0).all()


def test_real_gap_ci_excludes_zero_and_contains_the_estimate():
    rng = np.random.default_rng(12)
    n = 3000
    g = rng.integers(0, 4, n)
    y = (rng.random(n) < 0.4).astype(int)
    s = np.clip(0.35 * y + 0.5 * rng.random(n) - 0.15 * (g == 3) * y, 0, 1)
    res = _run(y, s, g, group_names=["a", "b", "c", "d"], n_bootstrap=300, seed=1,
               metrics=["tpr", "fnr"])
    row = res.summary.set_index("metric").loc["tpr_gap"]
    assert 0 < row["ci_low"] <= row["estimate"] <= row["ci_high"]
    tpr = res.replicates["tpr"][:, :4]
    d = tpr[:, 0] - tpr[:, 3]
    assert row["ci_low"] <= np.quantile(d, 0.5) <= row["ci_high"]


def test_permutation_p_value_small_for_a_real_gap():
    rng = np.random.default_rng(6)
    n = 1500
    g = rng.integers(0, 3, n)
    y = (rng.random(n) < 0.4).astype(int)
    s = np.clip(0.35 * y + 0.5 * rng.random(n) - 0.15 * (g == 2) * y, 0, 1)  # c under-detected
    res = _run(y, s, g, n_permutations=199, seed=0, metrics=["tpr", "fnr", "auc"])
    sm = res.summary.set_index("metric")
    assert sm.loc["tpr_gap", "p_value"] == pytest.approx(1 / 200)
    assert sm.loc["equal_opportunity_difference", "p_value"] <= 0.01
    assert sm.loc["tpr_worst_group", "detail"] == "c"
    assert len(res.null["tpr_gap"]) == 199


def test_permutation_p_values_are_roughly_uniform_without_a_gap():
    ps = []
    for seed in range(24):
        rng = np.random.default_rng(100 + seed)
        n = 300
        g = rng.integers(0, 3, n)
        y = (rng.random(n) < 0.4).astype(int)
        s = np.clip(0.3 * y + 0.6 * rng.random(n), 0, 1)
        res = _run(y, s, g, n_permutations=49, seed=seed, metrics=["auc"])
        ps.append(res.summary.set_index("metric").loc["auc_gap", "p_value"])
    ps = np.array(ps)
    assert 0.3 < ps.mean() < 0.7
    assert np.mean(ps < 0.1) <= 0.25


def test_bca_interval_is_defined_brackets_the_estimate_and_differs_from_percentile():
    y, s, g = make_data(8, 800, 3)
    pct = _run(y, s, g, n_bootstrap=300, seed=4, metrics=["auc", "ppv", "ece"])
    bca = _run(y, s, g, n_bootstrap=300, seed=4, metrics=["auc", "ppv", "ece"], ci_method="bca",
               bca_blocks=40)
    for r in (pct, bca):
        pg = r.per_group
        assert ((pg["ci_low"] <= pg["estimate"]) & (pg["estimate"] <= pg["ci_high"])).all()
    assert not np.allclose(pct.per_group["ci_low"], bca.per_group["ci_low"])
    # same replicates underneath: identical point estimates
    np.testing.assert_array_equal(pct.per_group["estimate"], bca.per_group["estimate"])
    assert bca.config["ci_method"] == "bca"


def test_progress_reports_every_replicate_and_one_step_tracks_newton():
    y, s, g = make_data(9, 4000, 3, ties=False)
    seen = []
    fast = _run(y, s, g, n_bootstrap=60, n_permutations=30, seed=1, progress=seen.append,
                metrics=["calibration_slope", "calibration_intercept"],
                calibration_bootstrap="one_step", chunk_elements=40_000)
    assert sum(seen) == 90 and len(seen) > 2
    exact = _run(y, s, g, n_bootstrap=60, seed=1, calibration_bootstrap="newton",
                 metrics=["calibration_slope", "calibration_intercept"])
    a = fast.per_group.set_index(["group", "metric"])
    b = exact.per_group.set_index(["group", "metric"])
    # the approximation is only in the replicates: point estimates are the same exact fits
    np.testing.assert_array_equal(a["estimate"].to_numpy(), b["estimate"].to_numpy())
    width = b["ci_high"] - b["ci_low"]
    assert (np.abs(a["ci_low"] - b["ci_low"]) < 0.1 * width).all()
    assert (np.abs(a["ci_high"] - b["ci_high"]) < 0.1 * width).all()
    assert fast.config["calibration_bootstrap"] == "one_step"


def test_interval_helpers():
    reps = np.arange(101, dtype=float)[:, None]
    lo, hi = fm.percentile_interval(reps, confidence=0.9)
    assert lo[0] == pytest.approx(5) and hi[0] == pytest.approx(95)
    assert fm.permutation_pvalue(3.0, np.array([1.0, 2.0, 4.0]), extreme="high") == 0.5
    assert fm.permutation_pvalue(0.2, np.array([0.5, 0.1, 0.9]), extreme="low") == 0.5
    # pairwise gap interval: two groups whose difference straddles 0 -> [0, max |bound|]
    rng = np.random.default_rng(1)
    reps = np.column_stack([rng.normal(0.80, 0.01, 2000), rng.normal(0.81, 0.01, 2000)])
    lo, hi = fm.pairwise_gap_interval(reps, np.array([0.80, 0.81]), confidence=0.95)
    d = reps[:, 0] - reps[:, 1]
    assert lo == 0.0
    assert hi == pytest.approx(max(abs(np.quantile(d, 0.025)), abs(np.quantile(d, 0.975))))
    lo, hi = fm.pairwise_gap_interval(reps + [0.0, 0.1], np.array([0.80, 0.91]))
    assert 0.05 < lo < 0.11 < hi < 0.15
    assert np.isnan(fm.pairwise_gap_interval(reps, np.array([0.8, np.nan]))[0])
    # BCa on a symmetric, unbiased sample reduces to (nearly) the percentile interval
    rng = np.random.default_rng(0)
    r = rng.normal(size=4000)
    jack = rng.normal(size=50)
    lo, hi = fm.bca_interval(r, 0.0, jack - jack.mean(), confidence=0.95)
    assert lo == pytest.approx(np.quantile(r, 0.025), abs=0.1)
    assert hi == pytest.approx(np.quantile(r, 0.975), abs=0.1)
