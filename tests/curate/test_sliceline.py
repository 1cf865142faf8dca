"""Tabular slices (SliceLine over metadata columns): equal to the ``sliceline`` package where it
is installed, a planted slice recovered by ``curate slices --by``, and a null simulation: under
random labels a slice is flagged in at most the stated share of data sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairfoundry.curate import sliceline_slices
from fairfoundry.curate._sliceline import _lattice_size


def _table(rng, n):
    return pd.DataFrame({"site": rng.choice(["a", "b", "c"], n), "sex": rng.choice(["F", "M"], n),
                         "view": rng.choice(["AP", "PA", "LL"], n), "age": rng.uniform(20, 90, n)})


def test_equal_to_the_sliceline_package():
    Slicefinder = pytest.importorskip("sliceline").Slicefinder
    rng = np.random.default_rng(0)
    df = _table(rng, 3000)
    e = (rng.uniform(size=3000) < 0.1).astype(int)
    plant = ((df["site"] == "b") & (df["view"] == "AP")).to_numpy()
    e[plant] = rng.uniform(size=plant.sum()) < 0.5
    res = sliceline_slices(df, ["site", "sex", "view", "age"], e, k=5, alpha=0.95, max_level=3)
    X = df[["site", "sex", "view"]].assign(
        age=pd.cut(df["age"], [-np.inf, 40, 60, 80, np.inf], right=False).astype(str))
    sf = Slicefinder(alpha=0.95, k=5, max_l=3, min_sup=res.config["min_support"],
                     verbose=False).fit(X.to_numpy(), e)
    theirs = [s["slice_score"] for s in sf.top_slices_statistics_]
    assert res.table["score"].to_numpy() == pytest.approx(theirs, rel=1e-9)
    assert res.table["n"].tolist() == [int(s["slice_size"]) for s in sf.top_slices_statistics_]
    assert res.table.loc[0, "slice"] == "site=b & view=AP"


def test_lattice_size_counts_one_predicate_per_column():
    # columns with 2 and 3 values: 5 single predicates, 6 pairs
    assert _lattice_size([2, 3], 1) == 5 and _lattice_size([2, 3], 2) == 11
    assert _lattice_size([2, 3], 5) == 11


def test_null_simulation_random_labels_flag_at_most_the_stated_rate():
    rng = np.random.default_rng(1)
    flagged, naive = 0, 0
    reps = 60
    for _ in range(reps):
        df = _table(rng, 1500)
        e = (rng.uniform(size=1500) < 0.2).astype(int)  # errors unrelated to any column
        res = sliceline_slices(df, ["site", "sex", "view", "age"], e, k=5, max_level=2)
        flagged += int((res.table["verdict"] == "underperforms").any())
        naive += int(len(res.table) and res.table["p_value"].min() < 0.05)
    assert flagged <= 0.05 * reps  # family-wise error rate 0.05 (Bonferroni over the lattice)
    assert naive >= 0.3 * reps  # what the unadjusted test of the best slice would claim


def test_curate_slices_by_metadata_recovers_a_planted_slice(tmp_path, cli):
    rng = np.random.default_rng(2)
    n = 2000
    df = _table(rng, n)
    y = (rng.uniform(size=n) < 0.3).astype(int)
    score = np.clip(np.where(y == 1, 0.75, 0.25) + rng.normal(0, 0.12, n), 0, 1)
    plant = ((df["site"] == "c") & (df["sex"] == "F")).to_numpy()
    flip = plant & (rng.uniform(size=n) < 0.6)  # a flipped-label shortcut in one subgroup
    score[flip] = 1 - score[flip]
    frame = df.assign(sample_id=[f"s{i}" for i in range(n)], y_true=y, y_score=score)
    frame.to_csv(tmp_path / "preds.csv", index=False)
    res = cli("curate", "slices", "--manifest", tmp_path / "preds.csv", "--by", "site,sex,view,age",
              "--slices", "5", "--out", tmp_path / "s")
    assert res.code == 0, res
    tab = pd.read_csv(tmp_path / "s" / "slices.csv")
    assert tab.loc[0, "slice"] == "site=c & sex=F" and tab.loc[0, "verdict"] == "underperforms"
    dec = pd.read_csv(tmp_path / "s" / "decisions.csv", keep_default_na=False)
    top3 = dec["in_slices"].map(lambda v: bool({"1", "2", "3"} & set(str(v).split())))
    assert (top3.to_numpy() & plant).sum() / plant.sum() >= 0.8
    man = pd.read_csv(tmp_path / "s" / "manifest.csv", keep_default_na=False)
    assert (man.loc[plant, "slice"] != "").all()
    html = (tmp_path / "s" / "report.html").read_text()
    assert "SliceLine" in html and "site=c &amp; sex=F" in html
    # bad input: exit 2, one message naming the column, nothing written
    bad = cli("curate", "slices", "--manifest", tmp_path / "preds.csv", "--by", "site,colour",
              "--out", tmp_path / "b")
    assert bad.code == 2 and "colour" in bad.err and not (tmp_path / "b").exists(), bad
    both = cli("curate", "slices", "--manifest", tmp_path / "preds.csv", "--by", "site",
               "--embeddings", tmp_path / "preds.csv", "--out", tmp_path / "b")
    assert both.code == 2 and "not both" in both.err


def test_no_errors_no_slices_and_bad_options():
    from fairfoundry._errors import FairfoundryError

    df = pd.DataFrame({"site": ["a", "b"] * 50})
    res = sliceline_slices(df, ["site"], np.zeros(100))
    assert res.table.empty and res.members.shape == (100, 0)
    with pytest.raises(FairfoundryError, match="alpha"):
        sliceline_slices(df, ["site"], np.zeros(100), alpha=0)
    with pytest.raises(FairfoundryError, match="0/1"):
        sliceline_slices(df, ["site"], np.full(100, 0.5))


def test_docs_chexnet_sliceline_example_runs_as_written(tmp_path, monkeypatch, cli):
    import re
    import shlex
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "curate.md").read_text()
    py = next(b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "chexnet_preds" in b)
    line = next(b for b in re.findall(r"```shell\n(.*?)```", doc, re.S) if "--by" in b).strip()
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(py, "docs/curate.md", "exec"), ns)
    from fairfoundry.metrics import choose_threshold

    val = ns["val"]
    thr = round(choose_threshold(val["Effusion"], val["prob_Effusion"], "youden"), 3)
    args = shlex.split(line)
    assert args[args.index("--threshold") + 1] == f"{thr}"  # the literal is the validation one
    res = cli(*args[1:])
    assert res.code == 0, res
    tab = pd.read_csv(tmp_path / "slices-chexnet" / "slices.csv")
    top = tab.iloc[0]
    assert (top["slice"], top["n"]) == ("view=AP", 6214)
    assert f"{top['error_rate']:.3f} [{top['ci_low']:.3f}, {top['ci_high']:.3f}]" == \
        "0.298 [0.287, 0.310]"
    assert tab.loc[1, "slice"] == "age=40-59 & view=AP" and (tab["verdict"] == "underperforms").all()
    assert len(tab) == 5 and top["p_adjusted"] < 1e-90
