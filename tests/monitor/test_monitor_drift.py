"""Drift statistics: their null error rates are what they claim; planted drift is seen."""

from __future__ import annotations

import numpy as np
import pytest

from fairfoundry.monitor import (
    domain_classifier_auc,
    jensen_shannon,
    mix_drift,
    psi,
    score_drift,
    wasserstein_normed,
)


def test_ks_verdict_false_positive_rate_is_nominal_on_small_references():
    rng = np.random.default_rng(0)
    flags = [score_drift(rng.beta(2, 5, 500), rng.beta(2, 5, 400))["drift"] for _ in range(400)]
    assert score_drift(rng.beta(2, 5, 500), rng.beta(2, 5, 400))["method"] == "ks"
    rate = np.mean(flags)
    assert 0.02 <= rate <= 0.085  # nominal 5 %; binomial 99 % range for 400 draws


def test_large_reference_verdicts_rarely_fire_under_the_null_and_see_a_shift():
    rng = np.random.default_rng(1)
    null = [score_drift(rng.beta(2, 5, 5000), rng.beta(2, 5, 2000)) for _ in range(100)]
    assert null[0]["method"] == "wasserstein"
    assert np.mean([d["drift"] for d in null]) == 0.0
    assert np.mean([d["psi"] > 0.1 for d in null]) == 0.0
    shifted = score_drift(rng.beta(2, 5, 5000), rng.beta(2.6, 5, 2000))
    assert shifted["drift"] == 1.0 and shifted["psi"] > 0.02


def test_statistics_against_scipy_and_definitions():
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 2, 3000), rng.normal(0.5, 2, 3000)
    assert wasserstein_normed(a, b) == pytest.approx(wasserstein_distance(a, b) / a.std())
    assert psi(a, a) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert jensen_shannon([3, 3], [5, 5]) == pytest.approx(0.0)


def test_mix_drift_null_and_shift():
    rng = np.random.default_rng(3)
    ref = rng.multinomial(800, [0.6, 0.4])
    flags = [mix_drift(ref, rng.multinomial(800, [0.6, 0.4]))["drift"] for _ in range(300)]
    # chi-squared against estimated reference shares is conservative-to-nominal here
    assert np.mean(flags) <= 0.12
    big = rng.multinomial(5000, [0.6, 0.4])
    assert mix_drift(big, rng.multinomial(2000, [0.6, 0.4]))["drift"] == 0.0
    assert mix_drift(big, rng.multinomial(2000, [0.2, 0.8]))["drift"] == 1.0
    assert mix_drift([50, 50, 0], [40, 40, 5])["mix_chi2_p"] == 0.0  # a group never seen


def test_domain_classifier_auc_null_near_half_and_shift_high():
    rng = np.random.default_rng(4)
    null = [domain_classifier_auc(rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), seed=s)
            for s in range(10)]
    assert abs(np.mean(null) - 0.5) < 0.04 and max(null) < 0.6
    shifted = rng.normal(size=(300, 8))
    shifted[:, 0] += 0.8
    assert domain_classifier_auc(rng.normal(size=(300, 8)), shifted) > 0.65


def test_embedding_drift_per_window_and_group():
    import pandas as pd

    from fairfoundry.monitor import MonitorConfig, evaluate_windows

    rng = np.random.default_rng(5)
    n = 1200
    grp = np.where(np.arange(n) % 2, "A", "B")
    emb = rng.normal(size=(n, 6))
    emb[(np.arange(n) >= 800) & (grp == "B"), 0] += 1.0  # window 2: group B's images change
    preds = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "patient_id": None,
                          "time": np.arange(n, dtype=float), "grp": grp,
                          "score_E": rng.uniform(size=n)})
    labels = pd.DataFrame(columns=["sample_id", "label", "y", "time"])
    cfg = MonitorConfig.from_dict({"windows": {"size": 400}, "bootstrap": 0, "simulations": 0})
    res = evaluate_windows(preds, labels, labels_names=["E"], attributes=["grp"], config=cfg,
                           embeddings=emb)
    e = res[(res["metric"] == "embedding_auc") & (res["attribute"] == "grp")].set_index(
        ["window", "group"])["estimate"]
    assert e[(2, "B")] > 0.7 and e[(2, "A")] < 0.6 and e[(1, "B")] < 0.6
    flags = res[(res["metric"] == "embedding_drift") & (res["attribute"] == "grp")
                & (res["window"] >= 1)]
    assert flags.set_index(["window", "group"])["estimate"].to_dict() == {
        (1, "A"): 0.0, (1, "B"): 0.0, (2, "A"): 0.0, (2, "B"): 1.0}


def test_sorted_reference_gives_the_same_numbers_as_scipy():
    # the fast path of the windows (reference sorted once) against scipy on the raw samples
    from fairfoundry.monitor._drift import SortedReference, score_drift

    rng = np.random.default_rng(9)
    for n_ref, n_cur in ((300, 200), (12000, 11000), (30000, 800)):
        r = np.round(rng.beta(2, 5, n_ref), 3)  # rounded: ties across the two samples
        c = np.round(rng.beta(2.3, 5, n_cur), 3)
        slow = score_drift(r, c)
        fast = score_drift(SortedReference(r), c)
        for k in ("psi", "ks_p", "wasserstein"):
            assert fast[k] == pytest.approx(slow[k], rel=1e-9, abs=1e-12), (n_ref, n_cur, k)
        assert fast["method"] == slow["method"] and fast["drift"] == slow["drift"]
