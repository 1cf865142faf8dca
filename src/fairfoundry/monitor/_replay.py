"""Replay a recorded stream into a store or a running service, to simulate a deployment.

A stream file (CSV / Parquet) has one row per prediction: ``sample_id``, ``time`` (seconds, or
an ISO date-time), optional ``patient_id`` and ``model_version``, one ``score_<label>`` column
per label, the protected attributes, and optionally ``y_<label>`` ground truth with
``label_time`` (when the label arrives; empty: never, within the replay). Prediction events are
sent at ``time``, label events at ``label_time``, in time order.
"""

from __future__ import annotations

import json
import logging
import math
import time as _time
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import FairfoundryError

__all__ = ["read_stream", "replay", "stream_schema"]

log = logging.getLogger(__name__)
#: longest sleep between two calls of ``progress`` while a timed replay waits for the next event
_PROGRESS_SLICE_S = 0.1
_FIXED = ("sample_id", "time", "patient_id", "model_version", "label_time")


def _seconds(col: pd.Series, name: str, path) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(dtype=np.float64)
    parsed = pd.to_datetime(col, errors="coerce", utc=True, format="ISO8601")
    bad = parsed.isna() & col.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise FairfoundryError(f"{path}: column {name!r} row {row}: {col.iloc[row]!r} is neither "
                               "seconds nor an ISO date-time")
    out = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return out.to_numpy(dtype=np.float64)


