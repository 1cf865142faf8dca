"""fairfoundry.evaluate on the bundled real NIH data and on small seeded data.

Values are checked against scikit-learn (oracle) and the authors' published AUCs.
"""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score, roc_auc_score

import fairfoundry
from fairfoundry._errors import FairfoundryError
from fairfoundry.datasets import NIH_LABELS, nih_chexnet, nih_chexnet_published_aucs
from fairfoundry.metrics import choose_threshold


@pytest.fixture(scope="module")
def nih():
    return nih_chexnet()


@pytest.fixture(scope="module")
def nih_small(nih):
    """A patient-level 3,000-row slice (val + test) of the real NIH predictions."""
    keep = nih["patient_id"].drop_duplicates().sample(1400, random_state=0)
    return nih[nih["patient_id"].isin(keep)].reset_index(drop=True)


def synthetic(n=600, seed=0):
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    age = rng.uniform(18, 90, n).round()
    y = rng.integers(0, 2, n)
    shift = np.where(sex == "female", 0.1, 0.3)
    p = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 2 * y * shift * 4 - 1)))
    return pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "patient": rng.integers(0, n // 2, n),
                         "y": y, "p": p, "sex": sex, "age": age,
                         "split": np.where(rng.random(n) < 0.4, "val", "test")})


def test_nih_aucs_equal_the_published_values(nih):
    ev = fairfoundry.evaluate(nih, label=list(NIH_LABELS), sensitive=["sex"], split_col=None,
                              threshold=0.5)
    overall = ev.get("auc", attribute="overall").set_index("label")["estimate"]
    published = nih_chexnet_published_aucs().set_index("label")["auc"]
    assert len(nih) == 22_433 and len(published) == 14
    for label in NIH_LABELS:
        assert round(overall[label], 4) == round(published[label], 4), label


def test_thresholds_chosen_on_val_and_applied_to_test(nih_small):
    ev = fairfoundry.evaluate(nih_small, label="Effusion", sensitive="sex", threshold="youden")
    val = nih_small[nih_small["split"] == "val"]
    test = nih_small[nih_small["split"] == "test"]
    thr = choose_threshold(val["Effusion"], val["prob_Effusion"], "youden")
    row = ev.thresholds.iloc[0]
    assert row["threshold"] == thr and row["chosen_on_split"] == "val" and not row["on_report_split"]
    assert row["n_rows_chosen_on"] == len(val)
    tpr = ev.get("tpr", attribute="sex").set_index("group")["estimate"]
    for sex, part in test.groupby("sex"):
        assert tpr[sex] == pytest.approx(recall_score(part["Effusion"], part["prob_Effusion"] >= thr),
                                         abs=1e-12)
    assert ev.info["n_report_rows"] == len(test)
    assert ev.summary["thresholds"][0]["chosen_on_split"] == "val"


def test_threshold_on_report_split_needs_the_flag_and_is_flagged(nih_small):
    with pytest.raises(FairfoundryError, match="reported split"):
        fairfoundry.evaluate(nih_small, label="Edema", sensitive="sex", threshold_split="test")
    ev = fairfoundry.evaluate(nih_small, label="Edema", sensitive="sex", threshold_split="test",
                              allow_threshold_on_report_split=True)
    assert ev.summary["threshold_on_report_split"] is True
    assert "THRESHOLDS WERE CHOSEN ON THE REPORTED ROWS" in ev.warnings[0]


def test_without_split_column_a_fixed_threshold_or_the_flag_is_required():
    df = synthetic().drop(columns="split")
    with pytest.raises(FairfoundryError, match="no split column") as err:
        fairfoundry.evaluate(df, label="y", sensitive="sex")
    assert "--threshold" in err.value.hint
    ev = fairfoundry.evaluate(df, label="y", sensitive="sex", threshold=0.4)
    assert ev.thresholds.loc[0, "threshold"] == 0.4 and ev.info["n_report_rows"] == len(df)
    ev = fairfoundry.evaluate(df, label="y", sensitive="sex", allow_threshold_on_report_split=True)
    assert ev.thresholds.loc[0, "threshold"] == choose_threshold(df["y"], df["p"], "youden")


