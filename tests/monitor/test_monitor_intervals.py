"""The analytic intervals (``intervals: analytic``, the default) cover at their stated rate:
a seeded null simulation (the fuller one is ``benchmarks/sim_monitor_intervals.py``), and they
agree with the bootstrap / label simulations they replace."""

from __future__ import annotations

import numpy as np
import pytest

from fairfoundry.monitor import CBPE, MonitorConfig, evaluate_windows
from fairfoundry.monitor._intervals import auc_interval, proportion_intervals


def test_delong_variance_matches_the_textbook_pairwise_form():
    # DeLong's variance from the O(n^2) pairwise kernel, as the oracle of the sorted version
    from scipy.special import expit

    rng = np.random.default_rng(3)
    y = (rng.uniform(size=300) < 0.4).astype(int)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounded: ties count half
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    var = psi.mean(1).var(ddof=1) / len(pos) + psi.mean(0).var(ddof=1) / len(neg)
    half = 1.959963984540054 * np.sqrt(var) / (auc * (1 - auc))
    lo, hi, why = auc_interval(y, s)
    assert why == ""
    assert lo == pytest.approx(expit(np.log(auc / (1 - auc)) - half), rel=1e-9)
    assert hi == pytest.approx(expit(np.log(auc / (1 - auc)) + half), rel=1e-9)


def test_clustered_proportion_interval_widens_with_patient_correlation_only():
    rng = np.random.default_rng(4)
    x = rng.uniform(size=600) < 0.3
    codes = np.zeros(600, np.int64)
    lo0, hi0 = proportion_intervals(x, codes, 1)
    lo1, hi1 = proportion_intervals(x, codes, 1, cluster=np.arange(600) // 3)
    assert hi1[0] - lo1[0] == pytest.approx(hi0[0] - lo0[0], rel=0.15)  # independent rows
    xc = np.repeat(rng.uniform(size=200) < 0.3, 3)  # each patient's 3 rows agree: deff ~ 3
    lo0, hi0 = proportion_intervals(xc, codes, 1)
    lo1, hi1 = proportion_intervals(xc, codes, 1, cluster=np.arange(600) // 3)
    assert (hi1[0] - lo1[0]) / (hi0[0] - lo0[0]) == pytest.approx(np.sqrt(3), rel=0.1)


def test_null_simulation_realised_intervals_cover_95_percent(load_benchmark):
    sim = load_benchmark("sim_monitor_intervals")
    cov = sim.realised_coverage(reps=200, patients=400, per_patient=3, seed=1)
    for m in ("prevalence", "tpr", "fpr", "auc"):
        assert 0.91 <= cov[f"{m}_clustered"] <= 0.99, (m, cov)


def test_null_simulation_cbpe_intervals_cover_95_percent_and_match_the_simulations(load_benchmark):
    out = load_benchmark("sim_monitor_intervals").cbpe_coverage(reps=200, n=2000, seed=2)
    for m, c in out["coverage"].items():
        assert 0.91 <= c <= 0.99, (m, out)
        assert 0.85 <= out["width_ratio"][m] <= 1.15, (m, out)


def test_cbpe_interval_option_is_validated():
    from fairfoundry._errors import FairfoundryError

    with pytest.raises(FairfoundryError, match="interval="):
        CBPE(interval="bayes")


def test_window_intervals_analytic_by_default_close_to_bootstrap():
    import pandas as pd
    from _monitor_sim import draw

    rng = np.random.default_rng(5)
    n = 6000
    y, s = draw(rng, n)
    frame = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)],
                          "patient_id": [f"p{i // 2}" for i in range(n)],
                          "time": np.arange(n, dtype=float), "model_version": None,
                          "grp": rng.choice(["A", "B"], n), "score_E": s})
    labels = pd.DataFrame({"sample_id": frame["sample_id"], "label": "E", "y": y,
                           "time": frame["time"] + 1})
    kw = dict(labels_names=["E"], attributes=["grp"])
    assert MonitorConfig().intervals == "analytic"
    a = evaluate_windows(frame, labels, config=MonitorConfig.from_dict(
        {"windows": {"size": 3000}}), **kw)
    b = evaluate_windows(frame, labels, config=MonitorConfig.from_dict(
        {"windows": {"size": 3000}, "intervals": "bootstrap", "bootstrap": 300,
         "simulations": 300}), **kw)
    key = ["window", "attribute", "group", "metric"]
    both = a.merge(b, on=key, suffixes=("_a", "_b"))
    sel = both[both["metric"].isin(["auc", "tpr", "fpr", "ppv", "est_auc", "est_tpr"])]
    assert len(sel) == 2 * 3 * 6
    ratio = (sel["ci_high_a"] - sel["ci_low_a"]) / (sel["ci_high_b"] - sel["ci_low_b"])
    assert ratio.between(0.7, 1.4).all(), sel.assign(ratio=ratio)
    ece = a[(a["metric"] == "ece") & (a["kind"] == "realised")]
    assert ece["ci_low"].isna().all() and ece["reason"].str.contains("no analytic").all()
    none = evaluate_windows(frame, labels, config=MonitorConfig.from_dict(
        {"windows": {"size": 3000}, "intervals": "none"}), **kw)
    assert none.loc[none["metric"].isin(["auc", "est_auc"]), "ci_low"].isna().all()
