"""The monitoring service: a thin FastAPI app over an :class:`EventStore`.

Endpoints: ``POST /predictions`` and ``POST /labels`` (a batch ``{"events": [...]}``, validated;
a batch is stored whole or not at all), ``POST /evaluate`` (re-evaluate windows and alerts now),
``GET /metrics`` (Prometheus text via ``prometheus-client``), ``GET /`` (the page),
``GET /api/alerts``, ``GET /api/counts``, ``GET /api/schema``, ``GET /healthz``. With a token every endpoint but ``/healthz`` needs
``Authorization: Bearer <token>``.
"""

# no ``from __future__ import annotations``: FastAPI reads the endpoint annotations, which
# name models defined inside create_app.
import hmac
import logging
import math
import threading
from pathlib import Path

from .._errors import FairfoundryError

__all__ = ["create_app", "EXPORTED_METRICS", "MAX_BATCH"]

log = logging.getLogger("fairfoundry.monitor")

#: per-group metrics of the latest complete window exported to Prometheus
EXPORTED_METRICS = ("auc", "est_auc", "tpr", "est_tpr", "fpr", "est_fpr", "score_wasserstein",
                    "share", "n", "n_labelled")
#: most events accepted in one request
MAX_BATCH = 10_000


def _models():
    from pydantic import BaseModel, ConfigDict, Field

    class _Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")

    class Prediction(_Strict):
        sample_id: str = Field(min_length=1, max_length=256)
        time: float = Field(allow_inf_nan=False)
        scores: dict[str, float]
        attributes: dict[str, str | int | float | None] = {}
        patient_id: str | None = Field(None, max_length=256)
        model_version: str | None = Field(None, max_length=128)

    class Label(_Strict):
        sample_id: str = Field(min_length=1, max_length=256)
        label: str
        y: int = Field(ge=0, le=1)
        time: float = Field(allow_inf_nan=False)

    class Predictions(_Strict):
        events: list[Prediction] = Field(min_length=1, max_length=MAX_BATCH)

    class Labels(_Strict):
        events: list[Label] = Field(min_length=1, max_length=MAX_BATCH)

    return Predictions, Labels


def create_app(store, *, token: str | None = None, config=None,
               evaluate_every: float | None = None):
    """Build the FastAPI app serving ``store``.

    Parameters
    ----------
    store : EventStore or path
    token : str, optional
        API token; requests must send ``Authorization: Bearer <token>``.
    config : MonitorConfig, optional
        Windows and alert rules for ``POST /evaluate`` and the periodic evaluation (default:
        :class:`MonitorConfig` defaults).
    evaluate_every : float, optional
        Seconds between background evaluations (only when new events arrived); None: only on
        ``POST /evaluate``.
    """
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    from ._config import MonitorConfig
    from ._page import render_page
    from ._run import evaluate_store
    from ._store import ConflictError, EventStore

    if not isinstance(store, EventStore):
        store = EventStore(Path(store))
    config = config or MonitorConfig()
    Predictions, Labels = _models()
    metrics = _Metrics(store)
    eval_lock = threading.Lock()
    state = {"seen": None}

    def run_evaluation() -> dict:
        with eval_lock:
            counts = store.counts()
            _, alerts = evaluate_store(store, config)
            state["seen"] = (counts["predictions"], counts["labels"])
            return {"windows": int(store.results()["window"].nunique()),
                    "alerts": int(len(alerts))}

    stop = threading.Event()

    def loop():
        while not stop.wait(evaluate_every):
            c = store.counts()
            if state["seen"] != (c["predictions"], c["labels"]) and c["predictions"]:
                try:
                    run_evaluation()
                except FairfoundryError as exc:  # e.g. no labelled reference yet
                    log.warning("evaluation skipped: %s", exc.message)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        th = None
        if evaluate_every:
            th = threading.Thread(target=loop, name="monitor-evaluate", daemon=True)
            th.start()
        yield
        stop.set()

    app = FastAPI(title="fairfoundry monitor", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)

    def auth(request: Request):
        if token is None:
            return
        got = request.headers.get("authorization", "")
        if not hmac.compare_digest(got.encode(), f"Bearer {token}".encode()):
            raise _HTTPError(401, "missing or wrong API token (send Authorization: Bearer ...)")

    @app.exception_handler(_HTTPError)
    async def _http_error(request, exc: _HTTPError):
        return JSONResponse({"error": exc.message, **({"hint": exc.hint} if exc.hint else {})},
                            status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {"loc": (), "msg": "invalid body", "type": ""}
        kind = "rejected_invalid"
        if first.get("type") == "json_invalid":
            metrics.rejected(request.url.path, "malformed_json")
            return JSONResponse({"error": f"malformed JSON: {first.get('msg')}"}, status_code=400)
        parts = []
        for e in errs[:3]:
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            msg = e.get("msg", "invalid")
            if e.get("type") == "extra_forbidden":
                msg, kind = "unknown field", "unknown_field"
            parts.append(f"{loc}: {msg}")
        more = f" (and {len(errs) - 3} more)" if len(errs) > 3 else ""
        metrics.rejected(request.url.path, kind)
        return JSONResponse({"error": "; ".join(parts) + more, "errors": len(errs)},
                            status_code=422)

    def ingest(kind: str, fn, events):
        try:
            res = fn(events)
        except ConflictError as exc:
            metrics.rejected(kind, "conflict")
            raise _HTTPError(409, exc.message, exc.hint) from exc
        except FairfoundryError as exc:
            metrics.rejected(kind, "invalid")
            raise _HTTPError(422, exc.message, exc.hint) from exc
        metrics.ingested(kind, res.stored, res.duplicates)
        return {"stored": res.stored, "duplicates": res.duplicates}

    @app.post("/predictions", dependencies=[Depends(auth)])
    def post_predictions(batch: Predictions):
        return ingest("predictions", store.add_predictions,
                      [e.model_dump(exclude_none=True) for e in batch.events])

    @app.post("/labels", dependencies=[Depends(auth)])
    def post_labels(batch: Labels):
        return ingest("labels", store.add_labels, [e.model_dump() for e in batch.events])

    @app.post("/evaluate", dependencies=[Depends(auth)])
    def post_evaluate():
        try:
            return run_evaluation()
        except FairfoundryError as exc:
            raise _HTTPError(409, exc.message, exc.hint) from exc

    @app.get("/metrics", dependencies=[Depends(auth)])
    def get_metrics():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/alerts", dependencies=[Depends(auth)])
    def get_alerts():
        return JSONResponse(_jsonable(store.alerts().to_dict(orient="records")))

    @app.get("/api/schema", dependencies=[Depends(auth)])
    def get_schema():
        return {"labels": store.labels, "attributes": store.attributes}

    @app.get("/api/counts", dependencies=[Depends(auth)])
    def get_counts():
        return store.counts()

    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(auth)])
    def get_page():
        return HTMLResponse(render_page(store, refresh=30))

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    app.state.store = store
    return app


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, hint: str | None = None):
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


