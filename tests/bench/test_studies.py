"""The named studies run end to end on the bundled NIH X-rays and the real HAM10000 images."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("duckdb")

from fairfoundry._errors import FairfoundryError
from fairfoundry.bench import STUDIES, StudyOptions, ham10000_sites, run_study, spread_over_seeds
from fairfoundry.cli import main

FAST = {"bootstrap": 20, "epochs": 5, "seeds": (0, 1)}


def test_every_study_is_a_command(capsys):
    assert set(STUDIES) == {"label-scarcity", "peft-vs-full", "cross-site", "zoo-benchmark"}
    assert main(["experiment", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in STUDIES)


def test_sd_interval_covers_at_its_nominal_rate():
    # null simulation of the chi-square interval of the spread over seeds (normal values, 5 seeds)
    rng = np.random.default_rng(0)
    rows = []
    for rep in range(400):
        for seed, v in enumerate(rng.normal(0.1, 0.05, size=5)):
            rows.append({"cell_id": f"{rep}-{seed}", "dataset": f"d{rep}", "encoder": "e", "adaptation": "a",
                         "mitigation": "erm", "label_fraction": 1.0, "seed": seed, "label": "y",
                         "attribute": "sex", "group": "", "metric": "auc_gap", "estimate": v, "kind": "summary"})
    spread = spread_over_seeds(pd.DataFrame(rows), metric="auc_gap", attribute="sex")
    covered = ((spread["sd_ci_low"] <= 0.05) & (0.05 <= spread["sd_ci_high"])).mean()
    assert 0.92 <= covered <= 0.98


def test_cross_site_on_real_ham10000(tmp_path, data_dir):
    meta = data_dir / "ham10000_images_224" / "metadata.csv"
    sites = ham10000_sites(meta)
    assert set(sites["country"]) == {"AUS", "AUT"} and len(sites) == 480  # the 6 'external' images are dropped
    out = run_study("cross-site", tmp_path / "cs", options=StudyOptions(manifest=str(meta), **FAST))
    study = json.loads((out / "study.json").read_text())
    assert study["cells"] == 4 * 2 and not study["failed"]
    assert any("trained in AUS: AUC in AUT minus AUC on held-out AUS" in s for s in study["findings"])
    gen = pd.read_csv(out / "tables" / "generalisation_gap.csv")
    assert set(zip(gen["train"], gen["test"], strict=True)) == {("AUS", "AUT"), ("AUT", "AUS")}
    # the country is recorded in every manifest, so the audit's geography applies
    man = pd.read_csv(out / "inputs" / "train_AUS_test_AUT.csv")
    assert set(man.loc[man["split"] == "test", "country"]) == {"AUT"}
    assert set(man.loc[man["split"] == "train", "country"]) == {"AUS"}
    html = (out / "report.html").read_text()
    assert "What the data shows" in html and "data:image/png;base64," in html


def test_label_scarcity_reports_the_spread_and_the_cells_it_could_not_fit(tmp_path):
    out = run_study("label-scarcity", tmp_path / "ls",
                    options=StudyOptions(fractions=(0.01, 0.5, 1.0), **FAST))
    study = json.loads((out / "study.json").read_text())
    assert study["cells"] == 3 * 2
    spread = pd.read_csv(out / "tables" / "auc_gap_spread_sex.csv")
    assert set(spread["label_fraction"]) <= {0.01, 0.5, 1.0} and 1.0 in set(spread["label_fraction"])
    # 1 % of ~110 training patients is one patient: one class only, recorded, never a crash
    assert any("could not be fitted" in s for s in study["findings"])
    assert any("too few to judge" in s for s in study["findings"])


def test_zoo_benchmark_with_a_random_init_baseline(tmp_path):
    out = run_study("zoo-benchmark", tmp_path / "zoo", options=StudyOptions(
        encoders=("fairfoundry-tiny", "fairfoundry-tiny@random"), **FAST))
    auc = pd.read_csv(out / "tables" / "auc.csv")
    assert set(auc["encoder"]) == {"fairfoundry-tiny", "fairfoundry-tiny@random"}
    study = json.loads((out / "study.json").read_text())
    assert any("too few datasets to rank" in s for s in study["findings"])


def test_study_bad_input(tmp_path, capsys):
    with pytest.raises(FairfoundryError, match="needs --manifest"):
        run_study("cross-site", tmp_path / "x", options=StudyOptions(**FAST))
    with pytest.raises(FairfoundryError, match="at least two seeds"):
        run_study("label-scarcity", tmp_path / "y", options=StudyOptions(seeds=(0,)))
    with pytest.raises(FairfoundryError, match="unknown study"):
        run_study("label-scarcty", tmp_path / "z")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert main(["experiment", "label-scarcity", "--out", str(tmp_path / "full"), "--seeds", "2"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
