"""evaluate_groups: the tidy tables, NaN with reasons, errors a user can act on, properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _metrics_oracle import make_data
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fairfoundry.metrics as fm
from fairfoundry._errors import FairfoundryError


def _run(y, s, g, names, **kw):
    return fm.evaluate_groups(y, s, threshold=0.5, groups=g, group_names=names, **kw)


def test_tables_have_the_contract_columns_and_one_row_per_group_and_metric():
    y, s, g = make_data(0, 600, 3)
    res = _run(y, s, g, ["a", "b", "c"])
    assert list(res.per_group.columns) == ["group", "metric", "estimate", "ci_low", "ci_high",
                                           "n", "reason"]
    assert list(res.summary.columns) == ["metric", "estimate", "ci_low", "ci_high", "p_value",
                                         "reason", "detail"]
    # every metric for 3 groups + overall; signed diffs to overall and to median per group
    assert len(res.per_group) == 4 * len(fm.METRICS) + 3 * 2 * len(fm.DIFF_METRICS)
    assert set(res.per_group["group"]) == {"a", "b", "c", "overall"}
    n = res.per_group.query("metric == 'n'").set_index("group")["estimate"]
    assert n["overall"] == 600 and n[["a", "b", "c"]].sum() == 600
    summary = set(res.summary["metric"])
    for m in fm.METRICS:
        for suffix in fm.FAMILY:
            assert f"{m}_{suffix}" in summary
    assert set(fm.SUMMARIES) <= summary
    # the worst group and the reference comparison name their groups
    row = res.summary.set_index("metric").loc["auc_worst_group"]
    aucs = res.per_group.query("metric == 'auc' and group != 'overall'").set_index("group")
    assert row["detail"] == aucs["estimate"].idxmin()
    assert row["estimate"] == aucs["estimate"].min()
    assert " vs " in res.summary.set_index("metric").loc["tpr_vs_reference", "detail"]


def test_vs_reference_is_signed_against_the_named_reference_group():
    y, s, g = make_data(1, 900, 3, effect=0.1)
    res = _run(y, s, g, ["a", "b", "c"], reference="a")
    tpr = res.per_group.query("metric == 'tpr'").set_index("group")["estimate"]
    row = res.summary.set_index("metric").loc["tpr_vs_reference"]
    other = row["detail"].split(" vs ")[0]
    assert row["detail"].endswith("vs a") and other in {"b", "c"}
    assert row["estimate"] == pytest.approx(tpr[other] - tpr["a"])
    assert abs(row["estimate"]) == pytest.approx(max(abs(tpr["b"] - tpr["a"]),
                                                     abs(tpr["c"] - tpr["a"])))


def test_undefined_values_are_nan_with_a_reason_never_a_crash():
    y, s, g = make_data(2, 500, 3)
    y[g == 1] = 0  # group b: no positives
    s[g == 2] = 0.1  # group c: nobody predicted positive
    res = _run(y, s, g, ["a", "b", "c", "d"], n_bootstrap=20)  # d: no rows at all
    pg = res.per_group.set_index(["group", "metric"])
    for m in ("auc", "tpr", "fnr", "average_precision", "balanced_accuracy",
              "calibration_slope"):
        assert np.isnan(pg.loc[("b", m), "estimate"])
        assert pg.loc[("b", m), "reason"] == "group has no positives"
    assert pg.loc[("b", "fpr"), "reason"] == ""
    assert np.isnan(pg.loc[("c", "ppv"), "estimate"])
    assert pg.loc[("c", "ppv"), "reason"] == "no predicted positives in group"
    d = pg.xs("d", level="group")
    assert (d.drop(["n", "positives"])["reason"] == "group is empty").all()
    assert (d["n"] == 0).all() and d.loc["n", "estimate"] == 0
    # summaries skip undefined groups instead of becoming NaN
    auc = pg.xs("auc", level="metric")["estimate"]
    sm = res.summary.set_index("metric")
    assert sm.loc["auc_gap", "estimate"] == pytest.approx(abs(auc["a"] - auc["c"]))
    assert np.isfinite(sm.loc["auc_gap", "ci_low"])


def test_metric_subset_and_errors_name_the_problem():
    y, s, g = make_data(3, 300, 2)
    res = _run(y, s, g, ["a", "b"], metrics=["tpr", "fpr"])
    assert set(res.per_group["metric"]) == {"tpr", "fpr", "tpr_diff_to_overall",
                                            "tpr_diff_to_median", "fpr_diff_to_overall",
                                            "fpr_diff_to_median"}
    assert "equalized_odds_difference" in set(res.summary["metric"])
    assert "es_auc" not in set(res.summary["metric"])
    with pytest.raises(FairfoundryError, match="unknown metric 'acuracy'") as e:
        _run(y, s, g, ["a", "b"], metrics=["acuracy"])
    assert "accuracy" in e.value.hint
    with pytest.raises(FairfoundryError, match="reference='mal': unknown reference group") as e:
        _run(y, s, g, ["male", "female"], reference="mal")
    assert "male" in e.value.hint
    bad = y.astype(float)
    bad[5] = 2
    with pytest.raises(FairfoundryError, match="row 5"):
        _run(bad, s, g, ["a", "b"])
    s2 = s.copy()
    s2[7] = 1.5
    with pytest.raises(FairfoundryError, match="row 7"):
        _run(y, s2, g, ["a", "b"])
    with pytest.raises(FairfoundryError, match="group codes"):
        _run(y, s, g + 5, ["a", "b"])
    pid = np.arange(len(y)).astype(object)
    pid[9] = None
    with pytest.raises(FairfoundryError, match="missing at row 10"):
        _run(y, s, g, ["a", "b"], cluster=pid, n_bootstrap=5)
    with pytest.raises(FairfoundryError, match="ci_method"):
        _run(y, s, g, ["a", "b"], ci_method="student")


def test_intersect_groups_keeps_missing_values_as_their_own_group():
    df = pd.DataFrame({"sex": ["F", None, "M", "F"], "age": [30, 50, 50, 30]})
    codes, names = fm.intersect_groups(df, ["sex"])
    assert names == ["F", "M", "unknown"]
    assert codes.tolist() == [0, 2, 1, 0]
    codes, names = fm.intersect_groups(df, ["sex", "age"])
    assert names[codes[0]] == "sex=F & age=30" and codes[0] == codes[3]
    with pytest.raises(FairfoundryError, match="column 'sexe' not found") as e:
        fm.intersect_groups(df, ["sexe"])
    assert "sex" in e.value.hint


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n_groups=st.integers(2, 5), perm_seed=st.integers(0, 999))
@example(seed=2601, n_groups=2, perm_seed=0)  # two groups of 120 tie exactly in distance to overall
def test_row_permutation_changes_nothing(seed, n_groups, perm_seed):
    y, s, g = make_data(seed, 240, n_groups)
    names = [f"g{k}" for k in range(n_groups)]
    a = _run(y, s, g, names)
    idx = np.random.default_rng(perm_seed).permutation(len(y))
    b = _run(y[idx], s[idx], g[idx], names)
    pd.testing.assert_frame_equal(a.per_group, b.per_group, atol=1e-12, rtol=1e-10)
    # values must not change; the group a summary names (``detail``) may differ only where two
    # groups tie to rounding (a row order changes the last bit of a sum)
    cols = [c for c in a.summary.columns if c != "detail"]
    pd.testing.assert_frame_equal(a.summary[cols], b.summary[cols], atol=1e-12, rtol=1e-10)
    named = a.summary["detail"].astype(str) != b.summary["detail"].astype(str)
    for metric, da, db in zip(a.summary["metric"][named], a.summary["detail"][named],
                              b.summary["detail"][named], strict=True):
        base = metric.rsplit("_", 2)[0] if metric.endswith(("_worst_group", "_to_overall")) else None
        pg = a.per_group.set_index(["metric", "group"])["estimate"]
        if base is not None and (base, da) in pg.index and (base, db) in pg.index:
            assert pg[(base, da)] == pytest.approx(pg[(base, db)], rel=1e-9, abs=1e-12), (metric, da, db)
        else:
            raise AssertionError(f"{metric}: names {da!r} vs {db!r} after a row permutation")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n_groups=st.integers(2, 5), perm_seed=st.integers(0, 999))
def test_relabelling_groups_permutes_the_table(seed, n_groups, perm_seed):
    y, s, g = make_data(seed, 240, n_groups)
    names = [f"g{k}" for k in range(n_groups)]
    pi = np.random.default_rng(perm_seed).permutation(n_groups)
    new_names = [names[k] for k in np.argsort(pi)]  # code pi[k] now names old group k
    a = _run(y, s, g, names, reference="g0")
    b = _run(y, s, pi[g], new_names, reference="g0")
    key = ["group", "metric"]
    pa = a.per_group.sort_values(key).reset_index(drop=True)
    pb = b.per_group.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(pa, pb, atol=1e-12, rtol=1e-10)
    sa = a.summary.set_index("metric")
    sb = b.summary.set_index("metric")
    pd.testing.assert_series_equal(sa["estimate"], sb["estimate"], atol=1e-12, rtol=1e-10)


def test_summary_helpers_match_their_docstrings():
    v = np.array([[0.9, 0.7, 0.85], [0.5, np.nan, 0.25]])
    assert fm.gap(v) == pytest.approx([0.2, 0.25])
    assert fm.ratio(v) == pytest.approx([0.7 / 0.9, 0.5])
    assert fm.to_overall(v, [0.8, 0.4]) == pytest.approx([0.1, 0.15])
    vals, idx = fm.worst_group(v, direction=1)
    assert vals == pytest.approx([0.7, 0.25]) and idx.tolist() == [1, 2]
    vals, idx = fm.worst_group(v, direction=-1)
    assert idx.tolist() == [0, 0]
    assert fm.worst_group([0.8, 1.3, 0.95], direction="one") == (1.3, 1)
