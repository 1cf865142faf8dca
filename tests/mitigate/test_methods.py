"""Unit properties of the mitigations: weights, sampling, penalties, post-processing, registry."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fairfoundry._errors import FairfoundryError  # noqa: E402
from fairfoundry.mitigate import (  # noqa: E402
    MITIGATIONS,
    GroupCalibration,
    GroupDRO,
    GroupThreshold,
    balanced_sampling_weights,
    fairness_penalty,
    make_mitigation,
    parse_method_args,
    reweighing_weights,
    sinkhorn_distance,
    wasserstein_1d,
)


def test_reweighing_makes_label_independent_of_group_with_three_groups():
    rng = np.random.default_rng(0)
    g = rng.integers(0, 3, 3000)
    y = (rng.random(3000) < np.array([0.2, 0.5, 0.7])[g]).astype(int)
    w = reweighing_weights(y, g)
    for gv in range(3):
        m = g == gv
        assert np.average(y[m], weights=w[m]) == pytest.approx(np.average(y, weights=w), abs=1e-9)
    assert w.sum() == pytest.approx(len(y))  # total weight preserved


def test_balanced_sampling_gives_equal_mass_per_cell():
    g = np.array([0] * 90 + [1] * 10)
    y = np.array([0, 1] * 45 + [0] * 8 + [1] * 2)
    p = balanced_sampling_weights(g)
    assert p[g == 0].sum() == pytest.approx(0.5) and p[g == 1].sum() == pytest.approx(0.5)
    p2 = balanced_sampling_weights(g, y)
    assert p2[(g == 1) & (y == 1)].sum() == pytest.approx(0.25)


def test_penalty_is_finite_and_zero_when_a_group_is_missing_from_the_batch():
    p = torch.tensor([0.9, 0.2, 0.7, 0.4], requires_grad=True)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0])
    one_group = torch.tensor([0, 0, 0, 0])
    for v in ("dp", "eo", "eopp"):
        assert float(fairness_penalty(p, y, one_group, variant=v)) == 0.0
    two = torch.tensor([0, 0, 1, 1])
    val = fairness_penalty(p, y, two, variant="dp")
    assert float(val.detach()) == pytest.approx(abs(0.55 - 0.55) * 2)
    eopp = fairness_penalty(p, y, two, variant="eopp")  # TPR-like means 0.9 vs 0.7
    assert float(eopp.detach()) == pytest.approx(0.2)
    eopp.backward()
    assert torch.isfinite(p.grad).all()


def test_groupdro_upweights_the_worse_group_and_skips_absent_groups():
    dro = GroupDRO(eta=1.0, by="group", n_groups=3)

    class T:
        train_data = None

    dro.on_fit_start(T())
    per = torch.tensor([0.1, 0.1, 2.0, 2.0])
    batch = {"group": torch.tensor([0, 0, 1, 1]), "y": torch.zeros(4)}
    loss = dro.loss(None, batch, {}, per, torch.ones(4))
    # group 2 is absent: its unnormalised weight is not updated, so it falls behind group 0
    assert dro.q[1] > dro.q[0] > dro.q[2]
    q0, q1 = float(dro.q[0]), float(dro.q[1])
    # Sagawa et al.: L = sum_g q_g R_g, not renormalised by the weight of the groups present
    assert float(loss) == pytest.approx(q0 * 0.1 + q1 * 2.0, rel=1e-5)


def test_wasserstein_and_sinkhorn_agree_on_shifted_samples():
    a = torch.linspace(0, 1, 50)
    b = a + 0.3
    assert float(wasserstein_1d(a, b)) == pytest.approx(0.09, abs=1e-4)
    assert float(sinkhorn_distance(a, b, blur=0.1, iters=200)) == pytest.approx(0.09, abs=0.01)


def test_group_threshold_equalises_tpr_and_keeps_order_within_groups():
    rng = np.random.default_rng(1)
    n = 4000
    g = np.where(rng.random(n) < 0.5, "a", "b")
    y = rng.integers(0, 2, n)
    s = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(size=n) - 1.0 * (g == "b"))))
    post = GroupThreshold(constraint="eopp", t0=0.5).fit(s, y, g)
    out = post.transform(s, g)
    d = out >= 0.5
    tpr = [d[(g == v) & (y == 1)].mean() for v in ("a", "b")]
    raw = [(s >= 0.5)[(g == v) & (y == 1)].mean() for v in ("a", "b")]
    assert abs(tpr[0] - tpr[1]) < 0.03 < abs(raw[0] - raw[1])
    for v in ("a", "b"):
        m = g == v
        assert (np.argsort(out[m], kind="stable") == np.argsort(s[m], kind="stable")).all()
    assert post.predict(s, g).tolist() == d.astype(int).tolist()


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_group_calibration_shrinks_the_calibration_gap(method):
    rng = np.random.default_rng(2)
    n = 6000
    g = np.where(rng.random(n) < 0.4, "minority", "majority")
    p_true = rng.uniform(0.05, 0.95, n)
    y = (rng.random(n) < p_true).astype(int)
    s = np.where(g == "minority", p_true ** 3, p_true)  # minority scores miscalibrated

    def ece(score, m):
        bins = np.clip((score[m] * 10).astype(int), 0, 9)
        return sum(abs(score[m][bins == b].mean() - y[m][bins == b].mean()) * (bins == b).mean()
                   for b in range(10) if (bins == b).any())

    half = np.arange(n) < n // 2
    cal = GroupCalibration(method=method).fit(s[half], y[half], g[half])
    out = cal.transform(s[~half], g[~half])
    sub_y, sub_g, sub_s = y[~half], g[~half], s[~half]
    y_backup = y
    y = sub_y
    before = abs(ece(sub_s, sub_g == "minority") - ece(sub_s, sub_g == "majority"))
    after = abs(ece(out, sub_g == "minority") - ece(out, sub_g == "majority"))
    y = y_backup
    assert after < before / 3
    assert cal.predict_proba(s[:5], g[:5]).shape == (5, 2)


def test_post_processing_bad_input():
    with pytest.raises(FairfoundryError, match="both classes"):
        GroupThreshold().fit([0.2, 0.3], [1, 1], ["a", "b"])
    with pytest.raises(FairfoundryError, match="sensitive attribute"):
        GroupCalibration().fit([0.2, 0.3], [1, 0], None)


def test_registry_errors_name_the_valid_choices():
    with pytest.raises(FairfoundryError) as e:
        make_mitigation("groupdor")
    assert "groupdro" in e.value.hint
    with pytest.raises(FairfoundryError) as e:
        make_mitigation("groupdro", etta=1)
    assert "eta" in e.value.hint
    with pytest.raises(FairfoundryError, match="bad argument"):
        make_mitigation("fair-penalty", variant="xx")
    assert parse_method_args({"eta": "0.5", "by": "group", "flag": "true"}) == {"eta": 0.5, "by": "group", "flag": True}
    stages = {c.stage for c in MITIGATIONS.values()}
    assert stages == {"none", "pre", "in", "post"}
    for cls in MITIGATIONS.values():  # every method documents its source
        assert cls.__doc__ and len(cls.__doc__.strip()) > 40
