"""Fairness monitoring of a deployed model (layer 4).

An embedded event store (:class:`EventStore`, SQLite in WAL mode) takes prediction events and
the label events that arrive later; :func:`evaluate_store` cuts the stream into windows and
computes, per window, label and group, realised metrics with CIs (the evaluation engine), label-free
CBPE estimates (:class:`CBPE`), score drift and attribute mix against reference windows, and the
alerts of YAML rules (:class:`MonitorConfig`). :func:`create_app` serves it over HTTP (FastAPI:
``POST /predictions``, ``POST /labels``, ``GET /metrics``, ``GET /``), :func:`write_report`
writes a static HTML report. See ``docs/monitor.md``.
"""

from ._alerts import ALERT_COLUMNS, evaluate_alerts
from ._cbpe import CBPE, expected_auc, expected_rates
from ._config import RULE_METRICS, AlertRule, MonitorConfig, WindowSpec, load_config
from ._drift import (
    SMALL_REFERENCE,
    domain_classifier_auc,
    jensen_shannon,
    ks_test,
    mix_drift,
    psi,
    score_drift,
    wasserstein_normed,
)
from ._embeddings import read_store_embeddings
from ._page import render_page, write_report
from ._replay import read_stream, replay
from ._run import drift_windows, evaluate_store, write_drift
from ._store import STORE_SCHEMA_VERSION, EventStore, IngestResult
from ._windows import ALL, RESULT_COLUMNS, assign_windows, evaluate_windows

__all__ = [
    "ALERT_COLUMNS", "ALL", "RESULT_COLUMNS", "RULE_METRICS", "SMALL_REFERENCE",
    "STORE_SCHEMA_VERSION", "AlertRule", "CBPE", "EventStore", "IngestResult", "MonitorConfig",
    "WindowSpec", "assign_windows", "create_app", "drift_windows", "domain_classifier_auc", "evaluate_alerts",
    "evaluate_store", "evaluate_windows", "expected_auc", "expected_rates", "jensen_shannon",
    "ks_test", "load_config", "mix_drift", "psi", "read_store_embeddings", "read_stream", "render_page", "replay",
    "score_drift", "wasserstein_normed", "write_drift", "write_report",
]


def __getattr__(name: str):
    if name == "create_app":  # FastAPI is an optional dependency: import it on use
        from ._service import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
