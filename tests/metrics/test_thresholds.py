"""Thresholds: rules checked against brute force over scikit-learn's ROC / F1 (oracles)."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_curve

from fairfoundry._errors import FairfoundryError
from fairfoundry.metrics import ThresholdRule, choose_threshold, parse_threshold


def _data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1).round(2)  # rounded: many ties
    return y, s


def _rates(y, s, t):
    p = s >= t
    return p[y == 1].mean(), p[y == 0].mean()


@pytest.mark.parametrize(
    ("spec", "rule"),
    [(0.5, ThresholdRule("fixed", 0.5)), ("0.25", ThresholdRule("fixed", 0.25)),
     ("youden", ThresholdRule("youden")), ("Max-F1", ThresholdRule("max_f1")),
     ("sens=0.9", ThresholdRule("sensitivity", 0.9)), ("spec=0.95", ThresholdRule("specificity", 0.95)),
     ("specificity=0.8", ThresholdRule("specificity", 0.8))],
)
def test_parse_threshold(spec, rule):
    assert parse_threshold(spec) == rule
    assert parse_threshold(str(rule)) == rule  # round trip through the text form


@pytest.mark.parametrize("bad", ["yuden", "sens=1.5", "spec=0", "nan"])
def test_parse_threshold_rejects_bad_specs(bad):
    with pytest.raises(FairfoundryError):
        parse_threshold(bad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_youden_is_the_roc_point_with_max_j(seed):
    y, s = _data(seed)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    best_j = np.max((tpr - fpr)[1:])
    t = choose_threshold(y, s, "youden")
    tp, fp = _rates(y, s, t)
    assert tp - fp == pytest.approx(best_j, abs=1e-12)
    assert t in set(s)


@pytest.mark.parametrize("seed", [0, 3])
def test_max_f1_beats_every_candidate(seed):
    y, s = _data(seed)
    t = choose_threshold(y, s, "max_f1")
    best = f1_score(y, s >= t)
    assert all(f1_score(y, s >= c) <= best + 1e-12 for c in np.unique(s))


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95])
def test_target_sensitivity_is_the_most_specific_point_reaching_it(target):
    y, s = _data(4)
    t = choose_threshold(y, s, f"sens={target}")
    assert _rates(y, s, t)[0] >= target
    higher = np.unique(s)[np.unique(s) > t]
    assert higher.size == 0 or _rates(y, s, higher.min())[0] < target


@pytest.mark.parametrize("target", [0.8, 0.95])
def test_target_specificity_is_the_most_sensitive_point_keeping_it(target):
    y, s = _data(5)
    t = choose_threshold(y, s, f"spec={target}")
    assert 1 - _rates(y, s, t)[1] >= target
    lower = np.unique(s)[np.unique(s) < t]
    assert lower.size == 0 or 1 - _rates(y, s, lower.max())[1] < target


def test_specificity_one_with_overlapping_scores_predicts_nobody():
    y = np.array([0, 1, 0, 1])
    s = np.array([0.9, 0.2, 0.1, 0.3])
    t = choose_threshold(y, s, "spec=1.0")
    assert t > 0.9 and not (s >= t).any()


def test_single_class_cannot_choose_a_threshold():
    with pytest.raises(FairfoundryError, match="0 positives"):
        choose_threshold([0, 0, 0], [0.1, 0.5, 0.7], "youden")
    assert choose_threshold([0, 0], [0.1, 0.2], 0.3) == 0.3


def test_roc_points_match_sklearn_roc_curve():
    from fairfoundry.metrics import roc_points

    y, s = _data(6)
    thr, fpr, tpr = roc_points(y, s)
    ref_fpr, ref_tpr, ref_thr = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(thr, ref_thr[1:])
    np.testing.assert_allclose(fpr, ref_fpr[1:], atol=1e-12)
    np.testing.assert_allclose(tpr, ref_tpr[1:], atol=1e-12)
