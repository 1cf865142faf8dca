"""The batched calibration fit of many groups equals the per-group Newton fit."""

import numpy as np

from fairfoundry.metrics import evaluate_groups
from fairfoundry.metrics._kernel import _logistic_fit, segmented_logistic_fit


def _data(n=3000, groups=40, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    y = (rng.random(n) < 0.2 + 0.01 * (g % 7)).astype(np.int64)
    s = 1 / (1 + np.exp(-(1.4 * y - 1.0 + 0.05 * g + rng.normal(0, 1, n))))
    return y, s, g


def test_segmented_fit_equals_one_fit_per_segment():
    y, s, g = _data()
    x = np.log(s) - np.log1p(-s)
    a, b = segmented_logistic_fit(x, y.astype(float), None, g, 40)
    for k in range(40):
        m = g == k
        a1, b1 = _logistic_fit(x[m], y[m].astype(float), None, np.zeros(1), np.ones(1))
        np.testing.assert_allclose([a[k], b[k]], [a1[0], b1[0]], rtol=1e-9, atol=1e-10)
    # weights and a segment left out
    w = np.random.default_rng(1).integers(0, 3, y.size).astype(float)
    fit = np.ones(40, dtype=bool)
    fit[3] = False
    a, b = segmented_logistic_fit(x, y.astype(float), w, g, 40, fit=fit)
    assert np.isnan(a[3]) and np.isnan(b[3])
    m = g == 5
    a1, b1 = _logistic_fit(x[m], y[m].astype(float), w[m][None, :], np.zeros(1), np.ones(1))
    np.testing.assert_allclose([a[5], b[5]], [a1[0], b1[0]], rtol=1e-9, atol=1e-10)


def test_engine_calibration_of_many_groups_matches_each_group_alone():
    y, s, g = _data(groups=30, seed=2)
    names = [f"g{k}" for k in range(30)]
    res = evaluate_groups(y, s, threshold=0.5, groups=g, group_names=names,
                          metrics=["n", "positives", "calibration_slope", "calibration_intercept"])
    pg = res.per_group.set_index(["group", "metric"])["estimate"]
    for k in (0, 11, 29):
        m = g == k
        alone = evaluate_groups(y[m], s[m], threshold=0.5, groups=np.zeros(m.sum(), int),
                                group_names=["a"], metrics=["n", "positives",
                                                            "calibration_slope"])
        np.testing.assert_allclose(pg[(f"g{k}", "calibration_slope")],
                                   alone.estimate("calibration_slope", "a"), rtol=1e-9)


def test_single_class_group_has_no_calibration_fit():
    y, s, g = _data(groups=5, seed=3)
    y[g == 2] = 0
    res = evaluate_groups(y, s, threshold=0.5, groups=g, group_names=list("abcde"),
                          metrics=["n", "positives", "calibration_slope"])
    row = res.per_group[(res.per_group["group"] == "c")
                        & (res.per_group["metric"] == "calibration_slope")].iloc[0]
    assert np.isnan(row["estimate"]) and row["reason"] == "group has no positives"
    assert np.isfinite(res.estimate("calibration_slope", "a"))


def test_integer_cumulative_sums_give_the_float64_statistics_exactly():
    """uint8 counts take the exact int32 cumulative sums; float64 weights the float path: the
    rank statistics agree to the last bit (all partial sums are integers either way)."""
    from fairfoundry.metrics._kernel import build_layout, segment_stats

    y, s, g = _data(n=5000, groups=3, seed=5)
    s = np.round(s, 2)  # ties
    lay = build_layout(y, s, g, 3, threshold=0.5)
    W = np.random.default_rng(0).multinomial(5000, np.full(5000, 1 / 5000), size=6)
    W8 = W.astype(np.uint8)[:, lay.order]
    need = {"auc", "ap"}
    for seg in lay.segments:
        a = segment_stats(seg, W8[:, seg.start:seg.stop], lay, need=need, integer_weights=True)
        b = segment_stats(seg, W8[:, seg.start:seg.stop].astype(np.float64), lay, need=need)
        for k in ("auc", "ap", "tp", "fp", "n", "pos"):
            np.testing.assert_array_equal(a[k], b[k])