def test_scores_auto_detected_and_per_group_auc_matches_sklearn():
    df = synthetic().rename(columns={"p": "y_score"})
    ev = fairfoundry.evaluate(df, label="y", sensitive="sex", bins={"age": [40, 60]},
                              intersect=[["sex", "age"]])
    assert ev.config["score"] == ["y_score"]
    test = df[df["split"] == "test"]
    auc = ev.get("auc")
    for (attr, group), est in auc.set_index(["attribute", "group"])["estimate"].items():
        if attr == "sex":
            part = test[test["sex"] == group]
        elif attr == "age":
            lo, hi = {"<40": (0, 40), "40-59": (40, 60), "60+": (60, 999)}[group]
            part = test[(test["age"] >= lo) & (test["age"] < hi)]
        elif attr == "overall":
            part = test
        else:
            assert attr == "sex&age"
            continue
        assert est == pytest.approx(roc_auc_score(part["y"], part["y_score"]), abs=1e-12)
    assert set(ev.get("auc", attribute="sex&age")["group"]) and "sex&age" in ev.attributes


def test_logit_scores_give_the_same_ranking_metrics():
    df = synthetic()
    df["logit"] = np.log(df["p"] / (1 - df["p"]))
    with pytest.raises(FairfoundryError, match="outside"):
        fairfoundry.evaluate(df, label="y", score="logit", sensitive="sex")
    a = fairfoundry.evaluate(df, label="y", score="p", sensitive="sex")
    b = fairfoundry.evaluate(df, label="y", score="logit", sensitive="sex", scores_are_logits=True)
    for metric in ("auc", "tpr", "fpr"):
        np.testing.assert_allclose(a.get(metric)["estimate"], b.get(metric)["estimate"], atol=1e-9)


def test_multilabel_macro_and_underdiagnosis(nih_small):
    labels = ["Effusion", "Edema", "Atelectasis"]
    ev = fairfoundry.evaluate(nih_small, label=labels, sensitive=["sex"])
    auc = ev.get("auc", attribute="sex").pivot(index="group", columns="label", values="estimate")
    np.testing.assert_allclose(auc["macro"], auc[labels].mean(axis=1), atol=1e-12)
    assert len(ev.thresholds) == 3
    # underdiagnosis: diseased (any label) predicted "no finding" (every score below threshold)
    test = nih_small[nih_small["split"] == "test"]
    thr = ev.thresholds.set_index("label")["threshold"]
    diseased = test[labels].any(axis=1)
    no_finding = np.all([test[f"prob_{lab}"] < thr[lab] for lab in labels], axis=0)
    ud = ev.by_group[(ev.by_group["label"] == "any_finding") & (ev.by_group["attribute"] == "sex")]
    ud = ud[ud["metric"] == "underdiagnosis_rate"].set_index("group")["estimate"]
    for sex in ("female", "male"):
        m = (test["sex"] == sex).to_numpy() & diseased.to_numpy()
        assert ud[sex] == pytest.approx(no_finding[m].mean(), abs=1e-12)


def test_min_group_size_suppresses_cells_and_leaves_them_out_of_gaps(tmp_path):
    df = synthetic(900, seed=3)
    df.loc[df.index[:40], "sex"] = "other"  # a small group (~24 test rows)
    n_other = int(((df["sex"] == "other") & (df["split"] == "test")).sum())
    ev = fairfoundry.evaluate(df, label="y", sensitive="sex", min_group_size=n_other + 1)
    other = ev.by_group[(ev.by_group["attribute"] == "sex") & (ev.by_group["group"] == "other")]
    assert len(other) > 5
    assert other["estimate"].isna().all() and other["n"].isna().all()
    assert (other["reason"] == f"suppressed: n < {n_other + 1}").all()
    tpr = ev.get("tpr", attribute="sex").set_index("group")["estimate"]
    gap = ev.summary_table.set_index(["attribute", "metric"]).loc[("sex", "tpr_gap"), "estimate"]
    assert gap == pytest.approx(abs(tpr["female"] - tpr["male"]), abs=1e-12)
    assert ev.suppressed == [{"attribute": "sex", "group": "other", "reason": f"n < {n_other + 1}"}]
    ev.save(tmp_path / "out")
    csv = pd.read_csv(tmp_path / "out" / "evaluation.csv", keep_default_na=False)
    cell = csv[(csv["group"] == "other") & (csv["metric"] == "tpr")]
    assert cell["estimate"].iloc[0] == "" and cell["reason"].iloc[0].startswith("suppressed")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["suppressed"][0]["group"] == "other"
    assert "suppressed" in (tmp_path / "out" / "report.html").read_text()


