"""kill -9 of the server while a client posts: every acknowledged event survives, none twice."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from _monitor_server import free_port, post, start, stop


def _batch(b: int, size: int = 100) -> list[dict]:
    return [{"sample_id": f"b{b}-{i}", "time": float(b * size + i), "scores": {"E": 0.5},
             "attributes": {"grp": "AB"[i % 2]}} for i in range(size)]


def test_kill_9_loses_no_acknowledged_event_and_duplicates_none(tmp_path):
    store = tmp_path / "m.db"
    port = free_port()
    proc = start(store, port, "--label", "E", "--attribute", "grp", "--evaluate-every", "0")
    acked: list[int] = []
    unsure: list[int] = []  # sent, no answer: stored or not
    stop_flag = threading.Event()

    def client():
        b = 0
        while not stop_flag.is_set():
            try:
                res = post(port, "predictions", _batch(b), timeout=10)
                assert res["stored"] == 100
                acked.append(b)
            except OSError:
                unsure.append(b)
                return
            b += 1

    th = threading.Thread(target=client)
    th.start()
    deadline = time.monotonic() + 60
    while len(acked) < 15 and time.monotonic() < deadline and th.is_alive():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # mid-stream: the client is posting
    proc.wait(10)
    th.join(30)
    stop_flag.set()
    assert len(acked) >= 15 and unsure, (len(acked), unsure)
    # restart on the same store; the client re-sends what it is unsure of (idempotent)
    proc = start(store, port, "--evaluate-every", "0")
    try:
        res = post(port, "predictions", _batch(unsure[0]))
        assert res["stored"] + res["duplicates"] == 100
    finally:
        stop(proc)
    con = sqlite3.connect(store)
    ids = [r[0] for r in con.execute("SELECT sample_id FROM predictions")]
    con.close()
    assert len(ids) == len(set(ids))  # none twice
    want = {f"b{b}-{i}" for b in [*acked, unsure[0]] for i in range(100)}
    assert want <= set(ids)  # every acknowledged (and the re-sent) event is there
    assert len(ids) == len(want)
