import json

import pandas as pd


def test_quickstart_runs_the_offline_pipeline_on_bundled_real_data(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRFOUNDRY_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "qs"
    res = cli("quickstart", "--out", out, "--bootstrap", "5")
    assert res.code == 0, res
    # step 1: the real CheXNet predictions, thresholds chosen on val, test reported
    summary = json.loads((out / "evaluate" / "summary.json").read_text())
    assert "report.html" in res.out and (out / "evaluate" / "report.html").stat().st_size > 10_000
    ev = pd.read_csv(out / "evaluate" / "evaluation.csv")
    assert ev["label"].nunique() >= 14 and {"sex", "age", "view"} <= set(ev["attribute"])
    assert "val" in json.dumps(summary.get("thresholds", summary))
    # step 2: bundled encoder -> probe with and without mitigation -> per-sample predictions
    comp = pd.read_csv(out / "fit" / "comparison.csv")
    assert set(comp["method"]) == {"erm", "reweigh", "groupdro"}
    preds = pd.read_parquet(out / "fit" / "erm-seed0" / "predictions.parquet")
    assert len(preds) == 300 and set(preds["split"]) == {"train", "val", "test"}
    assert (out / "fit" / "erm-seed0" / "model_card.md").exists()
    # a second run without --overwrite must refuse and keep the user's outputs
    again = cli("quickstart", "--out", out, "--bootstrap", "5")
    assert again.code == 2 and "--overwrite" in again.err
    assert (out / "evaluate" / "report.html").exists()
