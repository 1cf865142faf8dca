"""Evaluate a store: windows, alerts, written back in one transaction."""

from __future__ import annotations

import logging

import pandas as pd

from ._alerts import evaluate_alerts
from ._config import MonitorConfig
from ._store import EventStore
from ._windows import check_stream, evaluate_windows

__all__ = ["evaluate_store"]

log = logging.getLogger("fairfoundry.monitor")


def evaluate_store(store: EventStore, config: MonitorConfig, *,
                   progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every window of ``store`` and its alert rules; store both.

    Window results replace the stored ones (a re-evaluation with more labels reconciles the
    label-free estimates with the realised metrics); alerts are added, keyed by window, rule
    and series, so an alert is stored and logged once however often the store is evaluated.

    Returns
    -------
    (results, alerts) : the window results (see :func:`evaluate_windows`) and every alert
    raised by this evaluation.
    """
    preds = store.predictions()
    check_stream(preds, config, store.labels)
    results = evaluate_windows(preds, store.labels_frame(), labels_names=store.labels,
                               attributes=store.attributes, config=config, progress=progress)
    alerts = evaluate_alerts(results, config, labels_names=store.labels,
                             attributes=store.attributes)
    before = set(map(tuple, store.alerts()[["window", "rule", "label", "attribute",
                                             "group"]].itertuples(index=False, name=None)))
    store.replace_results(results, alerts.itertuples(index=False, name=None),
                          meta={"config": config.model_dump_json(),
                                "reference_windows": config.reference_windows})
    for a in alerts.itertuples(index=False):
        if (a.window, a.rule, a.label, a.attribute, a.group) not in before:
            log.warning("alert %s", a.message)
    return results, alerts