def test_one_class_group_gives_nan_auc_with_reason_and_goes_on():
    df = synthetic(500, seed=4)
    df.loc[df["sex"] == "male", "y"] = 0
    ev = fairfoundry.evaluate(df, label="y", sensitive="sex")
    male = ev.get("auc", attribute="sex").set_index("group").loc["male"]
    assert np.isnan(male["estimate"]) and male["reason"]
    assert np.isfinite(ev.get("auc", attribute="sex").set_index("group").loc["female", "estimate"])
    assert any("male" in w and "AUC" in w for w in ev.warnings)


def test_bootstrap_clustered_is_seeded_and_reports_progress(nih_small):
    calls = []
    kw = dict(label="Effusion", sensitive=["sex"], bootstrap=30, cluster="patient_id", seed=7,
              reference={"sex": "male"})
    ev = fairfoundry.evaluate(nih_small, **kw, progress=calls.append)
    again = fairfoundry.evaluate(nih_small, **kw)
    pd.testing.assert_frame_equal(ev.by_group, again.by_group)
    auc = ev.get("auc", attribute="sex")
    assert (auc["ci_low"] <= auc["estimate"]).all() and (auc["estimate"] <= auc["ci_high"]).all()
    assert (auc["ci_high"] - auc["ci_low"] > 0).all()
    assert sum(calls) >= 30
    vs_ref = ev.summary_table[ev.summary_table["metric"] == "auc_vs_reference"]
    assert len(vs_ref) == 1 and np.isfinite(vs_ref["estimate"]).all()
    assert ev.config["cluster"] == "patient_id" and ev.summary["seed"] == 7


def test_evaluation_files_and_lazy_top_level_import(tmp_path):
    import subprocess
    import sys

    code = "import sys, fairfoundry; assert 'fairfoundry.evaluation' not in sys.modules; " \
           "fairfoundry.evaluate; assert 'fairfoundry.evaluation' in sys.modules; " \
           "assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    ev = fairfoundry.evaluate(synthetic(), label="y", sensitive="sex")
    frame = ev.to_frame()
    assert list(frame.columns) == ["label", "attribute", "group", "metric", "estimate", "ci_low",
                                   "ci_high", "n", "reason"]
    path = ev.to_json(tmp_path / "s.json")
    data = json.loads(path.read_text())
    assert {"summaries", "thresholds", "config", "versions", "input"} <= set(data)
    assert data["input"]["fingerprint"].startswith("frame:")
    assert data["versions"]["numpy"] == np.__version__


def test_macro_over_labels_has_bootstrap_cis(nih_small):
    ev = fairfoundry.evaluate(nih_small, label=["Effusion", "Edema"], sensitive="sex", bootstrap=25,
                              cluster="patient_id")
    macro = ev.get("auc", label="macro").set_index("group")
    assert np.isfinite(macro[["ci_low", "ci_high"]].to_numpy()).all()
    assert (macro["ci_low"] < macro["ci_high"]).all()
    gap = ev.summary_table.set_index(["label", "attribute", "metric"]).loc[("macro", "sex", "auc_gap")]
    per_label = ev.summary_table.set_index(["label", "attribute", "metric"])["estimate"]
    assert gap["estimate"] == pytest.approx(
        (per_label[("Effusion", "sex", "auc_gap")] + per_label[("Edema", "sex", "auc_gap")]) / 2)
    assert gap["ci_low"] <= gap["estimate"] <= gap["ci_high"]
    assert "percentile" in ev.summary["uncertainty"]["macro"]  # said, since it differs from gap_ci


def test_row_order_does_not_change_the_results():
    df = synthetic(700, seed=5)
    a = fairfoundry.evaluate(df, label="y", sensitive=["sex"], bins={"age": [50]})
    b = fairfoundry.evaluate(df.sample(frac=1.0, random_state=1), label="y", sensitive=["sex"],
                             bins={"age": [50]})
    pd.testing.assert_frame_equal(a.by_group, b.by_group, check_exact=False, rtol=1e-12)
    assert a.thresholds.loc[0, "threshold"] == b.thresholds.loc[0, "threshold"]


