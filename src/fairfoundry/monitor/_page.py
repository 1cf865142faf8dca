"""The monitoring page: per-group time series (inline SVG) and alerts, from a jinja2 template.

The same page is served at ``GET /`` and written by ``fairfoundry monitor report``; it needs no
script and no network.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["render_page", "write_report", "CHART_METRICS"]

#: metrics plotted per attribute, in page order
CHART_METRICS = ("auc", "est_auc", "tpr", "est_tpr", "score_wasserstein", "share")
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
_W, _H = 340, 190


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}f}"


def _chart(sub: pd.DataFrame, metric: str, attribute: str, n_windows: int, min_n: int,
           alert_windows: list[int]) -> dict | None:
    est = pd.to_numeric(sub["estimate"], errors="coerce").to_numpy(dtype=np.float64)
    sub = sub[np.isfinite(est) & (pd.to_numeric(sub["n"]).to_numpy() >= min_n)]
    if sub.empty:
        return None
    lo, hi = float(sub["estimate"].min()), float(sub["estimate"].max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    x0, x1, y0, y1 = 40.0, _W - 10.0, 10.0, _H - 25.0

    def X(k):
        return x0 + (x1 - x0) * (k + 0.5) / max(n_windows, 1)

    def Y(v):
        return y1 - (y1 - y0) * (v - lo) / (hi - lo)

    series = []
    for i, (group, g) in enumerate(sub.groupby("group", sort=True)):
        g = g.sort_values("window")
        pts = " ".join(f"{X(k):.1f},{Y(v):.1f}" for k, v in zip(g["window"], g["estimate"],
                                                                  strict=True))
        series.append({"name": str(group), "color": _COLORS[i % len(_COLORS)], "points": pts})
    yt = [{"y": round(Y(v), 1), "text": f"{v:.2f}"} for v in np.linspace(lo + pad, hi - pad, 4)]
    step = max(1, n_windows // 8)
    xt = [{"x": round(X(k), 1), "text": str(k)} for k in range(0, n_windows, step)]
    return {"metric": metric, "attribute": attribute, "title": f"{metric} by {attribute}",
            "w": _W, "h": _H, "series": series, "yticks": yt, "xticks": xt,
            "alert_x": [round(X(k), 1) for k in sorted(set(alert_windows))]}


def render_page(store, *, title: str = "fairfoundry monitor", min_n: int = 30,
                refresh: int | None = None, max_labels: int = 20) -> str:
    """HTML of the monitoring page of ``store`` (its stored window results and alerts).

    Parameters
    ----------
    store : EventStore
    min_n : int
        Points backed by fewer rows are not plotted.
    refresh : int, optional
        Seconds between automatic reloads (the served page); None for a static report.
    max_labels : int
        Labels shown (the store's first ones), bounding the page's size.
    """
    import jinja2

    res = store.results()
    alerts = store.alerts()
    counts = store.counts()
    meta_windows = int(res["window"].max()) + 1 if len(res) else 0
    sections = []
    seen = [a for a in dict.fromkeys(res["attribute"]) if a not in ("all",)]
    attributes = [a for a in store.attributes if a in seen] + [
        a for a in seen if a not in store.attributes]  # then intersections
    plotted = res[pd.to_numeric(res["complete"]) == 1] if len(res) else res
    series = [(label, label, CHART_METRICS) for label in store.labels[:max_labels]]
    if len(res) and (res["metric"] == "embedding_auc").any():  # evaluated with embeddings
        series.append(("*", "images (embedding drift, all labels)", ("embedding_auc",)))
    for label, heading, metrics in series:
        lr = plotted[plotted["label"] == label]
        charts = []
        for metric in metrics:
            for attribute in attributes:
                sub = lr[(lr["metric"] == metric) & (lr["attribute"] == attribute)]
                aw = alerts[(alerts["label"] == label) & (alerts["attribute"] == attribute)
                            & (alerts["metric"] == metric)]["window"].tolist()
                ch = _chart(sub, metric, attribute, meta_windows, min_n, aw)
                if ch is not None:
                    charts.append(ch)
        if charts:
            sections.append({"label": heading, "charts": charts})
    latest = []
    done = res[res["complete"] == 1]
    if len(done):
        k = int(done["window"].max())
        lw = done[done["window"] == k]
        piv = lw.set_index(["label", "attribute", "group", "metric"])
        keys = lw[lw["metric"] == "n"][["label", "attribute", "group"]].drop_duplicates()
        for r in keys.itertuples(index=False):
            def get(m, col="estimate", r=r):
                key = (r.label, r.attribute, r.group, m)
                return piv.loc[key, col] if key in piv.index else float("nan")

            def with_ci(m):
                return f"{_fmt(get(m))} ({_fmt(get(m, 'ci_low'))}–{_fmt(get(m, 'ci_high'))})"

            latest.append({"label": r.label, "attribute": r.attribute, "group": r.group,
                           "n": int(get("n")), "n_labelled": int(get("n_labelled")),
                           "auc": with_ci("auc"), "est_auc": with_ci("est_auc"),
                           "drift": _fmt(get("score_wasserstein"))})
    alert_rows = [{"window": int(a.window), "rule": a.rule, "label": a.label,
                   "attribute": a.attribute, "group": a.group, "metric": a.metric,
                   "value": _fmt(a.value, 4), "threshold": f"{a.threshold:g}", "n": int(a.n)}
                  for a in alerts.itertuples(index=False)]
    env = jinja2.Environment(loader=jinja2.PackageLoader("fairfoundry.monitor", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    reference = store.meta_value("reference_windows") or "see the config"
    return env.get_template("monitor.html.j2").render(
        title=title, store=str(store.path), counts=counts, n_windows=meta_windows,
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"), alerts=alert_rows,
        sections=sections, latest=latest, refresh=refresh, min_n=min_n,
        reference_windows=reference)


def write_report(store, out, *, overwrite: bool = False, title: str = "fairfoundry monitor",
                 min_n: int = 30) -> Path:
    """Write ``OUT/report.html`` (the page), ``OUT/windows.csv``, ``OUT/alerts.csv`` and a
    provenance sidecar ``OUT/report.json``, all or none (staged, then moved)."""
    from .._io import prepare_out_dir, staged_dir, write_sidecar, write_table_atomic

    outputs = ["report.html", "windows.csv", "alerts.csv", "report.json"]
    out = prepare_out_dir(out, overwrite=overwrite, outputs=outputs)
    html = render_page(store, title=title, min_n=min_n)
    with staged_dir(out) as stage:
        (stage / "report.html").write_text(html, encoding="utf-8")
        write_table_atomic(stage / "windows.csv", store.results(), report=True)
        write_table_atomic(stage / "alerts.csv", store.alerts(), report=True)
        write_sidecar(stage / "report.json", kind="monitor-report",
                      config={"title": title, "min_n": min_n},
                      inputs={"store": str(store.path), **store.counts()})
    return out / "report.html"


