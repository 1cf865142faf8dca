"""Windows over the prediction stream and everything computed per window and group.

Per window, label and group: realised metrics with CIs from the evaluation engine
(:func:`fairfoundry.metrics.evaluate_groups`) on the predictions whose labels are in; label-free
CBPE estimates on every prediction; score drift and attribute mix against the reference
windows. Results are one tidy table (:data:`RESULT_COLUMNS`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .._errors import FairfoundryError
from ._cbpe import CBPE
from ._config import MonitorConfig
from ._drift import SortedReference, mix_drift, score_drift

__all__ = ["evaluate_windows", "assign_windows", "RESULT_COLUMNS", "ALL"]

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("window", "start", "end", "label", "attribute", "group", "kind", "metric",
                  "estimate", "ci_low", "ci_high", "n", "complete", "reason")
#: attribute and group name of the whole window
ALL = "all"
_REALISED = ("n", "positives", "prevalence", "auc", "tpr", "fpr", "ppv", "ece")
_MIN_CAL, _MIN_CLASS = 100, 10


def assign_windows(frame: pd.DataFrame, spec) -> tuple[np.ndarray, pd.DataFrame]:
    """Window index of each prediction (``frame`` sorted by time) and a table of windows
    ``window, start, end, n, complete``.

    Count windows hold ``size`` predictions each (the last may be partial: incomplete). Time
    windows are ``[t0 + k size, t0 + (k + 1) size)`` from the first prediction; a window is
    complete once a later prediction exists.
    """
    t = frame["time"].to_numpy(dtype=np.float64)
    n = len(t)
    if n == 0:
        return np.zeros(0, np.int64), pd.DataFrame(columns=["window", "start", "end", "n",
                                                            "complete"])
    if spec.by == "count":
        size = int(spec.size)
        w = np.arange(n) // size
        k = int(w[-1]) + 1
        starts = t[np.arange(k) * size]
        ends = t[np.minimum((np.arange(k) + 1) * size, n) - 1]
        counts = np.bincount(w, minlength=k)
        complete = counts == size
    else:
        t0 = t[0]
        w = np.floor((t - t0) / spec.size).astype(np.int64)
        k = int(w[-1]) + 1
        starts = t0 + np.arange(k) * spec.size
        ends = starts + spec.size
        counts = np.bincount(w, minlength=k)
        complete = ends <= t[-1]
    table = pd.DataFrame({"window": np.arange(k), "start": starts, "end": ends, "n": counts,
                          "complete": complete})
    return w, table


def _groups(frame: pd.DataFrame, columns: list[str], config: MonitorConfig):
    """Group codes and names of one attribute, or of an intersection of several, over the whole
    stream (so windows agree); the smallest groups beyond ``max_groups`` are pooled."""
    from ..groups import intersect_groups, is_known

    sub = pd.DataFrame({c: frame[c] for c in columns}, index=frame.index)
    bins = {c: config.bins[c] for c in columns if c in config.bins}
    for c in bins:  # attributes arrive as text: bin their numeric values
        sub[c] = pd.to_numeric(sub[c], errors="coerce")
    codes, names = intersect_groups(sub, columns, bins=bins)
    reason = ""
    if len(names) > config.max_groups:  # bounded cardinality: pool the smallest groups
        counts = np.bincount(codes, minlength=len(names))
        order = [k for k in np.argsort(-counts, kind="stable") if is_known(names[k])]
        # a group with a missing part is never pooled away (unknown stays visible)
        keep = np.sort(np.r_[order[: config.max_groups - 1],
                             [k for k, nm in enumerate(names) if not is_known(nm)]]).astype(int)
        remap = np.full(len(names), len(keep), dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        reason = (f"{len(names) - len(keep)} smallest groups pooled as 'other' "
                  f"(max_groups={config.max_groups})")
        codes, names = remap[codes], [names[k] for k in keep] + ["other"]
    return codes, names, reason


def _row(window, label, attribute, group, kind, metric, est, lo=np.nan, hi=np.nan, n=0,
         reason=""):
    return (int(window), np.nan, np.nan, label, attribute, group, kind, metric, float(est),
            float(lo), float(hi), int(n), 0, reason)


def evaluate_windows(predictions: pd.DataFrame, labels: pd.DataFrame, *, labels_names, attributes,
                     config: MonitorConfig, progress=None, embeddings=None) -> pd.DataFrame:
    """Evaluate every window of a stream, per label, attribute and group.

    Parameters
    ----------
    predictions : DataFrame
        As :meth:`EventStore.predictions`: ``sample_id, patient_id, time``, the attributes and
        ``score_<label>``, sorted by time.
    labels : DataFrame
        As :meth:`EventStore.labels_frame`: ``sample_id, label, y, time``.
    labels_names, attributes : list of str
        The store's labels and attributes.
    config : MonitorConfig
    progress : callable, optional
        Called with 1 after each (label, window).
    embeddings : array (n, d), optional
        Image embeddings aligned with the rows of ``predictions``: adds, per window and group,
        ``embedding_auc`` (a domain classifier's cross-validated AUC, reference windows vs this
        window, with a DeLong interval; :func:`domain_classifier_auc`) and ``embedding_drift``
        (1 when the interval's lower bound is above 0.55, Evidently's default threshold for the
        point), kind ``drift``, label ``*``.

    Returns
    -------
    DataFrame with :data:`RESULT_COLUMNS`. ``kind`` is ``realised`` (evaluation engine, labels
    in), ``estimated`` (CBPE, metric names ``est_*``), ``drift`` (``score_*`` vs the reference
    windows), ``mix`` (``share`` per group; ``mix_*`` with group ``*``) or ``count`` (``n``,
    ``n_labelled``). The whole window is attribute and group ``all``.
    """
    from ..metrics import evaluate_groups

    if len(predictions) == 0:
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    frame = predictions.reset_index(drop=True)
    if embeddings is not None:
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if embeddings.ndim != 2 or len(embeddings) != len(frame):
            raise FairfoundryError(f"embeddings have shape {embeddings.shape}, expected "
                                   f"({len(frame)}, d): one row per prediction")
    w, wtable = assign_windows(frame, config.windows)
    n_win = len(wtable)
    ref_mask = w < config.reference_windows
    bounds = np.searchsorted(w, np.arange(n_win + 1), side="left")
    enc = {a: _groups(frame, [a], config) for a in attributes}
    for cols in config.intersect:
        missing = [c for c in cols if c not in attributes]
        if missing:
            raise FairfoundryError(f"intersect {cols}: {missing} not attributes of the store",
                                   hint="attributes are: " + ", ".join(attributes))
        enc["&".join(cols)] = _groups(frame, list(cols), config)
    attrs = [a for a in enc]
    enc[ALL] = (np.zeros(len(frame), np.int64), [ALL], "")
    cluster = None
    if frame["patient_id"].notna().all():
        cluster = pd.factorize(frame["patient_id"])[0]
    rows: list[tuple] = []
    for label in labels_names:
        thr = float(config.thresholds.get(label, 0.5))
        s = frame[f"score_{label}"].to_numpy(dtype=np.float64)
        lab = labels.loc[labels["label"] == label, ["sample_id", "y"]]
        y = frame["sample_id"].map(pd.Series(lab["y"].to_numpy(), index=lab["sample_id"]))
        has_y = y.notna().to_numpy()
        yv = np.nan_to_num(y.to_numpy(dtype=np.float64)).astype(np.int64)
        ref_lab = ref_mask & has_y
        cbpe_all, cal_reason = None, ""
        if ref_lab.sum() and len(np.unique(yv[ref_lab])) == 2:
            cbpe_all = _cbpe(config).fit(yv[ref_lab], s[ref_lab])
        else:
            cal_reason = "no labelled reference window with both classes: no CBPE estimate"
        for a in [ALL, *attrs]:
            codes, names, pool_reason = enc[a]
            G = len(names)
            # calibration per group where its reference is large enough
            cal = {}
            for g in range(G):
                m = ref_lab & (codes == g)
                if (config.calibrate_by_group and a != ALL and m.sum() >= _MIN_CAL
                        and min(yv[m].sum(), m.sum() - yv[m].sum()) >= _MIN_CLASS):
                    cal[g] = (_cbpe(config).fit(yv[m], s[m]), "calibrated on the group")
                elif cbpe_all is not None:
                    cal[g] = (cbpe_all, "overall calibration" if a != ALL else "")
            ref_counts = np.bincount(codes[ref_mask], minlength=G)
            ref_scores = [SortedReference(s[ref_mask & (codes == g)]) for g in range(G)]
            for k in range(n_win):
                sl = slice(bounds[k], bounds[k + 1])  # windows are contiguous in time order
                cw = codes[sl]
                sw = s[sl]
                counts = np.bincount(cw, minlength=G)
                hw = has_y[sl]
                nl = np.bincount(cw[hw], minlength=G)
                for g, name in enumerate(names):
                    rows.append(_row(k, label, a, name, "count", "n", counts[g], n=counts[g],
                                     reason=pool_reason))
                    rows.append(_row(k, label, a, name, "count", "n_labelled", nl[g], n=nl[g]))
                    if a != ALL:
                        rows.append(_row(k, label, a, name, "mix", "share",
                                         counts[g] / max(counts.sum(), 1), n=counts[g]))
                    sg = sw[cw == g]
                    # label-free estimates
                    if g in cal and len(sg):
                        est = cal[g][0].estimate(sg, threshold=thr)
                        for m in ("auc", "tpr", "fpr", "ppv", "prevalence"):
                            lo, hi = est.get(f"{m}_ci", (np.nan, np.nan))
                            v = est[m]
                            rows.append(_row(k, label, a, name, "estimated", f"est_{m}", v, lo,
                                             hi, len(sg), cal[g][1] if np.isfinite(v) else
                                             "undefined: one expected class only"))
                    else:
                        why = cal_reason or "group not in the reference window"
                        if not len(sg):
                            why = "group is empty"
                        for m in ("auc", "tpr", "fpr", "ppv", "prevalence"):
                            rows.append(_row(k, label, a, name, "estimated", f"est_{m}", np.nan,
                                             n=len(sg), reason=why))
                    # score drift
                    d = score_drift(ref_scores[g], sg, method=config.drift_method)
                    why = "" if len(sg) and len(ref_scores[g]) else (
                        "group is empty" if not len(sg) else "group not in the reference window")
                    for m in ("psi", "ks_p", "wasserstein", "drift"):
                        rows.append(_row(k, label, a, name, "drift", f"score_{m}", d[m],
                                         n=len(sg), reason=why or (d["method"] if m == "drift"
                                                                   else "")))
                if a != ALL:
                    md = mix_drift(ref_counts, counts)
                    for m in ("mix_js", "mix_chi2_p", "drift"):
                        rows.append(_row(k, label, a, "*", "mix",
                                         "mix_drift" if m == "drift" else m, md[m],
                                         n=counts.sum(), reason=md["method"] if m == "drift"
                                         else ""))
                # realised metrics with CIs from the evaluation engine
                if hw.any():
                    yl, sl_s, cl = yv[sl][hw], sw[hw], cw[hw]
                    clu = None if cluster is None else cluster[sl][hw]
                    boot = config.bootstrap if config.intervals == "bootstrap" else 0
                    res = evaluate_groups(
                        yl, sl_s, threshold=thr, groups=cl, group_names=names,
                        metrics=list(_REALISED), n_bootstrap=boot, cluster=clu,
                        seed=config.seed)
                    pg = res.per_group
                    pg = pg[pg["group"] != "overall"]
                    ci = (_analytic_cis(yl, sl_s, cl, len(names), thr, clu)
                          if config.intervals == "analytic" else {})
                    gidx = {nm: i for i, nm in enumerate(names)}
                    for r in pg.itertuples(index=False):
                        if r.metric in ("n", "positives"):
                            continue
                        lo, hi, why = r.ci_low, r.ci_high, r.reason
                        if r.metric in ci and np.isfinite(r.estimate):
                            lo, hi, extra = ci[r.metric][gidx[r.group]]
                            why = "; ".join(x for x in (why, extra) if x)
                        rows.append(_row(k, label, a, r.group, "realised", r.metric, r.estimate,
                                         lo, hi, r.n, why))
                if progress is not None:
                    progress(1)
    if embeddings is not None:
        rows.extend(_embedding_rows(embeddings, w, bounds, ref_mask, enc, config))
    out = pd.DataFrame.from_records(rows, columns=list(RESULT_COLUMNS))
    out["start"] = out["window"].map(wtable.set_index("window")["start"])
    out["end"] = out["window"].map(wtable.set_index("window")["end"])
    out["complete"] = out["window"].map(wtable.set_index("window")["complete"]).astype(int)
    return out


def _embedding_rows(emb, w, bounds, ref_mask, enc, config, *, min_rows: int = 20):
    """Domain-classifier drift of the embeddings, per window and group, vs the reference."""
    from ._drift import domain_classifier_auc

    out = []
    rng = np.random.default_rng(config.seed)
    for a, (codes, names, _) in enc.items():
        for g, name in enumerate(names):
            ref = np.flatnonzero(ref_mask & (codes == g))
            if len(ref) > 2000:  # bound the classifier's cost
                ref = np.sort(rng.choice(ref, 2000, replace=False))
            for k in range(len(bounds) - 1):
                cur = np.flatnonzero(codes[bounds[k]:bounds[k + 1]] == g) + bounds[k]
                if len(cur) > 2000:
                    cur = np.sort(rng.choice(cur, 2000, replace=False))
                lo = hi = float("nan")
                if min(len(ref), len(cur)) < min_rows:
                    auc, why = float("nan"), "fewer than 20 rows in the reference or the window"
                else:
                    auc, lo, hi = domain_classifier_auc(emb[ref], emb[cur], seed=config.seed,
                                                        return_ci=True)
                    why = ""
                out.append(_row(k, "*", a, name, "drift", "embedding_auc", auc, lo, hi,
                                n=len(cur), reason=why))
                # evidence, not a point: the whole interval past Evidently's 0.55
                flag = float(lo > 0.55) if np.isfinite(lo) else np.nan
                out.append(_row(k, "*", a, name, "drift", "embedding_drift", flag, n=len(cur),
                                reason=why or "95 % CI of the domain classifier AUC above 0.55"))
    return out


def _cbpe(config: MonitorConfig) -> CBPE:
    analytic = config.intervals == "analytic"
    return CBPE(calibration=config.calibration,
                n_simulations=config.simulations if config.intervals == "bootstrap" else 0,
                seed=config.seed, interval="analytic" if analytic else "simulation")


def _analytic_cis(y, s, codes, n_groups: int, threshold: float, cluster) -> dict:
    """Closed-form intervals of the realised metrics per group (:mod:`._intervals`):
    ``{metric: [(low, high, reason) per group]}``."""
    from ._intervals import auc_interval, proportion_intervals

    pred = s >= threshold
    yb = y.astype(bool)
    out = {}
    # each proportion over its own denominator rows: (metric, rows, success)
    for m, rows, succ in (("prevalence", np.ones(len(y), bool), yb), ("tpr", yb, pred),
                          ("fpr", ~yb, pred), ("ppv", pred, yb)):
        lo, hi = proportion_intervals(succ[rows], codes[rows], n_groups,
                                      cluster=None if cluster is None else cluster[rows])
        out[m] = [(lo[g], hi[g], "") for g in range(n_groups)]
    out["auc"] = []
    for g in range(n_groups):
        m = codes == g
        out["auc"].append(auc_interval(y[m], s[m], cluster=None if cluster is None
                                       else cluster[m]))
    out["ece"] = [(np.nan, np.nan, "no analytic interval for ece (intervals: bootstrap gives "
                   "one)")] * n_groups
    return out


def check_stream(predictions: pd.DataFrame, config: MonitorConfig, labels_names) -> None:
    """Config and store agree (threshold labels exist)."""
    unknown = set(config.thresholds) - set(labels_names)
    if unknown:
        raise FairfoundryError(f"thresholds for unknown label(s) {sorted(unknown)}",
                               hint="labels of this store are: " + ", ".join(labels_names))