def _jsonable(obj):
    from .._io import to_jsonable

    return to_jsonable(obj)


class _Metrics:
    """Prometheus metrics: ingestion counters and a collector over the latest complete window.

    Label sets are bounded: ``kind`` and ``outcome`` take fixed values; per-group gauges carry
    ``label, attribute, group, metric`` where groups are at most ``max_groups`` per attribute
    (the window evaluation pools the rest) and metrics are :data:`EXPORTED_METRICS`.
    """

    _REASONS = ("malformed_json", "unknown_field", "rejected_invalid", "invalid", "conflict")

    def __init__(self, store):
        from prometheus_client import CollectorRegistry, Counter

        self.registry = CollectorRegistry(auto_describe=False)
        self.events = Counter("fairfoundry_monitor_events", "Events received, by outcome.",
                              ["kind", "outcome"], registry=self.registry)
        self.rejects = Counter("fairfoundry_monitor_rejected_requests",
                               "Requests rejected, by reason.", ["endpoint", "reason"],
                               registry=self.registry)
        self.registry.register(_WindowCollector(store))

    def ingested(self, kind: str, stored: int, duplicates: int) -> None:
        self.events.labels(kind, "stored").inc(stored)
        self.events.labels(kind, "duplicate").inc(duplicates)

    def rejected(self, endpoint: str, reason: str) -> None:
        endpoint = endpoint.strip("/") if endpoint.strip("/") in ("predictions", "labels") \
            else "other"
        self.rejects.labels(endpoint, reason if reason in self._REASONS else "invalid").inc()


class _WindowCollector:
    def __init__(self, store):
        self.store = store

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        counts = self.store.counts()
        g = GaugeMetricFamily("fairfoundry_monitor_store_events", "Events in the store.",
                              labels=["kind"])
        g.add_metric(["predictions"], counts["predictions"])
        g.add_metric(["labels"], counts["labels"])
        yield g
        res = self.store.results()
        alerts = self.store.alerts()
        a = GaugeMetricFamily("fairfoundry_monitor_alerts", "Alerts stored, by rule.",
                              labels=["rule"])
        for rule, n in alerts.groupby("rule").size().items():
            a.add_metric([str(rule)], float(n))
        yield a
        done = res[res["complete"] == 1]
        w = GaugeMetricFamily("fairfoundry_monitor_window",
                              "Index of the latest complete window.")
        m = GaugeMetricFamily("fairfoundry_monitor_group_metric",
                              "Per-group metric of the latest complete window "
                              "(est_* are label-free CBPE estimates).",
                              labels=["label", "attribute", "group", "metric"])
        if len(done):
            k = int(done["window"].max())
            w.add_metric([], k)
            lw = done[(done["window"] == k) & done["metric"].isin(EXPORTED_METRICS)]
            for r in lw.itertuples(index=False):
                if math.isfinite(r.estimate):
                    m.add_metric([r.label, r.attribute, r.group, r.metric], r.estimate)
        yield w
        yield m
