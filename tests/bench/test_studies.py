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


def test_simultaneous_verdicts_keep_the_family_wise_rate():
    # null simulation of a peft-vs-full report: 5 adaptations vs a reference, 3 metrics, 3 seeds, all
    # equal in distribution; a report states a false "differs" when any of its 15 verdicts does
    rng = np.random.default_rng(1)
    adaptations = ["ref", "a", "b", "c", "d", "e"]
    any_plain = any_sim = 0
    reps = 400
    for _rep in range(reps):
        rows = []
        for attr in ("overall", "sex", "age"):
            shared = rng.normal(0, 0.05, size=3)  # seed effects every adaptation shares (same split)
            for ad in adaptations:
                for seed in range(3):
                    rows.append({"dataset": "d", "encoder": "e", "adaptation": ad, "mitigation": "erm",
                                 "label_fraction": 1.0, "seed": seed, "label": "y", "attribute": attr,
                                 "group": "", "metric": "m", "estimate": shared[seed] + rng.normal(0, 0.03),
                                 "kind": "summary"})
        res = pd.DataFrame(rows)
        diffs = [paired_differences(res, metric="m", attribute=a, group=None, kind="summary", by="adaptation",
                                    reference="ref") for a in ("overall", "sex", "age")]
        family = sum(len(d) for d in diffs)
        assert family == 15
        any_plain += any(d["differs"].any() for d in diffs)
        any_sim += any(simultaneous(d, family)["differs"].any() for d in diffs)
    print(f"any false differs: {any_plain / reps:.3f} plain, {any_sim / reps:.3f} simultaneous")
    assert any_sim / reps <= 0.07  # Bonferroni: at most 5 % (up to simulation noise)
    assert any_plain / reps > 0.3  # 15 plain 95 % intervals: the rate the fix removes
    d = simultaneous(diffs[0], 15)
    assert (d["sim_ci_low"] <= d["ci_low"]).all() and (d["sim_ci_high"] >= d["ci_high"]).all()
