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
