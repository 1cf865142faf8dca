"""Windows by count and by time; bounded groups; the page escapes user text."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairfoundry.monitor import (
    EventStore,
    MonitorConfig,
    WindowSpec,
    assign_windows,
    evaluate_store,
    render_page,
)


def test_count_and_time_windows():
    frame = pd.DataFrame({"time": [0.0, 1, 2, 3, 10, 11, 25]})
    w, table = assign_windows(frame, WindowSpec(by="count", size=3))
    assert w.tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert table["complete"].tolist() == [True, True, False]
    w, table = assign_windows(frame, WindowSpec(by="time", size=10))
    assert w.tolist() == [0, 0, 0, 0, 1, 1, 2]
    assert table["start"].tolist() == [0, 10, 20] and table["complete"].tolist() == [True, True,
                                                                                   False]


def test_groups_are_bounded_missing_is_its_own_group_and_html_is_escaped(tmp_path):
    rng = np.random.default_rng(0)
    st = EventStore(tmp_path / "m.db", labels=["E"], attributes=["site"], create=True)
    sites = ["<script>alert(1)</script>"] * 3 + [f"site{i}" for i in range(7)]
    preds, labels = [], []
    for i in range(2000):
        site = sites[i % len(sites)] if i % 50 else None
        preds.append({"sample_id": f"s{i}", "time": float(i), "scores": {"E": float(rng.uniform())},
                      "attributes": {} if site is None else {"site": site}})
        labels.append({"sample_id": f"s{i}", "label": "E", "y": int(rng.uniform() < 0.3),
                       "time": float(i)})
    st.add_predictions(preds)
    st.add_labels(labels)
    cfg = MonitorConfig.from_dict({"windows": {"size": 1000}, "max_groups": 5, "bootstrap": 0,
                                   "simulations": 0})
    res, _ = evaluate_store(st, cfg)
    groups = set(res.loc[res["attribute"] == "site", "group"]) - {"*"}
    assert len(groups) == 6 and {"other", "unknown"} <= groups  # 4 largest + other + unknown
    n_rows = res[(res["attribute"] == "site") & (res["metric"] == "n")]
    assert n_rows["reason"].str.contains("4 smallest groups pooled as 'other'").all()
    html = render_page(st, min_n=1)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    st.close()


def test_intersections_and_bins_use_the_shared_group_names():
    from fairfoundry.metrics import intersect_groups
    from fairfoundry.monitor import evaluate_windows

    rng = np.random.default_rng(1)
    n = 1200
    preds = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "patient_id": None,
                          "time": np.arange(n, dtype=float),
                          "sex": rng.choice(["F", "M"], n),
                          "age": rng.uniform(20, 90, n).round().astype(str),
                          "score_E": rng.uniform(size=n)})
    labels = pd.DataFrame({"sample_id": preds["sample_id"], "label": "E",
                           "y": (rng.uniform(size=n) < preds["score_E"]).astype(int),
                           "time": preds["time"]})
    cfg = MonitorConfig.from_dict({"windows": {"size": 600}, "bootstrap": 0, "simulations": 0,
                                   "bins": {"age": [40, 60, 80]}, "intersect": [["sex", "age"]]})
    res = evaluate_windows(preds, labels, labels_names=["E"], attributes=["sex", "age"],
                           config=cfg)
    assert set(res.loc[res["attribute"] == "age", "group"]) - {"*"} == {
        "<40", "40-59", "60-79", "80+"}
    inter = set(res.loc[res["attribute"] == "sex&age", "group"]) - {"*"}
    from fairfoundry.data import bin_values

    frame = preds.assign(age=bin_values(preds["age"], [40, 60, 80]).astype(str))
    assert inter == set(intersect_groups(frame, ["sex", "age"])[1])  # the engine's names
    assert "sex=F & age=40-59" in inter
    n_rows = res[(res["attribute"] == "sex&age") & (res["metric"] == "n") & (res["window"] == 0)]
    assert n_rows["estimate"].sum() == 600


def test_report_csv_quotes_formula_like_group_names(tmp_path):
    from fairfoundry.monitor import write_report

    st = EventStore(tmp_path / "m.db", labels=["E"], attributes=["site"], create=True)
    rng = np.random.default_rng(2)
    st.add_predictions([{"sample_id": f"s{i}", "time": float(i),
                         "scores": {"E": float(rng.uniform())},
                         "attributes": {"site": "=HYPERLINK(1)" if i % 2 else "b"}}
                        for i in range(200)])
    evaluate_store(st, MonitorConfig.from_dict({"windows": {"size": 100}, "bootstrap": 0,
                                                "simulations": 0}))
    write_report(st, tmp_path / "r")
    text = (tmp_path / "r" / "windows.csv").read_text()
    assert "'=HYPERLINK(1)" in text and ",=HYPERLINK" not in text
    st.close()
