"""k-means internals: blockwise assignment, exact k-means++ draws, the seeding subsample bound."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fairfoundry.curate import HierarchicalKMeans, _kmeans, kmeans  # noqa: E402


def test_blockwise_assignment_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    X, C = torch.randn(1037, 7, generator=g), torch.randn(30, 7, generator=g)
    labels, dist = _kmeans._assign(X, C, block=30 * 100)  # 100 rows per block, a ragged last block
    D = torch.cdist(X.double(), C.double()) ** 2
    assert torch.equal(labels, D.argmin(1))
    assert torch.allclose(dist.double(), D.min(1).values, atol=1e-4)


def _third_centroid_law(x, stale):
    """Exact law of the third k-means++ centroid on 1-D points ``x`` (or of the stale proposal)."""
    n = len(x)
    p = np.zeros(n)
    for a, b in itertools.permutations(range(n), 2):
        d_a = (x - x[a]) ** 2
        p_b = d_a[b] / d_a.sum()
        d_ab = np.minimum(d_a, (x - x[b]) ** 2)
        w = d_a if stale else d_ab  # stale: proposing from the bound without the correction
        if stale:
            w = w.copy()
            w[[a, b]] = 0
        p += (1 / n) * p_b * w / w.sum()
    return p


def test_kmeanspp_rejection_draws_follow_d2_exactly(monkeypatch):
    # let the third centroid be drawn from stale bounds, so the rejection step is what keeps it exact
    monkeypatch.setattr(_kmeans, "_stale_limit", lambda j, max_stale: 10)
    x = np.array([0.0, 1.0, 2.0, 10.0, 30.0])
    X = torch.tensor(x[:, None], dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    n_rep = 6000
    third = np.zeros(len(x))
    for _ in range(n_rep):
        C = _kmeans._kmeanspp(X, 3, gen)
        third[int(np.flatnonzero(x == float(C[2, 0]))[0])] += 1
    exact, stale = _third_centroid_law(x, stale=False), _third_centroid_law(x, stale=True)
    assert 0.5 * np.abs(stale - exact).sum() > 0.1  # the test can tell the two apart
    assert 0.5 * np.abs(third / n_rep - exact).sum() < 0.03


def test_seeding_looks_at_a_bounded_subsample(monkeypatch):
    seen = []
    real = _kmeans._kmeanspp

    def spy(X, k, gen, **kw):
        seen.append(X.shape[0])
        return real(X, k, gen, **kw)

    monkeypatch.setattr(_kmeans, "_kmeanspp", spy)
    X = np.random.default_rng(0).normal(size=(20000, 3)).astype(np.float32)
    kmeans(X, 400, n_iter=1, seed=0)
    kmeans(X, 50, n_iter=1, seed=0)
    kmeans(X[:5000], 50, n_iter=1, seed=0)
    assert seen == [32 * 400, 10000, 5000]  # max(32 k, 10000), never more than n


def test_fit_records_phases_and_lloyd_iterations():
    X = np.random.default_rng(0).normal(size=(3000, 4)).astype(np.float32)
    threads = torch.get_num_threads()
    hk = HierarchicalKMeans(n_clusters=(30, 5), resampling_steps=(2, 0), n_iter=7, seed=0).fit(X)
    assert torch.get_num_threads() == threads  # small levels run on one thread, then it is restored
    assert {"seeding", "lloyd", "resampling selection", "final assignment", "level 1", "level 2"} <= set(hk.timings_)
    level1 = [r for r in hk.kmeans_runs_ if r["level"] == 1]
    assert [r["resampling_step"] for r in level1] == [0, 1, 2] and level1[0]["n"] == 3000
    assert all(1 <= r["lloyd_iterations"] <= 7 for r in hk.kmeans_runs_)
    assert len([r for r in hk.kmeans_runs_ if r["level"] == 2]) == 10  # 10 restarts above level 1
