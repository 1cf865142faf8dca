"""Alert rules evaluated over the windows of a stream."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .._errors import FairfoundryError
from ._config import MonitorConfig

__all__ = ["evaluate_alerts", "ALERT_COLUMNS"]

log = logging.getLogger("fairfoundry.monitor")

ALERT_COLUMNS = ("window", "rule", "label", "attribute", "group", "metric", "value", "threshold",
                 "n", "message")


def evaluate_alerts(results: pd.DataFrame, config: MonitorConfig, *, labels_names,
                    attributes) -> pd.DataFrame:
    """Alerts raised by ``config.alerts`` over window ``results``.

    A rule fires at window ``k`` for a (label, attribute, group) series when its condition
    holds in ``consecutive`` complete, non-reference windows ``k - consecutive + 1 .. k`` in a
    row, each with at least ``min_n`` rows (the metric's support: predictions, or labelled
    predictions for realised metrics). The condition is ``estimate op threshold``; with
    ``bound: ci`` the interval bound on the far side (``ci_high < t`` for ``<``, ``ci_low > t``
    for ``>``) must pass. NaN never fires. Each alert is logged as a warning.

    Returns
    -------
    DataFrame with :data:`ALERT_COLUMNS`, one row per (window, rule, series) that fires.
    """
    out: list[tuple] = []
    if results.empty:
        return pd.DataFrame(columns=list(ALERT_COLUMNS))
    for rule in config.alerts:
        if rule.label is not None and rule.label not in labels_names:
            raise FairfoundryError(f"alert rule {rule.name!r}: unknown label {rule.label!r}",
                                   hint="labels are: " + ", ".join(labels_names))
        known = [*attributes, *("&".join(c) for c in config.intersect), "all"]
        if rule.attribute is not None and rule.attribute not in known:
            raise FairfoundryError(
                f"alert rule {rule.name!r}: unknown attribute {rule.attribute!r}",
                hint="attributes are: " + ", ".join(known))
        sel = results[(results["metric"] == rule.metric)
                      & (results["window"] >= config.reference_windows)
                      & (results["complete"] == 1)]
        if rule.label is not None:
            sel = sel[sel["label"] == rule.label]
        if rule.attribute is not None:
            sel = sel[sel["attribute"] == rule.attribute]
        if rule.group != "*":
            sel = sel[sel["group"] == rule.group]
        if sel.empty:
            continue
        if rule.bound == "ci":
            val = sel["ci_high"] if rule.op == "<" else sel["ci_low"]
        else:
            val = sel["estimate"]
        val = val.to_numpy(dtype=np.float64)
        hit = (val < rule.threshold) if rule.op == "<" else (val > rule.threshold)
        hit &= np.isfinite(val) & (sel["n"].to_numpy() >= rule.min_n)
        sel = sel.assign(hit_=hit, val_=val)
        for (label, attribute, group), ser in sel.groupby(["label", "attribute", "group"],
                                                          sort=True):
            ser = ser.sort_values("window")
            run, last = 0, None
            for r in ser.itertuples(index=False):
                contiguous = last is not None and r.window == last + 1
                run = (run + 1 if contiguous else 1) if r.hit_ else 0
                last = r.window
                if run >= rule.consecutive:
                    what = "CI bound" if rule.bound == "ci" else "estimate"
                    msg = (f"{rule.name}: {rule.metric} of {attribute}={group} ({label}) "
                           f"{what} {r.val_:.4g} {rule.op} {rule.threshold:g} for {run} "
                           f"window(s) (window {r.window}, n={r.n})")
                    out.append((int(r.window), rule.name, label, attribute, group, rule.metric,
                                float(r.val_), float(rule.threshold), int(r.n), msg))
    frame = pd.DataFrame.from_records(out, columns=list(ALERT_COLUMNS))
    return frame
