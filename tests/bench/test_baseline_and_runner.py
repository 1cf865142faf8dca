"""`fairfoundry experiment baseline-audit` end to end, and the known-bias runner over seeds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")


def test_baseline_audit_on_the_bundled_nih_xrays(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRFOUNDRY_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "baseline"
    r = cli("experiment", "baseline-audit", "--out", out, "--bootstrap", "20", "--no-emissions", "--label",
            "Infiltration", "--label", "Atelectasis")
    assert r.code == 0, r
    from fairfoundry.bench import BASELINE_FILES

    for f in BASELINE_FILES:
        assert (out / f).exists(), f
    m = pd.read_csv(out / "manifest.csv")
    assert len(m) == 300 and set(m["split"]) == {"train", "val", "test"}
    assert m.groupby("patient_id")["split"].nunique().max() == 1  # patient-level split
    probe = pd.read_csv(out / "attribute_probe.csv").set_index("attribute")
    assert set(probe.index) == {"sex", "age"}
    assert ((probe["ci_low"] <= probe["auc"]) & (probe["auc"] <= probe["ci_high"])).all()
    pg = pd.read_csv(out / "per_group.csv")
    assert set(pg["label"]) == {"Infiltration", "Atelectasis"}
    assert {"female", "male", "20-39", "80+"} <= set(pg["group"])
    assert (pg.loc[pg["attribute"] == "overall", "n"] == (m["split"] == "test").sum()).all()
    # a value resting on fewer than 10 of its own events is NaN with the reason, never "0 [0, 0]"
    from fairfoundry.bench._baseline import MIN_EVENTS

    few_auc = pg[["positives", "negatives"]].min(axis=1) < MIN_EVENTS
    assert few_auc.any()  # 61 test patients: some age groups are tiny
    assert pg.loc[few_auc, ["auc", "auc_ci_low", "auc_ci_high"]].isna().all().all()
    assert pg.loc[few_auc, "note"].str.contains("AUC: too few to judge").all()
    assert pg.loc[~few_auc, "auc"].notna().all()
    assert pg.loc[pg["positives"] < MIN_EVENTS, "tpr"].isna().all()
    html = (out / "baseline_audit.html").read_text()
    assert "Attribute probe" in html and "fairfoundry-tiny" in html and "verdict (permutation test)" in html
    assert "AUC [95% CI]" in html and "test images" in html and "too few to judge" in html
    assert "auc_ci_low" not in html and "[0.000, 0.000]" not in html
    assert html.count("<img") == 1 + 2  # attribute probe + one forest plot per label
    for lab in ("Infiltration", "Atelectasis"):
        assert (out / "figures" / f"per_group_auc_{lab}.svg").read_text().lstrip().startswith("<?xml")
    assert json.loads((out / "experiment.json").read_text())["seed"] == 0
    assert (out / "run" / "model_card.md").exists()
    r = cli("experiment", "baseline-audit", "--out", out)
    assert r.code == 2 and "--overwrite" in r.err


def test_knownbias_runner_pairs_methods_with_erm_by_seed():
    from fairfoundry.bench import run_knownbias_benchmark

    runs, summary = run_knownbias_benchmark(["erm", ("groupdro", {"eta": 0.1})], seeds=[0, 1], epochs=4,
                                            data_kwargs={"n": 1500, "d": 8})
    assert len(runs) == 4 and set(runs["seed"]) == {0, 1}
    erm = summary.set_index("method").loc["erm"]
    assert erm["auc_vs_erm"] == 0.0 and erm["seeds"] == 2
    dro = summary.set_index("method").loc["groupdro(eta=0.1)"]
    diffs = (runs[runs["method"] == "groupdro(eta=0.1)"].set_index("seed")["equalized_odds_difference"]
             - runs[runs["method"] == "erm"].set_index("seed")["equalized_odds_difference"])
    assert dro["equalized_odds_difference_vs_erm"] == pytest.approx(diffs.mean())
    assert dro["equalized_odds_difference_vs_erm_ci_low"] <= diffs.mean() <= dro["equalized_odds_difference_vs_erm_ci_high"]
    assert np.isfinite(summary["auc"]).all()


def test_image_benchmark_measures_the_shortcut_gap():
    from fairfoundry.bench import run_knownbias_image_benchmark

    runs, summary = run_knownbias_image_benchmark(methods=("erm", "resample-group-label"), seeds=[0], epochs=4)
    assert len(runs) == 2 and set(summary["method"]) == {"erm", "resample-group-label"}
    assert (runs["val_auc_marked"] > runs["test_auc_marked"] + 0.15).all()  # the marker did the work
    assert np.allclose(runs["shortcut_gap"], runs["val_auc_marked"] - runs["test_auc_marked"])
