"""A planted effect seen by the fairness probe through real pre-training on the bundled NIH X-rays.

A marker that is a horizontal line on women's images and a vertical one on men's (named in the
captions) is learned by CLIP pre-training only for the sex the encoder is trained on: the other
sex's probe AUC lags, with a gap whose CI excludes 0 in the intended direction, while a balanced
run (same steps, seed and number of images) shows no gap, and the random initialisation (step 0)
none either. ``benchmarks/sim_probe_planted.py`` runs the same at 300 steps, and the men-only
mirror (numbers in docs/pretrain.md and BENCHMARKS.md). At 100 steps and lr 2e-3 these
assertions hold for seeds 0, 1 and 2 (BENCHMARKS.md); the men-only mirror does not (seed 2: no
gap), so it is not asserted here.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

@pytest.fixture(scope="module")
def planted(tmp_path_factory, load_benchmark):
    sim = load_benchmark("sim_probe_planted")
    folder = tmp_path_factory.mktemp("planted")
    return sim, sim.run(folder, runs=("women", "balanced"), steps=100, every=50, bootstrap=200, lr=2e-3), folder


def _auc(rows, run, step, group):
    r = rows[(rows["run"] == run) & (rows["step"] == step) & (rows["metric"] == "auc")
             & (rows["group"] == group)].iloc[0]
    return float(r["estimate"]), float(r["ci_low"]), float(r["ci_high"])


@pytest.mark.slow
def test_the_planted_data_keeps_runs_comparable_and_the_probe_held_out(planted):
    import pandas as pd

    _, rows, folder = planted
    probe = pd.read_csv(folder / "probe.csv")
    assert set(probe["split"]) == {"val"} and len(probe) == 150 and probe["marker"].sum() == 75
    for name in ("women", "men", "balanced"):  # the men-only manifest is built too (the benchmark runs it)
        train = pd.read_csv(folder / f"train_{name}.csv")
        assert len(train) == 142 and train["patient_id"].nunique() == 71  # same size in every run
        assert not set(train["patient_id"]) & set(probe["patient_id"])  # probe patients never trained on
    assert set(pd.read_csv(folder / "train_women.csv")["sex"]) == {"female"}
    assert set(pd.read_csv(folder / "train_men.csv")["sex"]) == {"male"}
    # every probe row is one of 150 held-out images, for both groups, at every probed step
    assert set(rows["step"]) == {0, 50, 100}
    n = rows[rows["metric"] == "auc"].groupby("group")["n"].unique()
    assert list(n["female"]) == [68] and list(n["male"]) == [82]  # 34 women and 41 men, two images each


@pytest.mark.slow
def test_an_encoder_trained_on_one_sex_lags_on_the_other_and_a_balanced_one_does_not(planted):
    sim, rows, _ = planted
    # step 0: the same random initialisation in both runs, no gap (its CI includes 0)
    for name in ("women", "balanced"):
        assert _auc(rows, name, 0, "female") == _auc(rows, "women", 0, "female")
        g, lo, hi = sim.signed_gap(rows, name, 0)
        assert lo <= 0 <= hi, (name, g, lo, hi)
    init_f, init_m = _auc(rows, "women", 0, "female")[0], _auc(rows, "women", 0, "male")[0]
    # trained on women only: women's probe AUC rises, men's does not; the gap CI is above 0
    f, m = _auc(rows, "women", 100, "female"), _auc(rows, "women", 100, "male")
    assert f[1] > init_f and m[0] < init_m + 0.05
    g_women, lo, hi = sim.signed_gap(rows, "women", 100)
    assert lo > 0 and g_women > 0.2, (g_women, lo, hi)
    assert lo > sim.signed_gap(rows, "women", 0)[2]  # the gap appeared during training
    # balanced: both sexes learned, no gap (CI includes 0), far smaller than the one-sex run's
    g, lo, hi = sim.signed_gap(rows, "balanced", 100)
    assert lo <= 0 <= hi and abs(g) < g_women / 2, (g, lo, hi)
    assert _auc(rows, "balanced", 100, "male")[0] > _auc(rows, "women", 100, "male")[0] + 0.1
    assert _auc(rows, "balanced", 100, "female")[0] > init_f + 0.05
    table = sim.markdown(rows)
    assert table.count("\n") == 2 + 2 * 3 - 1 and "| women | 100 |" in table
