"""Each mitigation does what its paper says (issue 18): Sinkhorn divergence, GroupDRO, EO thresholds."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fairfoundry.mitigate import sinkhorn_distance  # noqa: E402


def test_sinkhorn_divergence_is_zero_on_identical_samples_and_w2_squared_on_a_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(64, generator=g, dtype=torch.float64)
    assert abs(float(sinkhorn_distance(a, a))) < 1e-9  # the old <P, C> gave 8.5e-4 here
    for d in (0.01, 0.1, 0.3):  # translation: S(a, a + d) = d^2 = W2^2 exactly
        assert float(sinkhorn_distance(a, a + d)) == pytest.approx(d ** 2, rel=1e-3)
    # no gradient when the group already matches (the biased cost's gradient shrank the spread)
    x = a.clone().requires_grad_(True)
    sinkhorn_distance(x, a).backward()
    assert float(x.grad.abs().max()) < 1e-8


def test_sinkhorn_divergence_matches_geomloss_oracle_value_and_gradient():
    geomloss = pytest.importorskip("geomloss")
    g = torch.Generator().manual_seed(1)
    a = torch.rand(40, 1, generator=g, dtype=torch.float64) ** 2
    b = 0.3 + 0.5 * torch.rand(30, 1, generator=g, dtype=torch.float64)
    xa = a.clone().requires_grad_(True)
    ours = sinkhorn_distance(xa, b, blur=0.05, iters=100)
    ours.backward()
    ya = a.clone().requires_grad_(True)
    ref = geomloss.SamplesLoss("sinkhorn", p=2, blur=0.05, scaling=0.99)(ya, b)
    ref.backward()
    # geomloss's cost is |x - y|^2 / 2: same divergence, half the value
    assert float(ours.detach()) == pytest.approx(2 * float(ref.detach()), rel=2e-3)
    np.testing.assert_allclose(xa.grad.numpy(), 2 * ya.grad.numpy(), atol=2e-4)


class _Trainer:
    """The part of a Trainer that GroupDRO reads: whole train columns."""

    def __init__(self, group, y):
        self.train_data = object()
        self._cols = {"group": torch.as_tensor(group), "y": torch.as_tensor(y, dtype=torch.float32)}

    def column(self, key):
        return self._cols[key]


def test_groupdro_adjustment_upweights_small_groups_by_c_over_sqrt_n():
    from fairfoundry.mitigate import GroupDRO

    counts = np.array([400, 100, 25])  # group sizes in training
    group = np.repeat(np.arange(3), counts)
    tr = _Trainer(group, np.zeros(len(group)))
    C, eta = 2.0, 0.5
    dro = GroupDRO(eta=eta, by="group", adjustment=C)
    dro.n_groups = 3
    dro.on_fit_start(tr)
    batch = {"group": torch.tensor([0, 0, 1, 1, 2, 2]), "y": torch.zeros(6)}
    per = torch.full((6,), 0.7)  # equal batch losses: only the adjustment separates the groups
    loss = dro.loss(None, batch, {}, per, torch.ones(6))
    expected = np.exp(eta * (0.7 + C / np.sqrt(counts)))
    expected /= expected.sum()
    np.testing.assert_allclose(dro.q.numpy(), expected, rtol=1e-5)
    assert dro.q[2] > dro.q[1] > dro.q[0]  # smallest group most
    assert float(loss) == pytest.approx(0.7, rel=1e-5)  # sum_g q_g R_g with sum_g q_g = 1
    # without the adjustment equal losses leave the weights uniform
    plain = GroupDRO(eta=eta, by="group")
    plain.n_groups = 3
    plain.on_fit_start(tr)
    plain.loss(None, batch, {}, per, torch.ones(6))
    np.testing.assert_allclose(plain.q.numpy(), np.full(3, 1 / 3), rtol=1e-6)


def test_groupdro_loss_is_not_renormalised_and_negative_codes_are_in_no_group():
    from fairfoundry.mitigate import GroupDRO

    dro = GroupDRO(eta=1.0, by="group", n_groups=2)
    dro.on_fit_start(_Trainer(np.array([0, 0, 1, 1]), np.zeros(4)))
    # group 1 absent from the batch; the -1 sample (unseen / excluded) must not count as group 0
    batch = {"group": torch.tensor([0, 0, -1]), "y": torch.zeros(3)}
    per = torch.tensor([0.2, 0.4, 50.0])
    loss = dro.loss(None, batch, {}, per, torch.ones(3))
    q0 = np.exp(0.3) / (np.exp(0.3) + 1.0)
    assert float(dro.q[0]) == pytest.approx(q0, rel=1e-5)
    assert float(loss) == pytest.approx(q0 * 0.3, rel=1e-5)  # not 0.3 (renormalised), no 50 inside


def test_unknown_group_is_excluded_from_fairness_terms_by_default():
    from fairfoundry.mitigate import GroupDRO

    names = ["female", "male", "unknown"]
    group = np.array([0, 0, 1, 1, 2, 2])
    for unknown, expect_q2 in (("exclude", 0.0), ("group", None)):
        dro = GroupDRO(eta=1.0, by="group", unknown=unknown)
        dro.n_groups, dro.group_names = 3, names
        dro.on_fit_start(_Trainer(group, np.zeros(6)))
        batch = {"group": torch.as_tensor(group), "y": torch.zeros(6)}
        dro.loss(None, batch, {}, torch.tensor([0.1, 0.1, 0.2, 0.2, 5.0, 5.0]), torch.ones(6))
        if expect_q2 is not None:
            assert float(dro.q[2]) == expect_q2
        else:
            assert float(dro.q[2]) > float(dro.q[1]) > float(dro.q[0])
    with pytest.raises(ValueError, match="unknown must be"):
        GroupDRO(unknown="maybe")


def _eo_difference(p, y, g):
    """Equalized-odds difference of decision probabilities p (expected rates, no sampling noise)."""
    tpr = [p[(g == v) & (y == 1)].mean() for v in np.unique(g)]
    fpr = [p[(g == v) & (y == 0)].mean() for v in np.unique(g)]
    return max(max(tpr) - min(tpr), max(fpr) - min(fpr))


def _eo_data(seed, n=1500):
    rng = np.random.default_rng(seed)
    g = np.where(rng.random(n) < 0.35, "minority", "majority")
    y = (rng.random(n) < np.where(g == "minority", 0.2, 0.4)).astype(int)
    signal = np.where(g == "minority", 0.8, 2.0)  # the minority's scores separate the classes less
    z = signal * (y - 0.5) + rng.normal(size=n) - 0.4 * (g == "minority")
    s = np.round(1 / (1 + np.exp(-z)), 2)  # coarse scores: deterministic thresholds cannot hit EO
    return s, y, g


def test_randomized_eo_thresholds_reach_eo_on_validation_like_fairlearn():
    from fairlearn.postprocessing import ThresholdOptimizer
    from sklearn.base import BaseEstimator, ClassifierMixin

    from fairfoundry.mitigate import GroupThreshold

    s, y, g = _eo_data(0)
    det = GroupThreshold(constraint="eo").fit(s, y, g)
    rnd = GroupThreshold(constraint="eo", threshold_rule="randomized").fit(s, y, g)
    eo_det = _eo_difference(det.decision_probability(s, g), y, g)
    p = rnd.decision_probability(s, g)
    eo_rnd = _eo_difference(p, y, g)
    assert eo_rnd <= 0.02 < eo_det

    class Identity(ClassifierMixin, BaseEstimator):  # a prefit "model" whose prediction is the score itself
        def __init__(self):
            self.fitted_ = True  # what sklearn's check_is_fitted looks for

        def fit(self, X, y):
            return self

        def predict(self, X):
            return np.asarray(X)[:, 0]

    to = ThresholdOptimizer(estimator=Identity(), constraints="equalized_odds", objective="balanced_accuracy_score",
                            prefit=True, predict_method="predict")
    to.fit(s[:, None], y, sensitive_features=g)
    p_fl = to._pmf_predict(s[:, None], sensitive_features=g)[:, 1]
    assert _eo_difference(p_fl, y, g) <= 0.02

    def balanced_accuracy(q):
        return 0.5 * (q[y == 1].mean() + 1 - q[y == 0].mean())

    assert balanced_accuracy(p) >= balanced_accuracy(p_fl) - 0.01  # same optimum as the oracle
    # transformed scores: >= 0.5 exactly for the drawn positives, reproducible for a seed
    t1, t2 = rnd.transform(s, g), rnd.transform(s, g)
    np.testing.assert_array_equal(t1, t2)
    d = t1 >= 0.5
    assert np.isin(p[d], [0.0]).sum() == 0 and np.isin(p[~d], [1.0]).sum() == 0
    assert abs(d.mean() - p.mean()) < 0.03


def test_never_positive_group_gets_no_positive_even_at_score_one():
    from fairfoundry.mitigate import GroupThreshold

    s = np.array([0.2, 0.9, 1.0, 1.0, 0.3, 1.0, 0.6, 0.1])
    y = np.array([0, 1, 1, 0, 0, 1, 1, 0])
    g = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
    post = GroupThreshold(constraint="dp", t0=1.5).fit(s, y, g)  # target positive rate 0
    assert all(np.isinf(t) for t in post.thresholds_.values())
    assert post.predict(s, g).sum() == 0  # the old threshold 1.0 made every s = 1.0 positive
    assert (post.transform(s, g) < 0.5).all()


def test_estimators_tell_fairness_terms_which_group_is_unknown():
    from fairfoundry.adapt import HeadClassifier
    from fairfoundry.mitigate import FairnessPenalty, GroupDRO

    rng = np.random.default_rng(0)
    n = 300
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(float)
    sex = np.array(["female", "male", None], dtype=object)[rng.integers(0, 3, n)]
    dro = GroupDRO(eta=0.5)
    HeadClassifier("linear", hooks=[dro], epochs=2, seed=0).fit(X, y, groups=sex)
    assert dro.group_names == ["female", "male", "unknown"]
    # the two (unknown, label) cells never enter the fairness term: their weight stays 0
    assert float(dro.q[4]) == 0.0 and float(dro.q[5]) == 0.0 and float(dro.q[:4].sum()) == pytest.approx(1.0)
    kept = GroupDRO(eta=0.5, unknown="group")
    HeadClassifier("linear", hooks=[kept], epochs=2, seed=0).fit(X, y, groups=sex)
    assert float(kept.q[4]) > 0 and float(kept.q[5]) > 0

    # the penalty of a batch ignores the unknown group unless asked
    pen = FairnessPenalty(variant="dp")
    pen.group_names = ["a", "b", "unknown"]
    batch = {"group": torch.tensor([0, 0, 1, 1, 2, 2]), "y": torch.zeros(6)}
    out = {"logits": torch.logit(torch.tensor([0.5, 0.5, 0.5, 0.5, 0.99, 0.99]))}
    assert float(pen.regularizer(None, batch, out)) == pytest.approx(0.0, abs=1e-6)
    pen_all = FairnessPenalty(variant="dp", unknown="group")
    pen_all.group_names = pen.group_names
    assert float(pen_all.regularizer(None, batch, out)) > 0.1


def test_fin_softplus_scale_as_harvard_gf():
    from fairfoundry.adapt import HeadClassifier
    from fairfoundry.mitigate import FairIdentityNormalization

    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(float)
    g = np.where(rng.random(200) < 0.5, "a", "b")
    with pytest.raises(ValueError, match="scale"):
        FairIdentityNormalization(scale="log")
    est = HeadClassifier("linear", hooks=[FairIdentityNormalization(scale="softplus")], epochs=1, seed=0,
                         standardize=False).fit(X, y, groups=g)
    m = est.model_
    assert float(m.log_scale.detach().std()) > 0.3  # random initialisation, not the identity's zeros
    f = torch.as_tensor(X[:4])
    codes = torch.tensor([0, 1, 0, 1])
    c = 0.3
    expect = c * f + (1 - c) * (f - m.mu[codes]) / torch.nn.functional.softplus(m.log_scale[codes])
    torch.testing.assert_close(m.features(f, codes), expect, rtol=1e-5, atol=1e-5)
    assert np.isfinite(est.predict_score(X, groups=g)).all()
