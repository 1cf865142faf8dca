"""The engine on the bundled real NIH ChestX-ray14 CheXNet predictions (several images per
patient): oracle values per group, patient-clustered intervals, underdiagnosis by sex."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _metrics_oracle import group_metrics
from fairlearn import metrics as flm
from sklearn import metrics as skm

import fairfoundry.metrics as fm
from fairfoundry.datasets import nih_chexnet


@pytest.fixture(scope="module")
def nih() -> pd.DataFrame:
    df = nih_chexnet()
    df = df[df["split"] == "test"].reset_index(drop=True)
    df["age_group"] = pd.cut(df["age"], [0, 40, 60, 80, 200], right=False,
                             labels=["<40", "40-60", "60-80", "80+"]).astype(str)
    return df


def test_effusion_by_sex_and_age_equals_sklearn_on_real_data(nih):
    codes, names = fm.intersect_groups(nih, ["sex", "age_group"])
    y = nih["Effusion"].to_numpy()
    s = nih["prob_Effusion"].to_numpy(dtype=np.float64)  # the model wrote float32
    res = fm.evaluate_groups(y, s, threshold=0.2, groups=codes, group_names=names)
    pg = res.per_group.set_index(["group", "metric"])["estimate"]
    for k, name in enumerate(names):
        want = group_metrics(y[codes == k], s[codes == k], 0.2)
        for m in ("auc", "average_precision", "tpr", "fpr", "ppv", "ece", "brier",
                  "calibration_slope"):
            assert pg[(name, m)] == pytest.approx(want[m], abs=1e-9, nan_ok=True), (name, m)
    p = (s >= 0.2).astype(int)
    sm = res.summary.set_index("metric")["estimate"]
    assert sm["equalized_odds_difference"] == pytest.approx(
        flm.equalized_odds_difference(y, p, sensitive_features=nih[["sex", "age_group"]]))
    assert pg[("overall", "auc")] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_patient_clustered_intervals_are_wider_on_real_data(nih):
    codes, names = fm.intersect_groups(nih, ["sex"])
    y = nih["Effusion"].to_numpy()
    s = nih["prob_Effusion"].to_numpy(dtype=np.float64)  # the model wrote float32
    kw = dict(threshold=0.2, groups=codes, group_names=names, n_bootstrap=120, seed=0,
              metrics=["auc", "tpr", "prevalence"])
    rows = fm.evaluate_groups(y, s, **kw)
    clustered = fm.evaluate_groups(y, s, cluster=nih["patient_id"].to_numpy(), **kw)
    assert clustered.config["cluster_stratified"] is True  # every patient has one sex
    w = {}
    for key, r in (("rows", rows), ("patients", clustered)):
        x = r.per_group.query("group == 'overall'").set_index("metric")
        w[key] = x["ci_high"] - x["ci_low"]
    assert w["patients"]["prevalence"] > 1.2 * w["rows"]["prevalence"]
    assert w["patients"]["tpr"] > w["rows"]["tpr"]


def test_underdiagnosis_by_sex_on_real_data(nih):
    labels = [c[5:] for c in nih.columns if c.startswith("prob_")]
    no_finding = (nih[labels].sum(axis=1) == 0).astype(int).to_numpy()
    nf_score = 1 - nih[[f"prob_{c}" for c in labels]].max(axis=1).to_numpy()
    codes, names = fm.intersect_groups(nih, ["sex"])
    res = fm.underdiagnosis_by_group(no_finding, nf_score, threshold=0.7, groups=codes,
                                     group_names=names, n_bootstrap=50,
                                     cluster=nih["patient_id"].to_numpy(), seed=1)
    for k, name in enumerate(names):
        diseased = (codes == k) & (no_finding == 0)
        want = np.mean(nf_score[diseased] >= 0.7)
        pg = res.per_group
        row = pg[(pg["group"] == name) & (pg["metric"] == "underdiagnosis_rate")].iloc[0]
        assert row["estimate"] == pytest.approx(want, abs=1e-12)
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
    assert "underdiagnosis_rate_gap" in set(res.summary["metric"])
