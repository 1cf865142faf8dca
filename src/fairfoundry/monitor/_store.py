"""The monitoring event store: one SQLite file in WAL mode.

Prediction events (sample id, patient id, time, one score per label, protected attributes, model
version) and label events (arriving later, joined by sample id) are written in transactions:
a batch is stored whole or not at all. Primary keys make re-sent events idempotent: an event
identical to a stored one is acknowledged as a duplicate and not stored twice; an event that
reuses a stored sample id with different content is refused with the reason.

The store declares its labels and attributes when it is created (a ``meta`` table), and records
a schema version; a store written by a newer fairfoundry is refused rather than misread.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .._errors import FairfoundryError

__all__ = ["EventStore", "IngestResult", "ConflictError", "STORE_SCHEMA_VERSION"]

#: the schema version this fairfoundry writes and the newest it reads
STORE_SCHEMA_VERSION = 1
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_RESERVED = {"sample_id", "patient_id", "time", "model_version", "seq", "label", "y"}


def _check_names(names: Iterable[str], *, what: str) -> list[str]:
    out = [str(n) for n in names]
    if not out:
        raise FairfoundryError(f"a monitoring store needs at least one {what}")
    for n in out:
        if not _NAME.match(n) or n in _RESERVED:
            raise FairfoundryError(
                f"{what} name {n!r} is not allowed",
                hint="use letters, digits and underscores (not starting with a digit), not one of "
                     + ", ".join(sorted(_RESERVED)))
    if len(set(out)) != len(out):
        raise FairfoundryError(f"{what} names repeat: {out}")
    return out


class ConflictError(FairfoundryError):
    """An event contradicts one already stored (same key, different content)."""


@dataclass(frozen=True)
class IngestResult:
    """What a batch did: ``stored`` new events, ``duplicates`` identical re-sends ignored."""

    stored: int
    duplicates: int


class EventStore:
    """An embedded, crash-safe event store for one deployed model (SQLite, WAL mode).

    Parameters
    ----------
    path : path of the store file
    labels, attributes : list of str, optional
        Needed to create a new store (the findings scored and the protected attributes
        recorded with each prediction); when opening an existing store they must match it or
        be omitted.
    create : bool
        Create the store when the file does not exist (otherwise a missing file is an error).
    sync : {"normal", "full"}
        SQLite ``synchronous`` level. ``"normal"`` (default): in WAL mode a committed batch
        survives any crash of the process (``kill -9``); a power loss may lose the last batches
        but never corrupts the file. ``"full"``: also survives a power loss (one fsync per batch).

    Notes
    -----
    ``PRAGMA journal_mode=WAL``: a batch that was acknowledged (its transaction committed)
    survives a crash of the process, and with ``sync="full"`` of the machine. One
    connection per store object, guarded by a lock, so the object can be shared by the
    threads of a web server; several processes may read while one writes.
    """

    def __init__(self, path, *, labels=None, attributes=None, create: bool = False,
                 sync: str = "normal"):
        self.path = Path(path)
        if sync not in ("normal", "full"):
            raise FairfoundryError(f"sync={sync!r} is not one of normal, full")
        exists = self.path.exists()
        if not exists and not create:
            raise FairfoundryError(f"monitoring store not found: {self.path}",
                                   hint="create it with `fairfoundry monitor init`")
        if exists and self.path.is_dir():
            raise FairfoundryError(f"monitoring store {self.path} is a directory")
        if not exists and (labels is None or attributes is None):
            raise FairfoundryError(
                f"creating monitoring store {self.path} needs labels and attributes")
        self._lock = threading.RLock()
        try:
            self._con = sqlite3.connect(str(self.path), check_same_thread=False,
                                        isolation_level=None, timeout=30.0)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute(f"PRAGMA synchronous={sync.upper()}")
            self._con.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise FairfoundryError(f"{self.path} is not a monitoring store (SQLite): {exc}") from exc
        try:
            if self._has_table("meta"):
                self._load_meta(labels, attributes)
            elif exists and self._has_any_table():
                raise FairfoundryError(f"{self.path} is an SQLite file but not a monitoring store")
            elif labels is None or attributes is None:
                raise FairfoundryError(f"{self.path} is empty, not a monitoring store",
                                       hint="create it with `fairfoundry monitor init`")
            else:
                self._create(_check_names(labels, what="label"),
                             _check_names(attributes, what="attribute"))
        except BaseException:
            self._con.close()
            raise

    # -- schema --------------------------------------------------------------------------
    def _has_table(self, name: str) -> bool:
        try:
            row = self._con.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise FairfoundryError(f"{self.path} is not a monitoring store (SQLite): {exc}") from exc
        return row is not None

    def _has_any_table(self) -> bool:
        return self._con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None

    def _create(self, labels: list[str], attributes: list[str]) -> None:
        cols = ", ".join([f'"a_{a}" TEXT' for a in attributes] + [f'"s_{s}" REAL' for s in labels])
        with self._tx() as cur:
            cur.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            cur.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("schema_version", str(STORE_SCHEMA_VERSION)),
                ("labels", json.dumps(labels)), ("attributes", json.dumps(attributes))])
            cur.execute(f"CREATE TABLE predictions (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                        f"sample_id TEXT NOT NULL UNIQUE, patient_id TEXT, time REAL NOT NULL, "
                        f"model_version TEXT, {cols})")
            cur.execute("CREATE INDEX predictions_time ON predictions (time, seq)")
            cur.execute("CREATE TABLE labels (sample_id TEXT NOT NULL REFERENCES "
                        "predictions(sample_id), label TEXT NOT NULL, y INTEGER NOT NULL, "
                        "time REAL NOT NULL, PRIMARY KEY (sample_id, label)) WITHOUT ROWID")
            cur.execute("CREATE TABLE window_results (window INTEGER, start REAL, end REAL, "
                        "label TEXT, attribute TEXT, grp TEXT, kind TEXT, metric TEXT, "
                        "estimate REAL, ci_low REAL, ci_high REAL, n INTEGER, complete INTEGER, "
                        "reason TEXT)")
            cur.execute("CREATE TABLE alerts (window INTEGER, rule TEXT, label TEXT, "
                        "attribute TEXT, grp TEXT, metric TEXT, value REAL, threshold REAL, "
                        "n INTEGER, message TEXT, PRIMARY KEY (window, rule, label, attribute, grp))"
                        " WITHOUT ROWID")
        self.labels, self.attributes = labels, attributes

    def _load_meta(self, labels, attributes) -> None:
        meta = dict(self._con.execute("SELECT key, value FROM meta").fetchall())
        try:
            version = int(meta.get("schema_version", "0"))
        except ValueError:
            version = -1
        if version > STORE_SCHEMA_VERSION:
            raise FairfoundryError(
                f"monitoring store {self.path} has schema version {version}; this fairfoundry "
                f"reads versions up to {STORE_SCHEMA_VERSION}",
                hint="upgrade fairfoundry to read it (the store was not changed)")
        if version < 1:
            raise FairfoundryError(f"monitoring store {self.path} has no valid schema version")
        self.labels = json.loads(meta["labels"])
        self.attributes = json.loads(meta["attributes"])
        for given, have, what in ((labels, self.labels, "labels"),
                                  (attributes, self.attributes, "attributes")):
            if given is not None and list(given) != have:
                raise FairfoundryError(
                    f"monitoring store {self.path} was created with {what} {have}, not "
                    f"{list(given)}")

    class _Tx:
        def __init__(self, store):
            self.store = store

        def __enter__(self):
            self.store._lock.acquire()
            try:
                self.cur = self.store._con.cursor()
                self.cur.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.store._lock.release()
                raise
            return self.cur

        def __exit__(self, et, ev, tb):
            try:
                self.cur.execute("COMMIT" if et is None else "ROLLBACK")
            finally:
                self.store._lock.release()
            return False

    def _tx(self):
        return EventStore._Tx(self)

    def close(self) -> None:
        """Close the connection (the file stays consistent at any point anyway)."""
        with self._lock:
            self._con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- ingestion -----------------------------------------------------------------------
    def _validate_prediction(self, ev: Mapping, where: str) -> tuple:
        allowed = {"sample_id", "patient_id", "time", "model_version", "scores", "attributes"}
        extra = set(ev) - allowed
        if extra:
            raise FairfoundryError(f"{where}: unknown field(s) {sorted(extra)}",
                                   hint="fields are: " + ", ".join(sorted(allowed)))
        sid = ev.get("sample_id")
        if not isinstance(sid, str) or not sid:
            raise FairfoundryError(f"{where}: sample_id must be a non-empty string")
        t = ev.get("time")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise FairfoundryError(f"{where} ({sid}): time must be a finite number (seconds)")
        scores = ev.get("scores")
        if not isinstance(scores, Mapping) or set(scores) != set(self.labels):
            got = sorted(scores) if isinstance(scores, Mapping) else type(scores).__name__
            raise FairfoundryError(f"{where} ({sid}): scores must give exactly the labels "
                                   f"{self.labels}, got {got}")
        vals = []
        for lab in self.labels:
            s = scores[lab]
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not (0.0 <= s <= 1.0):
                raise FairfoundryError(f"{where} ({sid}): score {lab}={s!r} is not a "
                                       "probability in [0, 1]")
            vals.append(float(s))
        attrs = ev.get("attributes") or {}
        if not isinstance(attrs, Mapping) or set(attrs) - set(self.attributes):
            raise FairfoundryError(
                f"{where} ({sid}): unknown attribute(s) "
                f"{sorted(set(attrs) - set(self.attributes)) if isinstance(attrs, Mapping) else attrs}",
                hint="attributes of this store are: " + ", ".join(self.attributes))
        avals = []
        for a in self.attributes:
            v = attrs.get(a)
            if v is not None and not isinstance(v, (str, int, float)):
                raise FairfoundryError(f"{where} ({sid}): attribute {a} must be a string or number")
            avals.append(None if v is None else str(v))
        pid, mv = ev.get("patient_id"), ev.get("model_version")
        for name, v in (("patient_id", pid), ("model_version", mv)):
            if v is not None and not isinstance(v, str):
                raise FairfoundryError(f"{where} ({sid}): {name} must be a string")
        return (sid, pid, float(t), mv, *avals, *vals)

    def add_predictions(self, events: Iterable[Mapping]) -> IngestResult:
        """Store prediction events in one transaction (all or none).

        Each event: ``{"sample_id": str, "time": seconds, "scores": {label: p},
        "attributes": {attribute: value}, "patient_id": str?, "model_version": str?}``.

        Raises
        ------
        FairfoundryError
            Naming the event (index and sample id) on unknown fields, scores outside [0, 1],
            missing labels, a sample id twice in the batch, or a stored sample id with
            different content. Nothing of the batch is stored then.
        """
        rows = [self._validate_prediction(ev, f"prediction {i}") if isinstance(ev, Mapping)
                else _not_object(i) for i, ev in enumerate(events)]
        ids = [r[0] for r in rows]
        if len(set(ids)) != len(ids):
            seen: set = set()
            dup = next(i for i in ids if i in seen or seen.add(i))
            raise FairfoundryError(f"sample_id {dup!r} appears twice in one batch")
        cols = ["sample_id", "patient_id", "time", "model_version",
                *[f"a_{a}" for a in self.attributes], *[f"s_{s}" for s in self.labels]]
        qcols = ", ".join(f'"{c}"' for c in cols)
        with self._tx() as cur:
            existing = self._existing(cur, "predictions", qcols, ids)
            new = []
            dups = 0
            for r in rows:
                old = existing.get(r[0])
                if old is None:
                    new.append(r)
                elif tuple(old) == r:
                    dups += 1
                else:
                    raise ConflictError(
                        f"sample_id {r[0]!r} is already stored with different content",
                        hint="prediction events are immutable; use a new sample_id")
            cur.executemany(f"INSERT INTO predictions ({qcols}) VALUES "
                            f"({', '.join('?' * len(cols))})", new)
        return IngestResult(stored=len(new), duplicates=dups)

    @staticmethod
    def _existing(cur, table: str, qcols: str, ids: list[str]) -> dict:
        out: dict = {}
        for i in range(0, len(ids), 900):
            chunk = ids[i:i + 900]
            q = f"SELECT {qcols} FROM {table} WHERE sample_id IN ({', '.join('?' * len(chunk))})"
            for row in cur.execute(q, chunk):
                out[row[0]] = row
        return out

    def add_labels(self, events: Iterable[Mapping]) -> IngestResult:
        """Store label events ``{"sample_id", "label", "y": 0/1, "time"}`` in one transaction.

        Raises
        ------
        FairfoundryError
            On unknown fields, an unknown label name, ``y`` not 0/1, a sample id with no stored
            prediction, the same (sample, label) twice in the batch, or a stored label with a
            different value. Nothing of the batch is stored then.
        """
        rows = []
        allowed = {"sample_id", "label", "y", "time"}
        for i, ev in enumerate(events):
            if not isinstance(ev, Mapping):
                _not_object(i)
            extra = set(ev) - allowed
            if extra:
                raise FairfoundryError(f"label {i}: unknown field(s) {sorted(extra)}",
                                       hint="fields are: " + ", ".join(sorted(allowed)))
            sid, lab, y, t = ev.get("sample_id"), ev.get("label"), ev.get("y"), ev.get("time")
            if not isinstance(sid, str) or not sid:
                raise FairfoundryError(f"label {i}: sample_id must be a non-empty string")
            if lab not in self.labels:
                raise FairfoundryError(f"label {i} ({sid}): unknown label {lab!r}",
                                       hint="labels of this store are: " + ", ".join(self.labels))
            if isinstance(y, bool) or y not in (0, 1):
                raise FairfoundryError(f"label {i} ({sid}): y must be 0 or 1, got {y!r}")
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
                raise FairfoundryError(f"label {i} ({sid}): time must be a finite number")
            rows.append((sid, lab, int(y), float(t)))
        keys = [(r[0], r[1]) for r in rows]
        if len(set(keys)) != len(keys):
            raise FairfoundryError("the same (sample_id, label) appears twice in one batch")
        ids = sorted({r[0] for r in rows})
        with self._tx() as cur:
            known = self._existing(cur, "predictions", "sample_id", ids)
            unknown = [s for s in ids if s not in known]
            if unknown:
                raise FairfoundryError(
                    f"labels for {len(unknown)} unknown sample id(s), e.g. {unknown[:3]}",
                    hint="post the prediction before its label")
            old: dict = {}
            for i in range(0, len(ids), 900):
                chunk = ids[i:i + 900]
                q = ("SELECT sample_id, label, y, time FROM labels WHERE sample_id IN "
                     f"({', '.join('?' * len(chunk))})")
                for row in cur.execute(q, chunk):
                    old[(row[0], row[1])] = tuple(row)
            new, dups = [], 0
            for r in rows:
                o = old.get((r[0], r[1]))
                if o is None:
                    new.append(r)
                elif o[2] == r[2]:
                    dups += 1
                else:
                    raise ConflictError(
                        f"label {r[1]} of sample {r[0]!r} is already stored as y={o[2]}")
            cur.executemany("INSERT INTO labels VALUES (?, ?, ?, ?)", new)
        return IngestResult(stored=len(new), duplicates=dups)

    # -- reading -------------------------------------------------------------------------
    def counts(self) -> dict:
        """Numbers of stored predictions, labels and alerts."""
        with self._lock:
            q = self._con.execute
            return {"predictions": q("SELECT count(*) FROM predictions").fetchone()[0],
                    "labels": q("SELECT count(*) FROM labels").fetchone()[0],
                    "alerts": q("SELECT count(*) FROM alerts").fetchone()[0]}

    def predictions(self):
        """All predictions as a DataFrame in arrival order within time: ``seq, sample_id,
        patient_id, time, model_version``, the attributes, then ``score_<label>``."""
        import pandas as pd

        cols = ["seq", "sample_id", "patient_id", "time", "model_version",
                *[f"a_{a}" for a in self.attributes], *[f"s_{s}" for s in self.labels]]
        with self._lock:
            cur = self._con.execute(
                f"SELECT {', '.join(chr(34) + c + chr(34) for c in cols)} FROM predictions "
                "ORDER BY time, seq")
            rows = cur.fetchall()
        names = ["seq", "sample_id", "patient_id", "time", "model_version", *self.attributes,
                 *[f"score_{s}" for s in self.labels]]
        frame = pd.DataFrame.from_records(rows, columns=names)
        return frame

    def labels_frame(self):
        """All label events: ``sample_id, label, y, time``."""
        import pandas as pd

        with self._lock:
            rows = self._con.execute("SELECT sample_id, label, y, time FROM labels").fetchall()
        return pd.DataFrame.from_records(rows, columns=["sample_id", "label", "y", "time"])

    def meta_value(self, key: str) -> str | None:
        """A value of the ``meta`` table (``schema_version``, ``labels``, ``attributes``,
        ``config`` of the last evaluation, ``reference_windows``), or None."""
        with self._lock:
            row = self._con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def replace_results(self, results, alerts, *, meta: dict | None = None) -> int:
        """Replace the stored window results and add new alerts, in one transaction.

        Returns the number of alerts that were not stored before (an alert is keyed by window,
        rule, label, attribute and group, so re-evaluating does not repeat it).
        """
        res_rows = list(results.itertuples(index=False, name=None)) if len(results) else []
        with self._tx() as cur:
            cur.execute("DELETE FROM window_results")
            cur.executemany("INSERT INTO window_results VALUES "
                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", res_rows)
            before = cur.execute("SELECT count(*) FROM alerts").fetchone()[0]
            cur.executemany("INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [tuple(a) for a in alerts])
            after = cur.execute("SELECT count(*) FROM alerts").fetchone()[0]
            for k, v in (meta or {}).items():
                cur.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, str(v)))
        return after - before

    def results(self):
        """The stored window results (see :func:`fairfoundry.monitor.evaluate_windows`)."""
        import pandas as pd

        from ._windows import RESULT_COLUMNS

        with self._lock:
            rows = self._con.execute("SELECT * FROM window_results").fetchall()
        return pd.DataFrame.from_records(rows, columns=list(RESULT_COLUMNS))

    def alerts(self):
        """Every alert raised so far: ``window, rule, label, attribute, group, metric, value,
        threshold, n, message``."""
        import pandas as pd

        with self._lock:
            rows = self._con.execute("SELECT * FROM alerts ORDER BY window, rule").fetchall()
        return pd.DataFrame.from_records(rows, columns=["window", "rule", "label", "attribute",
                                                        "group", "metric", "value", "threshold",
                                                        "n", "message"])


def _not_object(i: int):
    raise FairfoundryError(f"event {i} is not a JSON object")
