"""The event store: idempotent, transactional, refuses bad events and newer schemas."""

from __future__ import annotations

import sqlite3

import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.monitor import EventStore


def _pred(i, **kw):
    ev = {"sample_id": f"s{i}", "time": float(i), "scores": {"E": 0.3},
          "attributes": {"sex": "F"}, "patient_id": "p1"}
    ev.update(kw)
    return ev


@pytest.fixture
def store(tmp_path):
    st = EventStore(tmp_path / "m.db", labels=["E"], attributes=["sex"], create=True)
    yield st
    st.close()


def test_store_is_wal_and_reopens_with_its_schema(store, tmp_path):
    store.add_predictions([_pred(0)])
    mode = sqlite3.connect(tmp_path / "m.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    with EventStore(tmp_path / "m.db") as again:
        assert again.labels == ["E"] and again.attributes == ["sex"]
        assert again.counts()["predictions"] == 1
    with pytest.raises(FairfoundryError, match="created with labels"):
        EventStore(tmp_path / "m.db", labels=["X"])


def test_resent_events_are_idempotent_conflicts_refused(store):
    assert store.add_predictions([_pred(0), _pred(1)]).stored == 2
    res = store.add_predictions([_pred(1), _pred(2)])  # a re-sent batch that partly committed
    assert (res.stored, res.duplicates) == (1, 1)
    with pytest.raises(FairfoundryError, match="already stored with different content"):
        store.add_predictions([_pred(3), _pred(1, scores={"E": 0.9})])
    assert store.counts()["predictions"] == 3  # s3 was not half-written
    store.add_labels([{"sample_id": "s0", "label": "E", "y": 1, "time": 5.0}])
    assert store.add_labels([{"sample_id": "s0", "label": "E", "y": 1, "time": 5.0}]).duplicates
    with pytest.raises(FairfoundryError, match="already stored as y=1"):
        store.add_labels([{"sample_id": "s0", "label": "E", "y": 0, "time": 6.0}])


@pytest.mark.parametrize("event, match", [
    (_pred(0, scores={"E": 1.5}), r"score E=1.5 is not a probability"),
    (_pred(0, scores={"E": 0.5, "X": 0.1}), "scores must give exactly the labels"),
    (_pred(0, extra=1), r"unknown field\(s\) \['extra'\]"),
    (_pred(0, attributes={"race": "x"}), "unknown attribute"),
    (_pred(0, time=float("nan")), "time must be a finite number"),
    (_pred(0, sample_id=""), "sample_id must be a non-empty string"),
])
def test_bad_prediction_events_name_the_problem(store, event, match):
    with pytest.raises(FairfoundryError, match=match):
        store.add_predictions([_pred(9), event])
    assert store.counts()["predictions"] == 0  # nothing of the batch was stored


def test_bad_labels(store):
    store.add_predictions([_pred(0)])
    with pytest.raises(FairfoundryError, match="unknown sample id"):
        store.add_labels([{"sample_id": "s0", "label": "E", "y": 1, "time": 1.0},
                          {"sample_id": "nope", "label": "E", "y": 1, "time": 1.0}])
    assert store.counts()["labels"] == 0
    with pytest.raises(FairfoundryError, match="y must be 0 or 1"):
        store.add_labels([{"sample_id": "s0", "label": "E", "y": 2, "time": 1.0}])
    with pytest.raises(FairfoundryError, match="unknown label"):
        store.add_labels([{"sample_id": "s0", "label": "Q", "y": 1, "time": 1.0}])
    with pytest.raises(FairfoundryError, match="twice in one batch"):
        store.add_predictions([_pred(5), _pred(5)])


def test_newer_schema_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "m.db"
    EventStore(path, labels=["E"], attributes=["sex"], create=True).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(FairfoundryError, match="schema version 2; this fairfoundry reads"):
        EventStore(path)
    assert path.read_bytes() == before


def test_not_a_store(tmp_path):
    (tmp_path / "x.db").write_text("not sqlite at all, just text" * 20)
    with pytest.raises(FairfoundryError, match="not a monitoring store"):
        EventStore(tmp_path / "x.db")
    with pytest.raises(FairfoundryError, match="not found"):
        EventStore(tmp_path / "missing.db")
    (tmp_path / "empty.db").touch()
    with pytest.raises(FairfoundryError, match="is empty, not a monitoring store"):
        EventStore(tmp_path / "empty.db")
    with pytest.raises(FairfoundryError, match="not allowed"):
        EventStore(tmp_path / "n.db", labels=["bad name"], attributes=["sex"], create=True)
