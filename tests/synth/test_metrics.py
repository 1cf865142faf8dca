"""QC statistics: PRDC against the authors' package, coverage against its closed form, FD, KID, Wilson nulls."""

from __future__ import annotations

import numpy as np
import pytest

from fairfoundry.synth import (
    copy_rate,
    expected_coverage,
    frechet_distance,
    kernel_inception_distance,
    nn_distance_ratio,
    prdc,
    wilson_interval,
)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_matches_the_reference_package(k):
    oracle = pytest.importorskip("prdc")
    rng = np.random.default_rng(k)
    real, fake = rng.normal(size=(300, 12)), rng.normal(size=(250, 12)) * 1.2 + 0.25
    ours = prdc(real, fake, k=k)
    ref = oracle.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    for key in ("precision", "recall", "density", "coverage"):
        assert abs(ours[key] - float(ref[key])) <= 1e-6, key
    assert 0 < ours["precision"] < 1 and 0 < ours["coverage"] < 1  # a non-trivial case


def test_coverage_of_one_distribution_is_its_closed_form_expectation():
    rng = np.random.default_rng(0)
    n, k = 800, 5
    covs = [prdc(rng.normal(size=(n, 8)), rng.normal(size=(n, 8)), k=k)["coverage"] for _ in range(3)]
    expected = expected_coverage(n, n, k)
    assert abs(expected - (1 - 0.5 ** k)) < 0.01  # the large-sample limit 1 - 2^-k
    for c in covs:
        assert abs(c - expected) <= 0.02
    # density is 1 in expectation under the same distribution (Naeem et al. 2020)
    d = prdc(rng.normal(size=(n, 8)), rng.normal(size=(n, 8)), k=k)["density"]
    assert abs(d - 1.0) < 0.1


def test_prdc_separates_a_shifted_distribution_and_is_nan_for_tiny_sets():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(400, 8))
    far = prdc(real, rng.normal(size=(400, 8)) + 3.0)
    assert far["precision"] < 0.05 and far["coverage"] < 0.05
    assert np.isnan(prdc(real[:3], real[3:6], k=5)["coverage"])


def test_frechet_distance_of_gaussians_is_the_closed_form():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3)) * 2.0 + [1.0, 0.0, 0.0]
    # N(0, I) vs N(mu, 4I): |mu|^2 + tr(I + 4I - 2*2I) = 1 + 3
    assert frechet_distance(a, b) == pytest.approx(4.0, abs=0.1)
    assert abs(frechet_distance(a[:10000], a[10000:])) < 0.01
    assert np.isnan(frechet_distance(a[:1], b[:5]))


def test_kid_is_unbiased_under_the_null_and_positive_under_a_shift():
    rng = np.random.default_rng(3)
    null = [kernel_inception_distance(rng.normal(size=(200, 16)), rng.normal(size=(200, 16)), n_subsets=5,
                                      seed=s)[0] for s in range(20)]
    se = np.std(null, ddof=1) / np.sqrt(len(null))
    assert abs(np.mean(null)) < 3 * se + 1e-4  # mean of the unbiased estimator is 0 under the null
    shifted, _ = kernel_inception_distance(rng.normal(size=(200, 16)), rng.normal(size=(200, 16)) + 0.5)
    assert shifted > 10 * max(abs(np.mean(null)), se)


def test_nn_distance_ratio_flags_copies_and_not_fresh_points():
    rng = np.random.default_rng(4)
    train = rng.normal(size=(200, 32))
    assert copy_rate(train[:50], train) == 1.0
    assert np.all(nn_distance_ratio(train[:5], train) < 1e-6)  # exact copies (up to round-off)
    assert copy_rate(rng.normal(size=(100, 32)), train) <= 0.05


def test_wilson_interval_covers_at_its_nominal_rate():
    rng = np.random.default_rng(5)
    for p, n in [(0.1, 30), (0.5, 20), (0.9, 50)]:
        hits = 0
        draws = rng.binomial(n, p, size=2000)
        for x in draws:
            lo, hi = wilson_interval(int(x), n)
            hits += lo <= p <= hi
        assert 0.92 <= hits / len(draws) <= 0.98
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert all(np.isnan(wilson_interval(0, 0)))
