"""The named studies run end to end on the bundled NIH X-rays and the real HAM10000 images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("duckdb")

from fairfoundry._errors import FairfoundryError
from fairfoundry.bench import (
    STUDIES,
    StudyOptions,
    ham10000_sites,
    paired_differences,
    run_study,
    simultaneous,
    spread_over_seeds,
)
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


def test_ham10000_sites_from_its_own_metadata(data_dir):
    sites = ham10000_sites(data_dir / "ham10000_images_224" / "metadata.csv")
    assert set(sites["country"]) == {"AUS", "AUT"} and len(sites) == 480  # the 6 'external' images are dropped
    assert sites["malignant"].isin([0, 1]).all() and sites["path"].map(lambda p: p.startswith("/")).all()


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


def test_paired_difference_verdict_false_positive_rate_under_the_null():
    # null simulation of the studies' "differs" verdict (paired t-interval over 5 seeds): two
    # methods with equal means and a shared seed effect -> "differs" in ~5 % of 400 grids
    from fairfoundry.bench import paired_differences

    rng = np.random.default_rng(1)
    rows = []
    for rep in range(400):
        for seed in range(5):
            shared = rng.normal(0.7, 0.05)  # the seed's split / initialisation, common to both
            for method in ("erm", "reweigh"):
                rows.append({"cell_id": f"{rep}-{seed}-{method}", "dataset": f"d{rep}", "encoder": "e",
                             "adaptation": "a", "mitigation": method, "label_fraction": 1.0, "seed": seed,
                             "label": "y", "attribute": "overall", "group": "overall", "metric": "auc",
                             "estimate": shared + rng.normal(0, 0.02), "kind": "group"})
    d = paired_differences(pd.DataFrame(rows), metric="auc")
    assert len(d) == 400 and (d["n_pairs"] == 5).all()
    assert 0.025 <= d["differs"].mean() <= 0.08


def test_simultaneous_verdicts_keep_the_family_wise_rate(load_benchmark):
    # the null simulation of benchmarks/sim_study_verdicts.py at a smaller size: 5 equal adaptations
    # vs a reference, 3 metrics, 3 seeds; a report states a false "differs" when any of its 15 does
    r = load_benchmark("sim_study_verdicts").rates(k=5, metrics=3, seeds=3, reps=400, seed=1)
    assert r["family"] == 15
    assert r["simultaneous"] <= 0.07  # Bonferroni: at most 5 % (up to simulation noise)
    assert r["plain"] > 0.3  # 15 plain 95 % intervals: the rate the fix removes
    d = paired_differences(pd.DataFrame([
        {"dataset": "d", "encoder": "e", "adaptation": a, "mitigation": "erm", "label_fraction": 1.0, "seed": s,
         "label": "y", "attribute": "sex", "group": "", "metric": "m", "estimate": v, "kind": "summary"}
        for a, vals in (("ref", (0.1, 0.2, 0.15)), ("x", (0.3, 0.35, 0.2))) for s, v in enumerate(vals)]),
        metric="m", attribute="sex", group=None, kind="summary", by="adaptation", reference="ref")
    wide = simultaneous(d, 15)
    assert (wide["sim_ci_low"] < wide["ci_low"]).all() and (wide["sim_ci_high"] > wide["ci_high"]).all()
    assert simultaneous(d, 1)[["sim_ci_low", "sim_ci_high"]].to_numpy() == pytest.approx(
        d[["ci_low", "ci_high"]].to_numpy())  # a family of one is the plain interval
