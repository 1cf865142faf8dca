"""The fit comparison: paired differences to ERM, the verdict (null simulations), Pareto, chance."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairfoundry.mitigate._compare import MIN_EVENTS, compare_runs, paired_replicates


def _seed_table(rng, methods, seeds, *, shift=None):
    """Per-run rows: a seed effect shared by every method + independent run noise."""
    shift = shift or {}
    rows = []
    for s in range(seeds):
        auc0, gap0 = rng.normal(0.75, 0.03), rng.normal(0.10, 0.03)
        for m in methods:
            auc = auc0 + rng.normal(0, 0.01) + shift.get(m, (0, 0))[0]
            gap = gap0 + rng.normal(0, 0.01) + shift.get(m, (0, 0))[1]
            rows.append({"method": m, "seed": s, "auc": auc, "auc_ci_low": auc - 0.05, "auc_ci_high": auc + 0.05,
                         "sex:equalized_odds_difference": gap, "sex:auc_gap": gap / 2})
    return pd.DataFrame(rows)


def test_seed_verdict_false_positive_rate_under_the_null():
    # null simulation (benchmarks/sim_compare_null.py runs 400): two methods equal to ERM, 5 seeds,
    # 3 metrics -> K = 6 comparisons per table
    rng = np.random.default_rng(0)
    said, per_comparison = 0, []
    for _ in range(200):
        c = compare_runs(_seed_table(rng, ["erm", "a", "b"], 5), sensitive=["sex"],
                         events={"auc": 50, "sex:equalized_odds_difference": 50, "sex:auc_gap": 50})
        said += (c.differences["status"] == "differs").any()
        assert c.verdict[0].startswith("No method differs from ERM at 95 %") == (
            not (c.differences["status"] == "differs").any())
        d = c.differences
        per_comparison += list((d["ci_low"] > 0) | (d["ci_high"] < 0))
    assert said / 200 <= 0.075                     # family-wise: "differs" in <= ~5 % of null tables
    assert 0.03 <= np.mean(per_comparison) <= 0.07  # and each 95 % interval is calibrated


def test_seed_verdict_names_the_method_that_differs_and_pareto_needs_separation():
    rng = np.random.default_rng(1)
    t = _seed_table(rng, ["erm", "better", "same"], 5, shift={"better": (0.05, -0.05)})
    c = compare_runs(t, sensitive=["sex"], events={"auc": 50, "sex:equalized_odds_difference": 50,
                                                   "sex:auc_gap": 50})
    assert "better" in c.verdict[0] and "same" not in c.verdict[0].split("(")[0]
    assert "paired t over 5 seeds" in c.verdict[0]
    row = c.differences.set_index(["method", "metric"]).loc[("better", "auc")]
    assert row["status"] == "differs" and row["ci_low"] > 0
    m = c.means.set_index("method")
    assert m.loc["better", "sex:pareto"] and not m.loc["erm", "sex:pareto"]
    assert "better" in m.loc["erm", "sex:dominated_by"]
    # nothing separates: everyone is on the front, and the verdict says no method differs
    c0 = compare_runs(_seed_table(rng, ["erm", "a"], 5), sensitive=["sex"])
    if not (c0.differences["status"] == "differs").any():
        assert c0.means["sex:pareto"].all()


def test_too_few_events_are_never_a_finding():
    rng = np.random.default_rng(2)
    t = _seed_table(rng, ["erm", "better"], 5, shift={"better": (0.0, -0.08)})
    c = compare_runs(t, sensitive=["sex"], events={"auc": 80, "sex:equalized_odds_difference": 3,
                                                   "sex:auc_gap": 3})
    gap = c.differences.set_index("metric").loc["sex:equalized_odds_difference"]
    assert gap["status"] == "too few to judge" and f"< {MIN_EVENTS}" in gap["reason"]
    assert any(s.startswith("Too few to judge:") and "equalized-odds difference by sex" in s for s in c.verdict)
    assert c.verdict[0].startswith("No method differs")


def test_one_seed_without_replicates_is_not_estimable_and_chance_is_said():
    t = pd.DataFrame([{"method": "erm", "seed": 0, "auc": 0.52, "auc_ci_low": 0.45, "auc_ci_high": 0.6},
                      {"method": "x", "seed": 0, "auc": 0.8, "auc_ci_low": 0.75, "auc_ci_high": 0.85}])
    c = compare_runs(t, sensitive=[])
    assert (c.differences["status"] == "not estimable").all()
    assert c.verdict[0].startswith("No difference to ERM could be judged")
    assert c.chance == ["erm seed 0"]
    assert any(s.startswith("At chance (test AUC 95 % CI includes 0.5): erm seed 0") for s in c.verdict)


def _null_predictions(rng, n=300, methods=("erm", "a", "b")):
    y = rng.integers(0, 2, n)
    signal = 1.2 * y + rng.normal(0, 1, n)
    sex = rng.choice(["female", "male"], n)
    pid = np.arange(n) // 2
    out = {}
    for m in methods:  # exchangeable models: the same signal, independent noise
        s = 1 / (1 + np.exp(-(signal + rng.normal(0, 0.7, n))))
        out[m] = pd.DataFrame({"y_true": y, "y_score": s, "sex": sex, "patient_id": pid})
    return out


def _one_seed_comparison(preds, *, n_bootstrap, seed):
    est, reps, events = paired_replicates(preds, thresholds={m: [0.5] for m in preds}, sensitive=["sex"],
                                          labels=["y"], n_bootstrap=n_bootstrap, seed=seed)
    table = pd.DataFrame([{"method": m, "seed": 0, "auc": est[m]["auc"], "auc_ci_low": 0.0, "auc_ci_high": 1.0,
                           **{c: v for c, v in est[m].items() if c != "auc"}} for m in preds])
    return compare_runs(table, sensitive=["sex"], replicates=reps, estimates=est, events=events)


def test_one_seed_paired_bootstrap_uses_the_same_resamples_and_is_calibrated_under_the_null():
    # null simulation (small; benchmarks/sim_compare_null.py runs 400): methods exchangeable with ERM
    rng = np.random.default_rng(3)
    said, per = 0, []
    runs = 25
    for d in range(runs):
        c = _one_seed_comparison(_null_predictions(rng, n=200, methods=("erm", "a", "b")), n_bootstrap=60, seed=d)
        dd = c.differences
        assert (dd["interval"] == "paired bootstrap over test samples").all()
        said += (dd["status"] == "differs").any()
        per += list((dd["ci_low"] > 0) | (dd["ci_high"] < 0))
    assert said <= 4                      # ~5 % of 25 expected; P(Bin(25, .05) > 4) < 0.01
    assert np.mean(per) <= 0.12
    # pairing: the difference interval is narrower than the two runs' own bootstrap spread
    preds = _null_predictions(np.random.default_rng(4), methods=("erm", "erm_copy"))
    preds["erm_copy"] = preds["erm"].copy()
    c = _one_seed_comparison(preds, n_bootstrap=50, seed=0)
    assert (c.differences["difference"] == 0).all() and (c.differences["ci_high"] == 0).all()
    assert c.verdict[0].startswith("No method differs from ERM at 95 %")


def test_one_seed_paired_bootstrap_finds_a_real_improvement():
    rng = np.random.default_rng(5)
    preds = _null_predictions(rng, n=600, methods=("erm",))
    y = preds["erm"]["y_true"].to_numpy()
    better = preds["erm"].copy()
    better["y_score"] = 1 / (1 + np.exp(-(2.5 * y + rng.normal(0, 1, len(y)))))
    preds["better"] = better
    c = _one_seed_comparison(preds, n_bootstrap=100, seed=0)
    assert c.verdict[0].startswith("better differs from ERM at 95 %")
    assert "test AUC +" in c.verdict[0] and "(better)" in c.verdict[0]


def test_too_few_resamples_are_not_estimable():
    preds = _null_predictions(np.random.default_rng(6), methods=("erm", "a"))
    c = _one_seed_comparison(preds, n_bootstrap=5, seed=0)
    assert (c.differences["status"] == "not estimable").all()
    assert c.differences["reason"].str.contains("fewer than 20 bootstrap resamples").all()
    assert c.verdict[0].startswith("No difference to ERM could be judged")
