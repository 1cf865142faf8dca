"""Evidence-based headlines, degenerate intervals, calibrated permutations, gap conventions and
the generated val split (issue 10)."""

import json
import re

import numpy as np
import pandas as pd
import pytest

import fairfoundry
from fairfoundry._errors import FairfoundryError
from fairfoundry.evaluation import holm_adjust
from fairfoundry.metrics import ResamplePlan, evaluate_groups
from fairfoundry.report import gap_readings, too_few_readings


def _frame(seed=0, n_pat=600, gap=0.0, small_pos=None):
    """Patients with 1-3 images; group constant per patient; TPR lowered by ``gap`` in 'b'."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, n_pat)
    pid = np.repeat(np.arange(n_pat), sizes)
    grp = np.array(["a", "b", "c"])[rng.choice(3, n_pat, p=[0.5, 0.35, 0.15])][pid]
    y = rng.random(pid.size) < 0.35
    p = np.where(y, rng.random(pid.size) < 0.8, rng.random(pid.size) < 0.2)
    if gap:
        hit = np.flatnonzero((grp == "b") & y & p)
        p[rng.choice(hit, int(gap * ((grp == "b") & y).sum()), replace=False)] = False
    if small_pos is not None:  # group "c": only a few positives, all missed
        y[grp == "c"] = False
        y[np.flatnonzero(grp == "c")[:small_pos]] = True
        p[(grp == "c") & y] = False
    score = np.where(p, 0.5 + 0.5 * rng.random(pid.size), 0.5 * rng.random(pid.size))
    return pd.DataFrame({"y": y.astype(int), "p": score, "grp": grp, "patient_id": pid})


def _eval(df, **kw):
    opts = dict(label="y", score="p", sensitive="grp", threshold=0.5, split_col=None,
                cluster="patient_id", bootstrap=40, seed=0, headline_permutations=200)
    opts.update(kw)
    return fairfoundry.evaluate(df, **opts)


def test_holm_adjust_is_the_step_down_rule():
    p = np.array([0.01, 0.04, 0.03, np.nan])
    adj = holm_adjust(p)
    assert adj[:3].tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(adj[3])


def test_a_real_gap_is_a_headline_with_its_denominators_and_method():
    ev = _eval(_frame(gap=0.3))
    readings = gap_readings(ev)
    assert readings, ev.findings
    first = readings[0]
    assert first.startswith("y: TPR (sensitivity) for grp=b is ")
    assert re.search(r"\(0\.\d\d, [\d,]+ of [\d,]+ positives, vs 0\.\d\d, [\d,]+ of [\d,]+ "
                     r"positives; 95% CI of the difference 0\.\d\d to 0\.\d\d; adjusted p = "
                     r"\S+ \(max-T over \d+ comparisons\)\)\.$", first), first
    f = ev.findings.iloc[0]
    assert f["status"] == "finding" and f["ci_low"] > 0 and f["p_adjusted"] < 0.05
    # the counts in the sentence are the metric's own numerator / denominator
    pos_b = int(((ev.curves["g::grp"] == "b") & (ev.curves["y::y"] == 1)).sum())
    assert f"of {pos_b:,} positives" in first
    info = ev.summary["findings"]
    assert info["adjustment"] == "westfall_young_maxT" and info["min_events"] == 10
    assert info["rows"][0]["status"] == "finding"


def test_few_events_are_too_few_to_judge_never_a_headline():
    # group c has 3 positives, all missed (TPR 0 vs 0.8): a huge gap on no evidence
    ev = _eval(_frame(seed=1, small_pos=3))
    assert not any("grp=c" in r and "TPR" in r for r in gap_readings(ev))
    few = ev.too_few[(ev.too_few["group"] == "c") & (ev.too_few["metric"] == "tpr")]
    assert few["events"].tolist() == [3]
    assert any("TPR (sensitivity) has too few events to judge for grp=c (3 positives)" in r
               for r in too_few_readings(ev))
    assert ev.summary["findings"]["too_few_to_judge"]


def test_random_groups_give_no_headline_and_the_report_says_why():
    ev = _eval(_frame(seed=2))
    assert gap_readings(ev) == []
    assert (ev.findings["status"] == "not clear").all()
    html = fairfoundry.report.evaluation_report_html(ev)
    assert "No difference between groups is clear at 95%" in html


def test_without_bootstrap_the_ci_is_normal_and_said_so():
    ev = _eval(_frame(gap=0.3), bootstrap=0)
    assert "normal (Wald) interval" in ev.findings_info["test"]
    assert gap_readings(ev)


def test_degenerate_bootstrap_interval_falls_back_to_wilson_and_is_recorded(tmp_path):
    df = _frame(seed=3)
    df.loc[(df["grp"] == "c") & (df["y"] == 1), "p"] = 0.9  # TPR of c is exactly 1
    ev = _eval(df)
    row = ev.get("tpr", attribute="grp").set_index("group").loc["c"]
    assert row["estimate"] == 1.0 and row["ci_high"] == 1.0 and row["ci_low"] < 0.99
    unc = ev.summary["uncertainty"]["degenerate_ci"]
    assert unc["method"] == "wilson" and unc["cells"] >= 1 and "c: tpr" in unc["examples"]
    ev2 = _eval(df, degenerate_ci="clopper_pearson")
    lo2 = ev2.get("tpr", attribute="grp").set_index("group").loc["c", "ci_low"]
    n_pos = int(((df["grp"] == "c") & (df["y"] == 1)).sum())
    # Clopper-Pearson lower bound of x = n is (alpha / 2) ** (1 / n); Wilson's is n / (n + z^2)
    assert lo2 == pytest.approx(0.025 ** (1 / n_pos))
    assert row["ci_low"] == pytest.approx(n_pos / (n_pos + 1.959964 ** 2), rel=1e-5)
    ev.save(tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["uncertainty"]["degenerate_ci"]["method"] == "wilson"


def test_diff_to_overall_and_to_median_per_group():
    ev = _eval(_frame(seed=4))
    t = ev.by_group[ev.by_group["attribute"].isin(["grp", "overall"])]
    tpr = t[t["metric"] == "tpr"].set_index("group")["estimate"]
    d_o = t[t["metric"] == "tpr_diff_to_overall"].set_index("group")
    d_m = t[t["metric"] == "tpr_diff_to_median"].set_index("group")["estimate"]
    groups = ["a", "b", "c"]
    assert d_o.loc[groups, "estimate"].to_numpy() == pytest.approx(
        (tpr[groups] - tpr["overall"]).to_numpy())
    assert d_m[groups].to_numpy() == pytest.approx((tpr[groups] - tpr[groups].median()).to_numpy())
    assert (d_o["ci_low"] <= d_o["estimate"]).all() and (d_o["estimate"] <= d_o["ci_high"]).all()


def test_cluster_sequences_are_permuted_when_the_group_varies_within_patients():
    rng = np.random.default_rng(1)
    n = 60
    cl = rng.integers(0, 15, n)
    seg = np.sort(rng.integers(0, 3, n))
    bounds = np.r_[0, np.cumsum(np.bincount(seg, minlength=3))]
    row_order = rng.permutation(n)
    plan = ResamplePlan(bounds, cluster=cl, seed=0, row_order=row_order)
    assert plan.permutation_scheme == "cluster_sequences"

    def seqs(g):
        return {c: tuple(g[np.flatnonzero(cl == c)[np.argsort(row_order[cl == c])]])
                for c in np.unique(cl)}

    before, after = seqs(seg), seqs(plan.permuted_groups(3, seg))
    # every cluster receives the whole sequence of a cluster of the same size
    for size in set(map(len, before.values())):
        assert (sorted(v for v in before.values() if len(v) == size)
                == sorted(v for v in after.values() if len(v) == size))
    assert before != after


def test_evaluate_warns_and_records_the_scheme_when_groups_vary_within_patients():
    df = _frame(seed=5)
    flip = np.random.default_rng(0).random(len(df)) < 0.1
    df.loc[flip, "grp"] = "a"
    ev = _eval(df, permutations=50, bootstrap=0)
    assert any("varies within patient_id clusters" in w for w in ev.warnings)
    scheme = ev.summary["uncertainty"]["permutation_scheme"]
    assert scheme["grp"].startswith("cluster_sequences")
    res = evaluate_groups(df["y"], df["p"], threshold=0.5,
                          groups=pd.factorize(df["grp"], sort=True)[0],
                          group_names=["a", "b", "c"], metrics=["n", "tpr"],
                          cluster=df["patient_id"].to_numpy(), n_permutations=30)
    assert res.config["permutation_scheme"] == "cluster_sequences"


def test_val_fraction_split_by_patient_is_seeded_and_recorded():
    df = _frame(seed=6)
    ev = fairfoundry.evaluate(df, label="y", score="p", sensitive="grp", threshold="youden",
                              split_col=None, val_fraction=0.3, split_by="patient_id", seed=3)
    gen = ev.info["generated_split"]
    val_ids = set(map(int, gen["val_units"]))
    assert gen["n_val_units"] == round(0.3 * df["patient_id"].nunique())
    assert gen["n_val_rows"] == int(df["patient_id"].isin(val_ids).sum())
    assert ev.info["n_report_rows"] == len(df) - gen["n_val_rows"]
    assert ev.thresholds.loc[0, "chosen_on_split"] == "val"
    assert ev.config["val_fraction"] == 0.3 and ev.config["split_by"] == "patient_id"
    again = fairfoundry.evaluate(df, label="y", score="p", sensitive="grp", threshold="youden",
                                 split_col=None, val_fraction=0.3, split_by="patient_id", seed=3)
    assert again.info["generated_split"]["val_units"] == gen["val_units"]


def test_val_fraction_errors_are_clear():
    df = _frame(seed=7)
    with pytest.raises(FairfoundryError, match="val_fraction=1.5: must be in"):
        fairfoundry.evaluate(df, label="y", score="p", sensitive="grp", split_col=None,
                             val_fraction=1.5, split_by="patient_id")
    with pytest.raises(FairfoundryError, match="split_by="):
        fairfoundry.evaluate(df, label="y", score="p", sensitive="grp", split_col=None,
                             val_fraction=0.3, split_by="patient")


def test_standardised_maxt_controls_the_family_wise_error_under_the_null():
    # two cells: a well-behaved one and one whose successes are whole patients (wide null spread);
    # groups at random per patient -> any adjusted p < 0.05 in about 5 % of data sets at most
    from fairfoundry.evaluation._findings import permutation_maxt

    pairs = [(g, h, 0.0) for g in range(3) for h in range(g + 1, 3)]
    said = 0
    runs = 80
    for d in range(runs):
        rng = np.random.default_rng([7, d])
        sizes = rng.integers(1, 6, 90)
        pid = np.repeat(np.arange(90), sizes)
        n = pid.size
        groups = rng.choice(3, 90, p=[0.5, 0.3, 0.2])[pid].astype(np.int64)
        y = rng.random(n) < 0.4
        pred = rng.random(n) < 0.6
        patient_wide = (rng.random(90) < 0.3)[pid]
        cells = [(0, y, pred, 3), (0, np.ones(n, bool), patient_wide, 3)]
        padj, z = permutation_maxt(cells, [pairs, pairs], joint_codes=groups, decode=[np.arange(3)],
                                   cluster=pid, n_permutations=39, seed=d)
        assert padj.shape == z.shape == (6,) and (padj > 0).all() and (padj <= 1).all()
        said += bool((padj < 0.05).any())
    assert said <= 9  # P(Bin(80, 0.05) > 9) < 0.01
    # and a real difference in the well-behaved cell is found despite the wide one
    pred = np.where(groups == 2, False, pred)  # group 2's TPR 0 vs about 0.6
    cells = [(0, y, pred, 3), (0, np.ones(n, bool), patient_wide, 3)]
    padj, z = permutation_maxt(cells, [pairs, pairs], joint_codes=groups, decode=[np.arange(3)],
                               cluster=pid, n_permutations=39, seed=0)
    assert padj[1] < 0.05 and padj[2] < 0.05  # group 2 vs 0 and vs 1 in the first cell


def _two_labels(gap=0.0, seed=0):
    """Two labels (y planted, z null) sharing patients and groups."""
    df = _frame(seed=seed, gap=gap)
    rng = np.random.default_rng(seed + 100)
    z = rng.random(len(df)) < 0.35
    df["z"] = z.astype(int)
    df["pz"] = np.where(z, rng.random(len(df)) < 0.8, rng.random(len(df)) < 0.2) * 0.5 \
        + 0.5 * rng.random(len(df))
    return df


def test_a_prespecified_family_tests_only_its_cells_and_says_so(tmp_path):
    df = _two_labels(gap=0.15)
    kw = dict(label=["y", "z"], score=["p", "pz"])
    full = _eval(df, **kw)
    pre = _eval(df, **kw, headline_metrics=["TPR"], headline_labels=["y"])
    assert full.findings_info["family"]["prespecified"] is False
    fam = pre.findings_info["family"]
    assert fam == {"prespecified": True, "metrics": ["tpr"], "labels": ["y"],
                   "description": "pre-specified family: metrics tpr, labels y"}
    # 3 groups -> 3 pairs of the one cell; the exploratory family has every label and metric
    assert pre.findings_info["family_size"] == 3
    assert full.findings_info["family_size"] > 3 * pre.findings_info["family_size"]
    assert set(zip(pre.findings["label"], pre.findings["metric"], strict=True)) == {("y", "tpr")}
    # the same comparison is adjusted over fewer comparisons: never a larger adjusted p
    key = ["label", "attribute", "metric", "group_low", "group_high"]
    both = pre.findings.merge(full.findings, on=key, suffixes=("_pre", "_full"))
    assert not both.empty
    assert (both["p_adjusted_pre"] <= both["p_adjusted_full"] + 1e-12).all()
    assert any("of the pre-specified family" in r for r in gap_readings(pre))
    pre.save(tmp_path / "pre")
    summary = json.loads((tmp_path / "pre" / "summary.json").read_text())
    assert summary["findings"]["family"]["labels"] == ["y"]
    assert summary["config"]["headline_metrics"] == ["tpr"]


def test_a_prespecified_family_rejects_unknown_metrics_and_labels(tmp_path, cli):
    df = _frame()
    with pytest.raises(FairfoundryError, match="'auc': not a headline metric") as e:
        _eval(df, headline_metrics=["auc"])
    assert e.value.param == "headline_metrics"
    with pytest.raises(FairfoundryError, match="'yy': not an evaluated label"):
        _eval(df, headline_labels=["yy"])
    path = tmp_path / "p.csv"
    df.to_csv(path, index=False)
    res = cli("evaluate", path, "--label", "y", "--score", "p", "--sensitive", "grp",
              "--split-col", "none", "--threshold", "0.5", "--headline-metric", "auc",
              "--out", tmp_path / "out")
    assert res.code == 2, res
    assert "--headline-metric 'auc': not a headline metric" in res.err
    assert "Traceback" not in res.err
    assert not (tmp_path / "out").exists()
