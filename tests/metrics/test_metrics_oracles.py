"""Point estimates equal scikit-learn / fairlearn to 1e-9, for 2-7 groups and intersections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _metrics_oracle import group_metrics, make_data
from fairlearn import metrics as flm
from sklearn import metrics as skm

import fairfoundry.metrics as fm

TOL = 1e-9


def _table(res):
    pg = res.per_group
    return {(r.group, r.metric): r.estimate for r in pg.itertuples()}


@pytest.mark.parametrize("n_groups", [2, 3, 5, 7])
@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_every_per_group_metric_equals_sklearn_and_fairlearn(n_groups, strategy):
    y, s, g = make_data(n_groups * 10 + (strategy == "quantile"), 1500, n_groups)
    names = [f"g{k}" for k in range(n_groups)]
    res = fm.evaluate_groups(y, s, threshold=0.5, groups=g, group_names=names, ece_bins=8,
                             ece_strategy=strategy)
    got = _table(res)
    for k, name in enumerate([*names, "overall"]):
        mask = (g == k) if name != "overall" else np.ones(len(y), bool)
        want = group_metrics(y[mask], s[mask], 0.5, ece_bins=8, ece_strategy=strategy)
        for m, v in want.items():
            assert got[(name, m)] == pytest.approx(v, abs=TOL, nan_ok=True), (name, m)


def test_public_functions_equal_sklearn_with_weights_and_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 800)
    s = np.round(rng.random(800), 1)
    w = rng.integers(1, 5, 800).astype(float)
    p = (s >= 0.5).astype(int)
    assert fm.roc_auc(y, s, sample_weight=w) == pytest.approx(
        skm.roc_auc_score(y, s, sample_weight=w), abs=TOL)
    assert fm.average_precision(y, s, sample_weight=w) == pytest.approx(
        skm.average_precision_score(y, s, sample_weight=w), abs=TOL)
    assert fm.brier_score(y, s, sample_weight=w) == pytest.approx(
        skm.brier_score_loss(y, s, sample_weight=w), abs=TOL)
    assert fm.log_loss(y, s, sample_weight=w) == pytest.approx(
        skm.log_loss(y, s, sample_weight=w), abs=TOL)
    assert fm.accuracy(y, p, sample_weight=w) == pytest.approx(
        skm.accuracy_score(y, p, sample_weight=w), abs=TOL)
    assert fm.balanced_accuracy(y, p, sample_weight=w) == pytest.approx(
        skm.balanced_accuracy_score(y, p, sample_weight=w), abs=TOL)
    assert fm.f1(y, p, sample_weight=w) == pytest.approx(skm.f1_score(y, p, sample_weight=w))
    assert fm.tpr(y, p) == pytest.approx(flm.true_positive_rate(y, p), abs=TOL)
    assert fm.fpr(y, p) == pytest.approx(flm.false_positive_rate(y, p), abs=TOL)
    assert fm.tnr(y, p) == pytest.approx(flm.true_negative_rate(y, p), abs=TOL)
    assert fm.fnr(y, p) == pytest.approx(flm.false_negative_rate(y, p), abs=TOL)
    assert fm.selection_rate(y, p) == pytest.approx(flm.selection_rate(y, p), abs=TOL)
    assert fm.ppv(y, p) == pytest.approx(skm.precision_score(y, p), abs=TOL)


@pytest.mark.parametrize("n_groups", [2, 4, 7])
def test_fairness_summaries_equal_fairlearn(n_groups):
    y, s, g = make_data(100 + n_groups, 2000, n_groups, effect=0.08)
    p = (s >= 0.5).astype(int)
    names = [f"g{k}" for k in range(n_groups)]
    res = fm.evaluate_groups(y, s, threshold=0.5, groups=g, group_names=names)
    est = dict(zip(res.summary["metric"], res.summary["estimate"], strict=True))
    sf = np.array(names)[g]
    kw = {"sensitive_features": sf}
    checks = {
        "demographic_parity_difference": flm.demographic_parity_difference(y, p, **kw),
        "demographic_parity_ratio": flm.demographic_parity_ratio(y, p, **kw),
        "equalized_odds_difference": flm.equalized_odds_difference(y, p, **kw),
        "equalized_odds_difference_mean": flm.equalized_odds_difference(y, p, agg="mean", **kw),
        "equalized_odds_ratio": flm.equalized_odds_ratio(y, p, **kw),
        "equal_opportunity_difference": flm.equal_opportunity_difference(y, p, **kw),
    }
    for name, want in checks.items():
        assert est[name] == pytest.approx(want, abs=TOL), name
        pub = getattr(fm, name.replace("_mean", ""), None)
        if pub is not None and not name.endswith("_mean"):
            assert pub(y, p, sensitive_features=sf) == pytest.approx(want, abs=TOL), name
    assert fm.equalized_odds_difference(y, p, sensitive_features=sf, agg="mean") == pytest.approx(
        checks["equalized_odds_difference_mean"], abs=TOL)
    # the per-metric family against MetricFrame
    mf = flm.MetricFrame(metrics={"accuracy": skm.accuracy_score, "tpr": flm.true_positive_rate,
                                  "auc": skm.roc_auc_score},
                         y_true=y, y_pred=p, sensitive_features=sf)
    mf_auc = flm.MetricFrame(metrics=skm.roc_auc_score, y_true=y, y_pred=s, sensitive_features=sf)
    for m in ("accuracy", "tpr"):
        assert est[f"{m}_gap"] == pytest.approx(mf.difference()[m], abs=TOL)
        assert est[f"{m}_ratio"] == pytest.approx(mf.ratio()[m], abs=TOL)
        assert est[f"{m}_to_overall"] == pytest.approx(
            mf.difference(method="to_overall")[m], abs=TOL)
    assert est["auc_gap"] == pytest.approx(mf_auc.difference(), abs=TOL)
    assert est["auc_ratio"] == pytest.approx(mf_auc.ratio(), abs=TOL)
    assert est["auc_worst_group"] == pytest.approx(mf_auc.group_min(), abs=TOL)
    # FairCLIP's equity-scaled AUC, written out
    aucs = mf_auc.by_group.to_numpy()
    overall = skm.roc_auc_score(y, s)
    assert est["es_auc"] == pytest.approx(overall / (1 + np.abs(aucs - overall).sum()), abs=TOL)
    assert fm.es_auc(y, s, groups=sf) == pytest.approx(est["es_auc"], abs=TOL)
    acc = mf.by_group["accuracy"].to_numpy()
    oacc = skm.accuracy_score(y, p)
    assert est["es_accuracy"] == pytest.approx(oacc / (1 + np.abs(acc - oacc).sum()), abs=TOL)
    # MEDFAIR-style EqOdd = 1 - mean of the TPR and FPR gaps (the opposite direction)
    assert est["equalized_odds_score"] == pytest.approx(
        1 - checks["equalized_odds_difference_mean"], abs=TOL)
    assert fm.equalized_odds_score(y, p, sensitive_features=sf) == pytest.approx(
        est["equalized_odds_score"], abs=TOL)


def test_intersections_equal_fairlearn_multi_feature_metricframe():
    rng = np.random.default_rng(7)
    n = 3000
    df = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "age": rng.choice(["<40", "40-60", "60+"], n),
                       "site": rng.choice(["A", "B"], n, p=[0.8, 0.2])})
    y = (rng.random(n) < 0.3).astype(int)
    s = np.clip(0.3 * y + 0.6 * rng.random(n) + 0.05 * (df["sex"] == "F"), 0, 1)
    cols = ["sex", "age", "site"]
    codes, names = fm.intersect_groups(df, cols)
    assert len(names) == 12
    res = fm.evaluate_groups(y, s, threshold=0.5, groups=codes, group_names=names)
    mf = flm.MetricFrame(metrics={"auc": skm.roc_auc_score}, y_true=y, y_pred=s,
                         sensitive_features=df[cols])
    got = _table(res)
    for key, row in mf.by_group.iterrows():
        name = " & ".join(f"{c}={v}" for c, v in zip(cols, key, strict=True))
        assert got[(name, "auc")] == pytest.approx(row["auc"], abs=TOL)
    est = dict(zip(res.summary["metric"], res.summary["estimate"], strict=True))
    assert est["auc_gap"] == pytest.approx(mf.difference()["auc"], abs=TOL)
    p = (s >= 0.5).astype(int)
    assert est["equalized_odds_difference"] == pytest.approx(
        flm.equalized_odds_difference(y, p, sensitive_features=df[cols]), abs=TOL)


def test_underdiagnosis_rate_is_fpr_of_no_finding_among_diseased():
    rng = np.random.default_rng(11)
    n = 1200
    g = rng.integers(0, 3, n)
    nf = (rng.random(n) < 0.5).astype(int)
    score = np.clip(0.4 * nf + 0.5 * rng.random(n) + 0.1 * (g == 2), 0, 1)
    res = fm.underdiagnosis_by_group(nf, score, threshold=0.5, groups=g,
                                     group_names=["a", "b", "c"])
    pred = score >= 0.5
    for k, name in enumerate("abc"):
        diseased = (g == k) & (nf == 0)
        want = pred[diseased].mean()
        assert res.estimate("underdiagnosis_rate", name) == pytest.approx(want, abs=TOL)
    assert set(res.summary["metric"]) >= {"underdiagnosis_rate_gap", "underdiagnosis_rate_ratio"}
    series = fm.underdiagnosis_rate(nf, pred.astype(int), groups=np.array(list("abc"))[g])
    assert series.to_numpy() == pytest.approx(
        [res.estimate("underdiagnosis_rate", k) for k in "abc"], abs=TOL)
