"""``fairfoundry monitor``: bad input exits 2 with one clear message; replay to a service."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest


def _stream(path, n=40, **over):
    frame = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "time": range(n),
                          "patient_id": [f"p{i // 2}" for i in range(n)],
                          "sex": ["F", "M"] * (n // 2), "score_E": [0.1 + 0.02 * i for i in range(n)],
                          "y_E": [i % 2 for i in range(n)], "label_time": [i + 5 for i in range(n)]})
    for k, v in over.items():
        frame[k] = v
    frame.to_csv(path, index=False)
    return path


def test_replay_evaluate_report_and_refusals(tmp_path, cli):
    s = _stream(tmp_path / "stream.csv")
    db = tmp_path / "m.db"
    res = cli("monitor", "replay", s, "--store", db)
    assert res.code == 0 and "replayed 40 predictions and 40 labels" in res.out, res
    again = cli("monitor", "replay", s, "--store", db)
    assert again.code == 0 and "(80 duplicates ignored)" in again.out, again
    cfg = tmp_path / "c.yaml"
    cfg.write_text("windows: {size: 10}\nbootstrap: 10\nsimulations: 10\n")
    assert cli("monitor", "evaluate", "--store", db, "--config", cfg).code == 0
    out = tmp_path / "rep"
    assert cli("monitor", "report", "--store", db, "--out", out).code == 0
    assert {p.name for p in out.iterdir()} == {"report.html", "windows.csv", "alerts.csv",
                                                "report.json"}
    res = cli("monitor", "report", "--store", db, "--out", out)
    assert res.code == 2 and "--overwrite" in res.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("windows: {size: 10}\nwindow_size: 3\n")
    res = cli("monitor", "evaluate", "--store", db, "--config", bad)
    assert res.code == 2 and "window_size" in res.err and "Traceback" not in res.err
    bad.write_text("alerts: [{name: a, metric: aucc, op: '<', threshold: 0.7}]\n")
    res = cli("monitor", "evaluate", "--store", db, "--config", bad)
    assert res.code == 2 and "unknown metric 'aucc'" in res.err


@pytest.mark.parametrize("over, match", [
    ({"score_E": [1.5] * 40}, "not a probability in [0, 1]"),
    ({"time": ["yesterday"] * 40}, "column 'time' row 0"),
    ({"y_E": [2] * 40}, "'y_E' row 0"),
])
def test_bad_stream_exits_2_and_stores_nothing(tmp_path, cli, over, match):
    db = tmp_path / "m.db"
    assert cli("monitor", "init", "--store", db, "--label", "E", "--attribute", "sex").code == 0
    res = cli("monitor", "replay", _stream(tmp_path / "s.csv", **over), "--store", db)
    assert res.code == 2 and match in res.err, res
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 0
    con.close()


def test_store_refusals(tmp_path, cli):
    db = tmp_path / "m.db"
    assert cli("monitor", "init", "--store", db, "--label", "E", "--attribute", "sex").code == 0
    res = cli("monitor", "init", "--store", db, "--label", "E", "--attribute", "sex")
    assert res.code == 2 and "already exists" in res.err
    res = cli("monitor", "report", "--store", db, "--out", tmp_path / "r")
    assert res.code == 2 and "not been evaluated" in res.err
    res = cli("monitor", "replay", _stream(tmp_path / "s.csv", race=["x"] * 40), "--store", db)
    assert res.code == 2 and "not attributes of the store" in res.err
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value='9' WHERE key='schema_version'")
    con.commit()
    con.close()
    res = cli("monitor", "evaluate", "--store", db)
    assert res.code == 2 and "schema version 9" in res.err and "Traceback" not in res.err
    res = cli("monitor", "evaluate", "--store", tmp_path / "nope.db")
    assert res.code == 2 and "not found" in res.err


def test_replay_to_a_running_service(tmp_path, cli):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from _monitor_server import free_port, start, stop

    db = tmp_path / "m.db"
    port = free_port()
    tok = tmp_path / "token"
    tok.write_text("t0ken\n")
    proc = start(db, port, "--label", "E", "--attribute", "sex", "--evaluate-every", "0",
                 "--token-file", str(tok))
    url = f"http://127.0.0.1:{port}"
    try:
        res = cli("monitor", "replay", _stream(tmp_path / "s.csv"), "--url", url)
        assert res.code == 2 and "answered 401" in res.err, res  # no token
        res = cli("monitor", "replay", _stream(tmp_path / "s.csv"), "--url", url, "--batch", "7",
                  "--token-file", tok)
        assert res.code == 0 and "replayed 40 predictions and 40 labels" in res.out, res
        res = cli("monitor", "replay", _stream(tmp_path / "b.csv", score_E=[2.0] * 40),
                  "--url", url, "--token-file", tok)
        assert res.code == 2 and "(422)" in res.err and "not a probability" in res.err
    finally:
        stop(proc)


def test_replay_speed_paces_the_stream(tmp_path):
    import time

    from fairfoundry.monitor import EventStore, read_stream, replay

    st = EventStore(tmp_path / "m.db", labels=["E"], attributes=["sex"], create=True)
    events = read_stream(_stream(tmp_path / "s.csv", n=10), labels=["E"], attributes=["sex"])
    t = time.monotonic()
    counts = replay(events, store=st, speed=20.0, batch=1)  # 14 s of stream at 20x
    assert time.monotonic() - t >= 14 / 20 * 0.9
    assert counts == {"predictions": 10, "labels": 10, "duplicates": 0}
    st.close()
