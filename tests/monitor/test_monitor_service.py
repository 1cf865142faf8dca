"""The FastAPI service: validated bodies with clear 4xx, token, Prometheus text, the page."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("prometheus_client")

from _monitor_sim import stream
from fastapi.testclient import TestClient

from fairfoundry.monitor import EventStore, MonitorConfig, create_app

CFG = MonitorConfig.from_dict({
    "windows": {"size": 1000}, "bootstrap": 20, "simulations": 20,
    "alerts": [{"name": "auc_drop", "metric": "auc", "attribute": "grp", "op": "<",
                "threshold": 0.75, "bound": "ci", "min_n": 200, "consecutive": 2}]})


@pytest.fixture
def client(tmp_path):
    st = EventStore(tmp_path / "m.db", labels=["E"], attributes=["grp"], create=True)
    with TestClient(create_app(st, config=CFG, token="s3cret")) as c:
        c.headers["Authorization"] = "Bearer s3cret"
        yield c
    st.close()


def _fill(client):
    preds, labels = stream(windows=5, size=1000, seed=4, shift_group="B", shift_from=3)
    for i in range(0, len(preds), 1000):
        r = client.post("/predictions", json={"events": preds[i:i + 1000]})
        assert r.status_code == 200, r.text
    r = client.post("/labels", json={"events": labels})
    assert r.json() == {"stored": len(labels), "duplicates": 0}
    return preds, labels


def test_bad_requests_get_clear_4xx_and_store_nothing(client):
    ok = {"sample_id": "a", "time": 1.0, "scores": {"E": 0.4}, "attributes": {"grp": "A"}}
    cases = [
        (b"{not json", 400, "malformed JSON"),
        ({"events": [{**ok, "colour": "red"}]}, 422, "events.0.colour: unknown field"),
        ({"events": [{**ok, "scores": {"E": 1.2}}]}, 422, "not a probability in [0, 1]"),
        ({"events": [{**ok, "attributes": {"race": "x"}}]}, 422, "unknown attribute"),
        ({"events": [ok, ok]}, 422, "appears twice in one batch"),
        ({"events": []}, 422, "events"),
        ({"rows": [ok]}, 422, "unknown field"),
    ]
    for body, code, msg in cases:
        if isinstance(body, bytes):
            r = client.post("/predictions", content=body,
                            headers={"Content-Type": "application/json"})
        else:
            r = client.post("/predictions", json=body)
        assert r.status_code == code, (body, r.text)
        assert msg in r.json()["error"], (body, r.json())
    assert client.get("/api/counts").json()["predictions"] == 0
    assert client.post("/predictions", json={"events": [ok]}).status_code == 200
    # a re-sent event is acknowledged, not stored twice; a changed one is a conflict
    assert client.post("/predictions", json={"events": [ok]}).json()["duplicates"] == 1
    r = client.post("/predictions", json={"events": [{**ok, "scores": {"E": 0.9}}]})
    assert r.status_code == 409 and "different content" in r.json()["error"]
    r = client.post("/labels", json={"events": [{"sample_id": "zz", "label": "E", "y": 1,
                                                 "time": 2.0}]})
    assert r.status_code == 422 and "unknown sample id" in r.json()["error"]
    r = client.post("/labels", json={"events": [{"sample_id": "a", "label": "E", "y": 3,
                                                 "time": 2.0}]})
    assert r.status_code == 422 and "events.0.y" in r.json()["error"]
    assert client.get("/api/counts").json() == {"predictions": 1, "labels": 0, "alerts": 0}


def test_token_is_required(client):
    assert client.get("/healthz").status_code == 200
    r = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and "token" in r.json()["error"]


def test_prometheus_text_parses_and_labels_are_bounded(client):
    from prometheus_client.parser import text_string_to_metric_families

    _fill(client)
    assert client.post("/evaluate").json()["alerts"] >= 1
    text = client.get("/metrics").text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    events = {(s.labels["kind"], s.labels["outcome"]): s.value
              for s in fams["fairfoundry_monitor_events"].samples if s.name.endswith("_total")}
    assert events[("predictions", "stored")] == 5000 and events[("labels", "stored")] == 5000
    group = fams["fairfoundry_monitor_group_metric"].samples
    auc = {s.labels["group"]: s.value for s in group
           if s.labels["metric"] == "auc" and s.labels["attribute"] == "grp"}
    assert set(auc) == {"A", "B"} and auc["B"] < auc["A"] - 0.05
    assert {s.labels["group"] for s in group} <= {"A", "B", "all"}
    assert {s.labels["metric"] for s in group} <= {
        "auc", "est_auc", "tpr", "est_tpr", "fpr", "est_fpr", "score_wasserstein", "share", "n",
        "n_labelled"}
    alerts = {s.labels["rule"]: s.value for s in fams["fairfoundry_monitor_alerts"].samples}
    assert alerts["auc_drop"] >= 1
    page = client.get("/")
    assert page.status_code == 200 and 'data-group="B"' in page.text
    assert client.get("/api/alerts").json()[0]["group"] == "B"


def test_background_evaluation_runs_when_new_events_arrive(tmp_path):
    import time

    st = EventStore(tmp_path / "b.db", labels=["E"], attributes=["grp"], create=True)
    with TestClient(create_app(st, config=CFG, evaluate_every=0.2)) as c:
        preds, labels = stream(windows=3, size=1000, seed=6)
        c.post("/predictions", json={"events": preds})
        c.post("/labels", json={"events": labels})
        deadline = time.monotonic() + 60

        def realised():  # an evaluation may run between the two posts: wait for the labels'
            res = st.results()
            return res[res["metric"] == "auc"] if len(res) else res

        while realised().empty and time.monotonic() < deadline:
            time.sleep(0.2)
        res = st.results()
        assert res["window"].nunique() == 3
        assert set(res.loc[res["metric"] == "auc", "group"]) == {"A", "B", "all"}
    st.close()
