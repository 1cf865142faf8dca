"""Evaluate a store: windows, alerts, written back in one transaction."""

from __future__ import annotations

import logging
import os

import pandas as pd

from ._alerts import evaluate_alerts
from ._config import MonitorConfig
from ._embeddings import read_store_embeddings
from ._store import EventStore
from ._windows import check_stream, evaluate_windows

__all__ = ["evaluate_store", "drift_windows", "write_drift"]

log = logging.getLogger("fairfoundry.monitor")


def evaluate_store(store: EventStore, config: MonitorConfig, *, progress=None,
                   embeddings=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every window of ``store`` and its alert rules; store both.

    Window results replace the stored ones (a re-evaluation with more labels reconciles the
    label-free estimates with the realised metrics); alerts are added, keyed by window, rule
    and series, so an alert is stored and logged once however often the store is evaluated.

    ``embeddings`` (an array with one row per stored prediction, in time order, or the path
    of a ``fairfoundry embed`` output directory / ``.npy``: :func:`read_store_embeddings`) adds
    the per-group embedding drift (``embedding_auc``, ``embedding_drift``) to the results, where
    alert rules can watch it.

    Returns
    -------
    (results, alerts) : the window results (see :func:`evaluate_windows`) and every alert
    raised by this evaluation.
    """
    preds = store.predictions()
    check_stream(preds, config, store.labels)
    if embeddings is not None and isinstance(embeddings, (str, os.PathLike)):
        embeddings = read_store_embeddings(embeddings, preds["sample_id"])
    results = evaluate_windows(preds, store.labels_frame(), labels_names=store.labels,
                               attributes=store.attributes, config=config, progress=progress,
                               embeddings=embeddings)
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


def drift_windows(store: EventStore, config: MonitorConfig, *, embeddings=None,
                  progress=None) -> pd.DataFrame:
    """Per-window, per-group drift of ``store`` against its reference windows, without writing
    to the store: the ``drift`` rows (score drift per label; with ``embeddings``, the embedding
    domain classifier's AUC with its interval, label ``*``) and the ``mix`` rows (shares and the
    attribute mix) of :func:`evaluate_windows`. ``embeddings``: as :func:`evaluate_store`."""
    preds = store.predictions()
    check_stream(preds, config, store.labels)
    if embeddings is not None and isinstance(embeddings, (str, os.PathLike)):
        embeddings = read_store_embeddings(embeddings, preds["sample_id"])
    results = evaluate_windows(preds, store.labels_frame(), labels_names=store.labels,
                               attributes=store.attributes,
                               config=config.model_copy(update={"intervals": "none"}),
                               progress=progress, embeddings=embeddings)
    keep = results["kind"].isin(["drift", "mix"])
    return results[keep].reset_index(drop=True)


def write_drift(table: pd.DataFrame, out, *, config: MonitorConfig, store: EventStore,
                embeddings=None, overwrite: bool = False):
    """Write ``OUT/drift.csv`` (``table`` from :func:`drift_windows`) and its sidecar
    ``OUT/drift.json`` (config, store counts, embeddings path), both or neither."""
    from .._io import prepare_out_dir, staged_dir, write_sidecar, write_table_atomic

    out = prepare_out_dir(out, overwrite=overwrite, outputs=["drift.csv", "drift.json"])
    with staged_dir(out) as stage:
        write_table_atomic(stage / "drift.csv", table, report=True)
        write_sidecar(stage / "drift.json", kind="monitor-drift",
                      config=config.model_dump(mode="json"), seed=config.seed,
                      inputs={"store": str(store.path), **store.counts(),
                              "embeddings": None if embeddings is None else str(embeddings)})
    return out / "drift.csv"
