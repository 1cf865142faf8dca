"""``fairfoundry monitor``: a deployed model's fairness over time (store, replay, evaluate,
report, serve)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

from .._errors import FairfoundryError
from ._app import app
from ._common import rich_progress

log = logging.getLogger(__name__)

monitor_app = typer.Typer(
    help="Monitor a deployed model: event store, per-group windows with and without labels, "
         "drift, alerts, a service with a page and Prometheus metrics.",
    no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")

_STORE = typer.Option(..., "--store", help="The monitoring store (one SQLite file), e.g. "
                                           "--store monitor.db.")
_CONFIG = typer.Option(None, "--config", "-c",
                       help="Monitoring config YAML (windows, reference, thresholds, alert rules); "
                            "default: count windows of 5000, first window as reference, no "
                            "alerts.")


_EMBEDDINGS = typer.Option(
    None, "--embeddings", "-e",
    help="Image embeddings of the stored predictions, for per-group embedding drift (a domain "
         "classifier's AUC, reference vs window): a `fairfoundry embed --out` directory "
         "(aligned by sample_id) or a .npy with one row per prediction in time order.")


def _total(st, cfg) -> int | None:
    """(label, window) steps of an evaluation: known in advance for count windows."""
    if cfg.windows.by != "count":
        return None
    n = st.counts()["predictions"]
    return len(st.labels) * -(-n // int(cfg.windows.size))


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _config(path: Path | None):
    from ..monitor import MonitorConfig, load_config

    return load_config(path) if path is not None else MonitorConfig()


def _token(token_file: Path | None) -> str | None:
    if token_file is not None:
        if not token_file.exists():
            raise FairfoundryError(f"--token-file {token_file} not found")
        tok = token_file.read_text(encoding="utf-8").strip()
        if not tok:
            raise FairfoundryError(f"--token-file {token_file} is empty")
        return tok
    return os.environ.get("FAIRFOUNDRY_MONITOR_TOKEN") or None


@monitor_app.command("init")
def init_command(
    store: Path = _STORE,
    label: list[str] = typer.Option(..., "--label", "-l",
                                    help="Finding scored by the model (repeat or comma-separate), "
                                         "e.g. --label Effusion."),
    attribute: list[str] | None = typer.Option(None, "--sensitive", "-a",
                                               help="Protected attribute sent with each prediction, "
                                                    "e.g. --sensitive sex,age_group,view."),
    attribute_old: list[str] | None = typer.Option(None, "--attribute", hidden=True,
                                                   help="Old spelling of --sensitive."),
) -> None:
    """Create an empty monitoring store declaring its labels and attributes."""
    attribute = list(attribute or []) + list(attribute_old or [])
    if not attribute:
        raise FairfoundryError("monitor init needs --sensitive (the protected attributes sent with each prediction)")
    from ..monitor import EventStore

    if store.exists():
        raise FairfoundryError(f"--store {store} already exists",
                               hint="a store is created once; use another path")
    EventStore(store, labels=_split(label), attributes=_split(attribute), create=True).close()
    typer.echo(f"created {store}")


@monitor_app.command("replay")
def replay_command(
    stream: Path = typer.Argument(..., help="Stream file (CSV/Parquet): sample_id, time, "
                                            "score_<label>, attributes, optional y_<label> and "
                                            "label_time."),
    store: Path | None = typer.Option(None, "--store",
                                      help="The store to write (created from the stream's "
                                           "columns when absent); not needed with --url."),
    speed: float = typer.Option(0.0, "--speed",
                                help="Stream seconds per real second (0: as fast as possible)."),
    url: str | None = typer.Option(None, "--url",
                                   help="Post to a running `monitor serve` at this URL instead "
                                        "of writing the store directly."),
    batch: int = typer.Option(500, "--batch", help="Events per batch."),
    token_file: Path | None = typer.Option(None, "--token-file",
                                           help="File holding the API token for --url "
                                                "(else $FAIRFOUNDRY_MONITOR_TOKEN)."),
) -> None:
    """Replay a recorded stream (simulate a deployment); creates the store when absent.

    Labels are the stream's score_<label> columns, attributes every column that is not
    sample_id, time, patient_id, model_version, label_time, score_* or y_*.
    """
    from .._io import read_table
    from ..monitor import EventStore, read_stream, replay
    from ..monitor._replay import service_schema, stream_path_check, stream_schema

    stream_path_check(stream)
    token = _token(token_file)
    st = None
    if url is None:
        if store is None:
            raise FairfoundryError("replay needs --store (or --url of a running service)")
        labels, attributes = stream_schema(read_table(stream, what="stream"))
        st = EventStore(store, labels=None if store.exists() else labels,
                        attributes=None if store.exists() else attributes, create=True)
        labels, attributes = st.labels, st.attributes
    else:
        labels, attributes = service_schema(url, token=token)
    try:
        events = read_stream(stream, labels=labels, attributes=attributes)
        with rich_progress("replaying", len(events)) as advance:
            counts = replay(events, store=st, url=url, token=token, speed=speed, batch=batch,
                            progress=advance)
    finally:
        if st is not None:
            st.close()
    typer.echo(f"replayed {counts['predictions']} predictions and {counts['labels']} labels "
               f"({counts['duplicates']} duplicates ignored) into {url or store}")


@monitor_app.command("evaluate")
def evaluate_command(
    store: Path = _STORE,
    config: Path | None = _CONFIG,
    embeddings: Path | None = _EMBEDDINGS,
) -> None:
    """Evaluate every window and the alert rules; store results and alerts; print alerts."""
    from ..monitor import EventStore, evaluate_store

    cfg = _config(config)
    with EventStore(store) as st:
        n = st.counts()["predictions"]
        if n == 0:
            raise FairfoundryError(f"--store {store} holds no predictions yet")
        with rich_progress("evaluating windows", _total(st, cfg)) as advance:
            results, alerts = evaluate_store(st, cfg, progress=advance, embeddings=embeddings)
    typer.echo(f"{results['window'].nunique()} windows, {len(alerts)} alert(s)")
    for a in alerts.itertuples(index=False):
        typer.echo(f"  {a.message}")


@monitor_app.command("report")
def report_command(
    store: Path = _STORE,
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (report.html, "
                                                      "windows.csv, alerts.csv, report.json)."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Re-evaluate with this config first (otherwise the "
                                     "stored results of the last evaluation are reported)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", "-e",
        help="Re-evaluate with per-group embedding drift from these embeddings first (as "
             "`monitor evaluate --embeddings`; with or without --config)."),
) -> None:
    """Write a static HTML report of the store (per-group time series and alerts)."""
    from .._io import prepare_out_dir
    from ..monitor import EventStore, evaluate_store, write_report

    prepare_out_dir(out, overwrite=overwrite, outputs=["report.html", "windows.csv",
                                                       "alerts.csv", "report.json"])
    with EventStore(store) as st:
        if config is not None or embeddings is not None:
            cfg = _config(config)
            with rich_progress("evaluating windows", _total(st, cfg)) as advance:
                evaluate_store(st, cfg, embeddings=embeddings, progress=advance)
        elif st.results().empty:
            raise FairfoundryError(f"--store {store} has not been evaluated yet",
                                   hint="pass --config, or run `fairfoundry monitor evaluate`")
        path = write_report(st, out, overwrite=overwrite)
    typer.echo(f"wrote {path}")


@monitor_app.command("drift")
def drift_command(
    store: Path = _STORE,
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (drift.csv, "
                                                      "drift.json)."),
    embeddings: Path | None = _EMBEDDINGS,
    config: Path | None = _CONFIG,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
) -> None:
    """Per-group drift of every window against the reference windows: score distributions,
    the attribute mix, and with --embeddings the images themselves (domain classifier AUC
    with its 95 % interval). Writes OUT/drift.csv; prints the groups flagged per window.
    The store is read, not changed."""
    import numpy as np

    from ..monitor import EventStore, drift_windows, write_drift

    cfg = _config(config)
    from .._io import prepare_out_dir

    prepare_out_dir(out, overwrite=overwrite, outputs=["drift.csv", "drift.json"])
    with EventStore(store) as st:
        if st.counts()["predictions"] == 0:
            raise FairfoundryError(f"--store {store} holds no predictions yet")
        with rich_progress("drift per window", _total(st, cfg)) as advance:
            table = drift_windows(st, cfg, embeddings=embeddings, progress=advance)
        path = write_drift(table, out, config=cfg, store=st, embeddings=embeddings,
                           overwrite=overwrite)
    flags = table[table["metric"].isin(["embedding_drift", "score_drift", "mix_drift"])
                  & (table["window"] >= cfg.reference_windows) & (table["complete"] == 1)
                  & (table["group"] != "all")]
    auc = table[table["metric"] == "embedding_auc"].set_index(["window", "attribute", "group"])
    n_win = int(table["window"].max()) + 1 if len(table) else 0
    typer.echo(f"{n_win} windows ({cfg.reference_windows} reference); drift flagged per "
               "complete window (attribute=group):")
    for k, sub in flags[flags["estimate"] == 1].groupby("window", sort=True):
        parts = []
        for kind, metric in (("images", "embedding_drift"), ("scores", "score_drift"),
                             ("mix", "mix_drift")):
            sel = sub[sub["metric"] == metric]
            if metric == "embedding_drift":
                names = []
                for r in sel.itertuples(index=False):
                    a = auc.loc[(k, r.attribute, r.group)]
                    ci = (f" [{a['ci_low']:.2f}, {a['ci_high']:.2f}]"
                          if np.isfinite(a["ci_low"]) else "")
                    names.append(f"{r.attribute}={r.group} AUC {a['estimate']:.2f}{ci}")
            elif metric == "mix_drift":
                names = sorted(set(sel["attribute"]))
            else:
                names = sorted({f"{r.attribute}={r.group} ({r.label})"
                                for r in sel.itertuples(index=False)})
            if names:
                parts.append(f"{kind}: " + ", ".join(names))
        typer.echo(f"  window {k}: " + "; ".join(parts))
    if embeddings is None:
        typer.echo("  (no --embeddings: image drift not computed)")
    typer.echo(f"wrote {path}")


@monitor_app.command("serve")
def serve_command(
    store: Path = _STORE,
    port: int = typer.Option(8000, "--port", help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Interface to bind (loopback by default; 0.0.0.0 exposes the "
                                  "service to the network: set a token)."),
    config: Path | None = _CONFIG,
    evaluate_every: float = typer.Option(30.0, "--evaluate-every",
                                         help="Seconds between background evaluations when new "
                                              "events arrived (0: only on POST /evaluate)."),
    token_file: Path | None = typer.Option(None, "--token-file",
                                           help="File holding the API token (else "
                                                "$FAIRFOUNDRY_MONITOR_TOKEN; none: no token)."),
    label: list[str] | None = typer.Option(None, "--label", "-l",
                                           help="With --sensitive: create the store if absent."),
    attribute: list[str] | None = typer.Option(None, "--sensitive", "-a",
                                               help="Protected attributes of a store created here."),
    attribute_old: list[str] | None = typer.Option(None, "--attribute", hidden=True,
                                                   help="Old spelling of --sensitive."),
    sync: str = typer.Option("normal", "--sync",
                             help="normal: an acknowledged batch survives a crash of the "
                                  "server; full: also a power loss (one fsync per batch)."),
) -> None:
    """Serve the store over HTTP: POST /predictions, POST /labels, GET /metrics, GET /."""
    try:
        import uvicorn
    except ImportError as exc:
        raise FairfoundryError("the monitoring service needs the monitor extra",
                               hint="pip install 'fairfoundry[monitor]'") from exc
    from ..monitor import EventStore, create_app

    if not 0 < port < 65536:
        raise FairfoundryError(f"--port {port} is not a TCP port")
    cfg = _config(config)
    attribute = list(attribute or []) + list(attribute_old or [])
    create = bool(label) and bool(attribute)
    st = EventStore(store, labels=_split(label) or None, attributes=_split(attribute) or None,
                    create=create, sync=sync)
    token = _token(token_file)
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        log.warning("serving on %s without an API token", host)
    application = create_app(st, token=token, config=cfg,
                             evaluate_every=evaluate_every or None)
    typer.echo(f"serving {store} on http://{host}:{port}", err=True)
    uvicorn.run(application, host=host, port=port, log_level="warning", workers=1)
