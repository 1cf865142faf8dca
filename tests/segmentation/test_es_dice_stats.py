"""ES-Dice summaries in the bootstrap: each replicate is the score of its explicit resample, and
the permutation test keeps its error rate under the null (equal Dice in every group)."""

import numpy as np
import pytest

from fairfoundry.metrics import evaluate_group_means
from fairfoundry.segmentation import ES_SCORES, es_dice_fairmedfm, es_dice_fairseg


def _run(d, g, **kw):
    return evaluate_group_means(d, groups=g, group_names=["a", "b", "c"], metric_names=["dice"],
                                scores=ES_SCORES, score_extremes={k: "low" for k in ES_SCORES},
                                **kw)


def test_each_replicate_is_the_es_dice_of_its_resample():
    rng = np.random.default_rng(0)
    n = 90
    g = rng.integers(0, 3, n)
    d = np.clip(rng.normal(0.8 - 0.05 * g, 0.1), 0, 1)
    pid = g * 1000 + rng.integers(0, 15, n)
    r = _run(d, g, cluster=pid, n_bootstrap=30, seed=4)
    for b in (0, 11, 29):
        rows = r.replicate_rows(b)
        assert r.replicates["es_dice_fairmedfm"][b] == pytest.approx(
            es_dice_fairmedfm(d[rows], groups=g[rows]))
        assert r.replicates["es_dice_fairseg"][b] == pytest.approx(
            es_dice_fairseg(d[rows], groups=g[rows]))
    s = r.summary.set_index("metric")
    assert s.loc["es_dice_fairmedfm", "estimate"] == pytest.approx(es_dice_fairmedfm(d, groups=g))


def test_permutation_test_of_es_dice_under_the_null():
    rng = np.random.default_rng(3)
    sims, hits = 60, {k: 0 for k in ES_SCORES}
    for _ in range(sims):
        g = rng.integers(0, 3, 150)
        d = np.clip(rng.normal(0.8, 0.1, 150), 0, 1)  # same Dice distribution in every group
        r = _run(d, g, n_permutations=49, seed=int(rng.integers(1 << 30)))
        for k in ES_SCORES:
            hits[k] += r.summary.set_index("metric").loc[k, "p_value"] <= 0.05
    assert all(h / sims <= 0.13 for h in hits.values()), hits  # 5 % expected
