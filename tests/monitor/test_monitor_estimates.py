"""Label-free CBPE estimates track the realised per-group AUC under pure covariate shift;
alerts fire for the shifted group only; null windows stay quiet."""

from __future__ import annotations

import numpy as np
import pandas as pd
from _monitor_sim import draw, stream

from fairfoundry.monitor import (
    CBPE,
    EventStore,
    MonitorConfig,
    evaluate_store,
    evaluate_windows,
    expected_auc,
)


def test_expected_auc_equals_realised_auc_when_labels_are_certain():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    s = rng.uniform(size=300)
    y = (rng.uniform(size=300) < 0.4).astype(float)
    assert abs(expected_auc(s, y) - roc_auc_score(y, s)) < 1e-12  # p = y: the estimate is exact
    s[:50] = 0.5  # ties count half, as in the Mann-Whitney AUC
    assert abs(expected_auc(s, y) - roc_auc_score(y, s)) < 1e-12


def _frames(preds, labels):
    p = pd.DataFrame({"sample_id": [e["sample_id"] for e in preds],
                      "patient_id": [e["patient_id"] for e in preds],
                      "time": [e["time"] for e in preds],
                      "grp": [e["attributes"]["grp"] for e in preds],
                      "score_E": [e["scores"]["E"] for e in preds]})
    return p, pd.DataFrame(labels)


def test_cbpe_per_group_auc_under_pure_covariate_shift_n5000():
    # must-show: n = 5,000 per group and window, 20 windows; per group, the calibration is fitted
    # on that group's labelled reference (20,000 rows: isotonic calibration on much less is
    # optimistic, see the docs), as evaluate_windows does with calibrate_by_group
    from fairfoundry.metrics import roc_auc

    rng = np.random.default_rng(3)
    for g, (mu0, slope) in enumerate([(0.0, 1.0), (0.4, 0.8)]):  # two groups, different mixes
        yr, sr = draw(rng, 20_000, mu0, slope)
        est = CBPE(n_simulations=0).fit(yr, sr)
        err = []
        for _ in range(20):
            y, s = draw(rng, 5000, mu0 + rng.uniform(-0.6, 0.6), slope * rng.uniform(0.8, 1.3))
            err.append(est.estimate(s, threshold=0.5)["auc"] - roc_auc(y, s))
        err = np.array(err)
        assert abs(err.mean()) <= 0.01, (g, err)
        assert np.abs(err).max() <= 0.03, (g, err)


def test_evaluate_windows_reconciles_estimates_with_realised_per_group():
    preds, labels = stream(windows=8, size=4000, seed=3, covariate=True, reference=3)
    p, lab = _frames(preds, labels)
    cfg = MonitorConfig.from_dict({"windows": {"size": 4000}, "bootstrap": 0,
                                   "simulations": 0, "reference_windows": 3})
    res = evaluate_windows(p, lab, labels_names=["E"], attributes=["grp"], config=cfg)
    res = res[(res["attribute"] == "grp") & (res["window"] >= 3)]
    piv = res[res["metric"].isin(["auc", "est_auc"])].pivot_table(
        index=["window", "group"], columns="metric", values="estimate")
    assert len(piv) == 10
    assert (piv["est_auc"] - piv["auc"]).abs().max() <= 0.04  # 2,000 per group and window
    assert set(res.loc[res["metric"] == "est_auc", "reason"]) == {"calibrated on the group"}


def test_cbpe_interval_covers_realised_auc():
    rng = np.random.default_rng(5)
    yr, sr = draw(rng, 20_000)
    est = CBPE(n_simulations=200, seed=1).fit(yr, sr)
    hits = 0
    for _ in range(40):
        y, s = draw(rng, 2000, rng.uniform(-0.5, 0.5))
        lo, hi = est.estimate(s, threshold=0.5)["auc_ci"]
        from sklearn.metrics import roc_auc_score

        hits += lo <= roc_auc_score(y, s) <= hi
    assert hits >= 34  # nominal 95 %: 38 of 40 expected; binomial 1st percentile ~34


def _alert_store(tmp_path, **kw):
    preds, labels = stream(**kw)
    st = EventStore(tmp_path / "a.db", labels=["E"], attributes=["grp"], create=True)
    st.add_predictions(preds)
    st.add_labels(labels)
    return st


RULES = [{"name": "auc_drop", "metric": "auc", "attribute": "grp", "op": "<",
          "threshold": 0.75, "bound": "ci", "min_n": 200, "consecutive": 2},
         # the size-dependent verdict: KS p < 0.05 here (500 reference scores per group)
         {"name": "score_drift", "metric": "score_drift", "attribute": "grp", "op": ">",
          "threshold": 0.5, "min_n": 200, "consecutive": 2}]


def test_planted_shift_alerts_that_group_only_within_two_windows(tmp_path):
    st = _alert_store(tmp_path, windows=12, size=1000, seed=11, shift_group="B", shift_from=6)
    cfg = MonitorConfig.from_dict({"windows": {"size": 1000}, "bootstrap": 50,
                                   "simulations": 0, "alerts": RULES})
    _, alerts = evaluate_store(st, cfg)
    assert set(alerts["group"]) == {"B"}
    for rule in ("auc_drop", "score_drift"):
        first = alerts[alerts["rule"] == rule]["window"].min()
        assert first <= 6 + 1, (rule, first)  # the second shifted window at the latest
    assert st.alerts().shape[0] == len(alerts)
    # re-evaluating does not repeat alerts
    evaluate_store(st, cfg)
    assert st.alerts().shape[0] == len(alerts)
    st.close()


def test_fifty_null_windows_raise_at_most_one_false_alert(tmp_path):
    st = _alert_store(tmp_path, windows=51, size=800, seed=12)
    cfg = MonitorConfig.from_dict({"windows": {"size": 800}, "bootstrap": 30,
                                   "simulations": 0, "alerts": RULES})
    results, alerts = evaluate_store(st, cfg)
    assert results["window"].nunique() == 51  # 1 reference + 50 null windows
    assert len(alerts) <= 1, alerts
    st.close()