def test_renaming_groups_only_renames_the_per_group_rows():
    df = synthetic(500, seed=6)
    renamed = df.assign(sex=df["sex"].map({"female": "F", "male": "M"}))
    a = fairfoundry.evaluate(df, label="y", sensitive="sex").get("tpr", attribute="sex")
    b = fairfoundry.evaluate(renamed, label="y", sensitive="sex").get("tpr", attribute="sex")
    est_a = a.set_index("group")["estimate"]
    est_b = b.set_index("group")["estimate"]
    assert est_b["F"] == est_a["female"] and est_b["M"] == est_a["male"]


def test_underdiagnosis_with_a_dedicated_no_finding_score(nih_small):
    labels = ["Effusion", "Edema"]
    df = nih_small.assign(prob_nf=1 - nih_small[[f"prob_{lab}" for lab in labels]].max(axis=1))
    ev = fairfoundry.evaluate(df, label=labels, sensitive="sex", no_finding_score="prob_nf")
    nf = ev.thresholds[ev.thresholds["label"].str.contains("no finding")].iloc[0]
    val = df[df["split"] == "val"]
    healthy = (~val[labels].any(axis=1)).astype(int)
    assert nf["threshold"] == choose_threshold(healthy, val["prob_nf"], "youden")
    test = df[df["split"] == "test"]
    diseased = test[labels].any(axis=1).to_numpy()
    called_healthy = (test["prob_nf"] >= nf["threshold"]).to_numpy()
    ud = ev.get("underdiagnosis_rate", label="any_finding", attribute="sex").set_index("group")
    for sex in ("female", "male"):
        m = diseased & (test["sex"] == sex).to_numpy()
        assert ud.loc[sex, "estimate"] == pytest.approx(called_healthy[m].mean(), abs=1e-12)


def _calibrated_frame(n=600, seed=3):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    return pd.DataFrame({"y": (rng.uniform(0, 1, n) < p).astype(int), "p": p,
                         "sex": rng.choice(["female", "male"], n)})


def test_summary_json_says_how_intervals_were_computed(tmp_path):
    df = _calibrated_frame()
    ev = fairfoundry.evaluate(df, label="y", score="p", sensitive="sex", split_col=None,
                              threshold=0.5, bootstrap=200, permutations=20, seed=1)
    unc = json.loads(ev.to_json(tmp_path / "summary.json").read_text())["uncertainty"]
    assert unc["ci_method"] == "percentile" and unc["gap_ci"] == "pairwise"
    assert "Bonferroni" in unc["gap_ci_description"]
    assert unc["calibration_bootstrap"] == ["newton"]  # 600 x 200 <= 1e7: exact refits
    assert unc["resampling"] == "rows, stratified by group" and unc["permutations"] == 20

    # a well-calibrated model: ECE replicates sit above the small point estimate, and the
    # run says so instead of leaving a CI that misses its estimate unexplained
    ece = ev.get("ece")  # both groups and overall
    off = (ece["estimate"] < ece["ci_low"]) | (ece["estimate"] > ece["ci_high"])
    warned = [w for w in ev.warnings if w.startswith("ece: the 95% bootstrap CI excludes")]
    assert off.any() and len(warned) == 1 and f"in {int(off.sum())} of 3 cells" in warned[0]
    assert (ece["ci_low"] + ece["ci_high"]).mean() / 2 > ece["estimate"].mean()


def test_gap_ci_percentile_never_reaches_zero_but_pairwise_does():
    df = _calibrated_frame(n=400, seed=5)  # sex is independent of everything: a fair model
    kw = dict(label="y", score="p", sensitive="sex", split_col=None, threshold=0.5,
              bootstrap=200, seed=2)
    pair = fairfoundry.evaluate(df, **kw).summary_table.set_index("metric")
    perc = fairfoundry.evaluate(df, gap_ci="percentile", **kw).summary_table.set_index("metric")
    assert pair.loc["tpr_gap", "ci_low"] == 0.0 <= pair.loc["tpr_gap", "estimate"]
    assert perc.loc["tpr_gap", "ci_low"] > 0.0
    assert pair.loc["tpr_gap", "estimate"] == perc.loc["tpr_gap", "estimate"]
    with pytest.raises(FairfoundryError, match="gap_ci="):
        fairfoundry.evaluate(df, gap_ci="simultaneous", **kw)