def stream_schema(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Labels (from ``score_<label>`` columns) and attributes (every other column) of a
    stream table."""
    labels = [c[len("score_"):] for c in frame.columns if c.startswith("score_")]
    attributes = [c for c in frame.columns if c not in _FIXED and not c.startswith("score_")
                  and not c.startswith("y_")]
    return labels, attributes


def read_stream(path, *, labels, attributes) -> list[tuple[float, str, dict]]:
    """Events of a stream file as ``(time, kind, event)``, sorted by time (a prediction
    before the labels of the same instant). Raises :class:`FairfoundryError` naming the file,
    column and row of a bad value."""
    from .._io import read_table

    frame = read_table(path, what="stream")
    for c in ("sample_id", "time"):
        if c not in frame.columns:
            raise FairfoundryError(f"stream {path} has no {c!r} column")
    missing = [f"score_{lab}" for lab in labels if f"score_{lab}" not in frame.columns]
    if missing:
        raise FairfoundryError(f"stream {path} lacks score columns {missing}",
                               hint="one score_<label> column per label of the store")
    extra = [a for a in stream_schema(frame)[1] if a not in attributes]
    if extra:
        raise FairfoundryError(f"stream {path} has columns {extra} that are not attributes of "
                               "the store", hint="attributes are: " + ", ".join(attributes))
    t = _seconds(frame["time"], "time", path)
    if not np.isfinite(t).all():
        row = int(np.flatnonzero(~np.isfinite(t))[0])
        raise FairfoundryError(f"stream {path}: column 'time' row {row} is missing")
    lt = _seconds(frame["label_time"], "label_time", path) if "label_time" in frame else t
    sid = frame["sample_id"].astype(str).tolist()
    pid = frame["patient_id"].astype(object).where(frame["patient_id"].notna(), None).tolist() \
        if "patient_id" in frame else [None] * len(frame)
    mv = frame["model_version"].astype(object).where(frame["model_version"].notna(),
                                                     None).tolist() \
        if "model_version" in frame else [None] * len(frame)
    attrs = {a: frame[a].astype(object).where(frame[a].notna(), None).tolist()
             for a in attributes if a in frame}
    scores = {lab: frame[f"score_{lab}"].to_numpy(dtype=np.float64) for lab in labels}
    ys = {lab: frame[f"y_{lab}"] for lab in labels if f"y_{lab}" in frame}
    events: list[tuple[float, int, int, str, dict]] = []
    for i in range(len(frame)):
        ev = {"sample_id": sid[i], "time": float(t[i]),
              "scores": {lab: float(scores[lab][i]) for lab in labels},
              "attributes": {a: _plain(v[i]) for a, v in attrs.items() if v[i] is not None}}
        if pid[i] is not None:
            ev["patient_id"] = str(pid[i])
        if mv[i] is not None:
            ev["model_version"] = str(mv[i])
        events.append((float(t[i]), 0, i, "prediction", ev))
        if math.isfinite(lt[i]):
            for lab, col in ys.items():
                v = col.iloc[i]
                if pd.notna(v):
                    if v not in (0, 1):
                        raise FairfoundryError(f"stream {path}: column 'y_{lab}' row {i}: "
                                               f"{v!r} is not 0 or 1")
                    events.append((max(float(lt[i]), float(t[i])), 1, i, "label",
                                   {"sample_id": sid[i], "label": lab, "y": int(v),
                                    "time": max(float(lt[i]), float(t[i]))}))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return [(e[0], e[3], e[4]) for e in events]


def _plain(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return v if isinstance(v, str) else str(v)


def replay(events, *, store=None, url: str | None = None, token: str | None = None,
           speed: float = 0.0, batch: int = 500, progress=None) -> dict:
    """Send ``events`` (from :func:`read_stream`) to ``store`` or to the service at ``url``.

    Consecutive events of one kind go in batches of up to ``batch``; with ``speed > 0`` the
    replay sleeps so that stream time runs ``speed`` times faster than real time (``speed=3600``:
    an hour of stream per second). ``progress(n)`` is called with the events just sent, and
    with 0 while waiting, so a caller can report at a steady rate. Returns counts ``{"predictions", "labels", "duplicates"}``.
    """
    if (store is None) == (url is None):
        raise FairfoundryError("replay needs exactly one of a store or a service URL")
    if speed < 0 or batch < 1:
        raise FairfoundryError("speed must be >= 0 and batch >= 1")
    out = {"predictions": 0, "labels": 0, "duplicates": 0}
    t_stream0, t_wall0 = (events[0][0] if events else 0.0), _time.monotonic()
    i = 0
    while i < len(events):
        kind = events[i][1]
        j = i
        while j < len(events) and events[j][1] == kind and j - i < batch:
            j += 1
        chunk = [e[2] for e in events[i:j]]
        if speed > 0:
            due = (events[i][0] - t_stream0) / speed - (_time.monotonic() - t_wall0)
            while due > 0:  # sleep in slices, so that progress can report while waiting
                _time.sleep(min(due, _PROGRESS_SLICE_S))
                if progress is not None:
                    progress(0)
                due = (events[i][0] - t_stream0) / speed - (_time.monotonic() - t_wall0)
        if store is not None:
            res = (store.add_predictions if kind == "prediction" else store.add_labels)(chunk)
            stored, dups = res.stored, res.duplicates
        else:
            stored, dups = _post(url, "predictions" if kind == "prediction" else "labels",
                                 chunk, token)
        out["predictions" if kind == "prediction" else "labels"] += stored
        out["duplicates"] += dups
        if progress is not None:
            progress(j - i)
        i = j
    return out


def service_schema(url: str, *, token: str | None = None) -> tuple[list[str], list[str]]:
    """Labels and attributes of the store behind a running service (``GET /api/schema``)."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url.rstrip("/") + "/api/schema",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            data = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise FairfoundryError(f"{url}/api/schema answered {exc.code}",
                               hint="is the API token right?" if exc.code == 401 else None
                               ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise FairfoundryError(f"cannot reach the monitoring service at {url}: {exc}") from exc
    return list(data["labels"]), list(data["attributes"])


def _post(url: str, endpoint: str, events: list, token: str | None) -> tuple[int, int]:
    import urllib.error
    import urllib.request

    body = json.dumps({"events": events}).encode()
    req = urllib.request.Request(url.rstrip("/") + "/" + endpoint, data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token
                                             else {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            data = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            msg = json.loads(exc.read()).get("error", "")
        except (ValueError, AttributeError):
            msg = ""
        raise FairfoundryError(f"{url}/{endpoint} refused a batch ({exc.code}): {msg}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise FairfoundryError(f"cannot reach the monitoring service at {url}: {exc}") from exc
    return int(data["stored"]), int(data["duplicates"])


def stream_path_check(path) -> Path:
    """The stream path, which must exist."""
    p = Path(path)
    if not p.exists():
        raise FairfoundryError(f"stream file not found: {p}")
    return p
