"""Friedman / Iman-Davenport / Nemenyi ranking: Demšar's worked example and autorank as oracle."""

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.bench import (
    average_ranks,
    friedman_from_ranks,
    friedman_test,
    nemenyi_cd,
    plot_cd_diagram,
)


def test_demsar_worked_example():
    # Demšar (JMLR 2006), section 3.2.4: average ranks of four C4.5 variants on N = 14 datasets
    r = friedman_from_ranks([3.143, 2.000, 2.893, 1.964], n_datasets=14,
                            methods=["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"])
    assert r.chi2_f == pytest.approx(9.28, abs=0.005)
    assert r.f_f == pytest.approx(3.69, abs=0.005)
    assert r.cd == pytest.approx(1.254, abs=5e-4)
    assert nemenyi_cd(4, 14, alpha=0.05) == pytest.approx(1.254, abs=5e-4)
    # the paper: C4.5+m+cf vs C4.5 (difference 1.179) is not significant by Nemenyi at 0.05,
    # and is at 0.10 (CD 1.12)
    assert not r.differs("C4.5", "C4.5+m+cf")
    assert nemenyi_cd(4, 14, alpha=0.10) == pytest.approx(1.12, abs=5e-3)
    assert friedman_from_ranks(r.average_ranks, n_datasets=14, methods=r.methods, alpha=0.10).differs(
        "C4.5", "C4.5+m+cf")
    assert "differs from no other method" in r.sentence()


def test_ranks_of_a_table_with_ties():
    table = pd.DataFrame([[0.9, 0.8, 0.8], [0.7, 0.9, 0.6], [1.0, 1.0, 1.0]], columns=["a", "b", "c"])
    assert np.allclose(friedman_test(table).average_ranks, [(1 + 2 + 2) / 3, (2.5 + 1 + 2) / 3, (2.5 + 3 + 2) / 3])


def test_lower_is_better_reverses_ranks():
    gaps = np.random.default_rng(1).normal(size=(14, 4))
    assert np.allclose(average_ranks(gaps, higher_is_better=False),
                       5 - average_ranks(gaps, higher_is_better=True))


@pytest.mark.parametrize("seed", range(5))
def test_parity_with_autorank(seed):
    autorank = pytest.importorskip("autorank")
    rng = np.random.default_rng(seed)
    k, n = 5, 20
    data = pd.DataFrame(rng.normal(size=(n, k)) + np.linspace(0, 1, k), columns=[f"m{j}" for j in range(k)])
    ours = friedman_test(data)
    res = autorank.autorank(data, alpha=0.05, verbose=False, force_mode="nonparametric")
    theirs = res.rankdf["meanrank"].to_dict()
    assert all(abs(dict(zip(ours.methods, ours.average_ranks, strict=True))[m] - theirs[m]) < 1e-9 for m in theirs)
    # autorank evaluates the studentized range at a large finite df; we use df = inf (Demšar)
    assert ours.cd == pytest.approx(res.cd, rel=2e-5)
    from scipy.stats import friedmanchisquare

    assert ours.chi2_f == pytest.approx(friedmanchisquare(*data.T.to_numpy()).statistic, rel=1e-9)


def test_null_friedman_rejects_at_nominal_rate():
    # null simulation: 10 methods' scores exchangeable on 12 datasets -> F_F test rejects ~5 %
    rng = np.random.default_rng(0)
    p = np.array([friedman_test(rng.normal(size=(12, 6))).p_f for _ in range(400)])
    assert 0.025 <= (p < 0.05).mean() <= 0.08


def test_bad_tables_are_user_errors():
    with pytest.raises(FairfoundryError, match="NaN"):
        friedman_test([[0.1, np.nan], [0.2, 0.3]])
    with pytest.raises(FairfoundryError, match="two methods"):
        friedman_test([[0.1], [0.2]])


def test_cd_diagram_draws(tmp_path):
    fig = plot_cd_diagram(friedman_from_ranks([3.143, 2.000, 2.893, 1.964], n_datasets=14), title="Demšar 2006")
    fig.savefig(tmp_path / "cd.png")
    assert (tmp_path / "cd.png").stat().st_size > 1000