def test_evaluate_signature_lists_every_option_of_prepare_evaluation():
    import inspect

    from fairfoundry.evaluation import prepare_evaluation

    sig = inspect.signature(fairfoundry.evaluate).parameters
    assert set(inspect.signature(prepare_evaluation).parameters) | {"progress"} == set(sig)
    assert sig["gap_ci"].default == "pairwise" and sig["bootstrap"].default == 0


def test_one_step_calibration_refit_is_recorded_when_used(tmp_path):
    # 20,001 rows x 500 replicates > 1e7: the bootstrap switches to the one-step refit
    df = _calibrated_frame(n=20_001, seed=7)
    ev = fairfoundry.evaluate(df, label="y", score="p", sensitive="sex", split_col=None,
                              threshold=0.5, bootstrap=500, seed=0)
    unc = ev.summary["uncertainty"]
    assert unc["calibration_bootstrap"] == ["one_step"]
    assert "one Newton step" in unc["calibration_bootstrap_note"]
    html = ev.to_html(tmp_path / "report.html").read_text()
    assert "one-step refit" in html
    # the point estimates are exact fits either way
    exact = fairfoundry.evaluate(df, label="y", score="p", sensitive="sex", split_col=None,
                                 threshold=0.5)
    cols = ["estimate"]
    pd.testing.assert_frame_equal(ev.get("calibration_slope")[cols],
                                  exact.get("calibration_slope")[cols])


def test_underdiagnosis_with_the_product_no_finding_rule(nih_small):
    """no_finding_rule='product': score prod(1 - p_k), its own threshold chosen on val."""
    labels = ["Effusion", "Edema", "Atelectasis"]
    ev = fairfoundry.evaluate(nih_small, label=labels, sensitive="sex", no_finding_rule="product",
                              threshold="max_f1")
    nf = ev.thresholds[ev.thresholds["label"] == "prod(1 - p_k) (no finding)"].iloc[0]
    score = np.prod([1 - nih_small[f"prob_{lab}"].to_numpy(float) for lab in labels], axis=0)
    healthy = (~nih_small[labels].any(axis=1)).to_numpy().astype(int)
    val = (nih_small["split"] == "val").to_numpy()
    assert nf["chosen_on_split"] == "val"
    assert nf["threshold"] == choose_threshold(healthy[val], score[val], "max_f1")
    test = (nih_small["split"] == "test").to_numpy()
    called_healthy = score >= nf["threshold"]
    ud = ev.get("underdiagnosis_rate", label="any_finding", attribute="sex").set_index("group")
    for sex in ("female", "male"):
        m = test & (healthy == 0) & (nih_small["sex"] == sex).to_numpy()
        assert ud.loc[sex, "estimate"] == pytest.approx(called_healthy[m].mean(), abs=1e-12)
    assert ev.config["no_finding_rule"] == "product"
    # the default rule is different: every label below its own threshold
    default = fairfoundry.evaluate(nih_small, label=labels, sensitive="sex", threshold="max_f1")
    assert default.config["no_finding_rule"] == "all_below"
    d = default.get("underdiagnosis_rate", label="any_finding", attribute="sex")
    assert not np.allclose(d["estimate"].to_numpy(), ud.loc[d["group"], "estimate"].to_numpy())


def test_product_no_finding_rule_bad_combinations(nih_small):
    with pytest.raises(FairfoundryError, match="no_finding_rule='bogus' is not one of"):
        fairfoundry.evaluate(nih_small, label=["Effusion", "Edema"], sensitive="sex",
                             no_finding_rule="bogus")
    with pytest.raises(FairfoundryError, match="needs two or more labels"):
        fairfoundry.evaluate(nih_small, label="Effusion", sensitive="sex", no_finding_rule="product")
    with pytest.raises(FairfoundryError, match="both given"):
        fairfoundry.evaluate(nih_small.assign(nf=0.5), label=["Effusion", "Edema"], sensitive="sex",
                             no_finding_rule="product", no_finding_score="nf")


def test_cli_no_finding_rule_names_its_flag(cli, tmp_path):
    res = cli("evaluate", "--example", "nih-chexnet", "--label", "Effusion", "--sensitive", "sex",
              "--no-finding-rule", "product", "--out", tmp_path / "o")
    assert res.code == 2 and "--no-finding-rule" in res.err and "Traceback" not in res.err
    assert not (tmp_path / "o" / "summary.json").exists()
