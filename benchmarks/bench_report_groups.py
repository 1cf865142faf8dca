"""Benchmark ``fairfoundry evaluate`` with its report at many groups (issue 10, item 8).

Target: 10,000 rows with 5,000 groups through the command, report included, <= 15 s on 2 cores
(before this work: 299 s, 270 s of it writing the report). The command runs in a fresh process
(imports, CSV reading, validation, every metric per group, findings, evaluation.csv,
summary.json, report.html, figures as PNG + SVG); its wall and CPU time are printed. The peer,
measured in the same run, is the loop a user would write without fairfoundry: pandas groupby
for n / positives / TPR / FPR / PPV / selection rate, scikit-learn's ``roc_auc_score`` for each
group with both classes, a CSV of the result (no CIs, no report). Then the library's own phases
(evaluate, save) are timed in this process.

Run:  PYTHONPATH=src python benchmarks/bench_report_groups.py [--rows 10000] [--groups 5000]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def make_data(n: int, groups: int, seed: int = 0) -> pd.DataFrame:
    """Every group has at least one row; scores depend on the label, not on the group."""
    rng = np.random.default_rng(seed)
    g = np.r_[np.arange(groups), rng.integers(0, groups, n - groups)]
    y = (rng.random(n) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(1.5 * y - 0.8 + rng.normal(0, 1, n))))
    return pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "y": y, "p": p.round(4),
                         "site": [f"site{k:05d}" for k in g], "sex": rng.choice(["F", "M"], n)})


def naive_peer(frame: pd.DataFrame, out: Path) -> float:
    """Per-group metrics the usual way; returns (wall, CPU) seconds."""
    from sklearn.metrics import roc_auc_score

    t = time.perf_counter()
    c = time.process_time()
    d = frame.assign(pred=(frame["p"] >= 0.5).astype(int))
    d = d.assign(tp=d["pred"] * d["y"], fp=d["pred"] * (1 - d["y"]))
    agg = d.groupby("site").agg(n=("y", "size"), positives=("y", "sum"), tp=("tp", "sum"),
                                fp=("fp", "sum"), predicted=("pred", "sum"))
    with np.errstate(divide="ignore", invalid="ignore"):
        agg["tpr"] = agg["tp"] / agg["positives"]
        agg["fpr"] = agg["fp"] / (agg["n"] - agg["positives"])
        agg["ppv"] = agg["tp"] / agg["predicted"]
        agg["selection_rate"] = agg["predicted"] / agg["n"]
    auc = {}
    for site, part in d.groupby("site"):
        if 0 < part["y"].sum() < len(part):
            auc[site] = roc_auc_score(part["y"], part["p"])
    agg["auc"] = pd.Series(auc)
    agg.to_csv(out)
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--groups", type=int, default=5_000)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.1f} at start "
          "(shared with other jobs: wall times include waiting for a core)")
    frame = make_data(args.rows, args.groups)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frame.to_csv(tmp / "preds.csv", index=False)
        cmd = [sys.executable, "-m", "fairfoundry.cli", "evaluate", str(tmp / "preds.csv"),
               "--label", "y", "--score", "p", "--sensitive", "site", "--split-col", "none",
               "--threshold", "0.5", "--out", str(tmp / "out")]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        size = sum(p.stat().st_size for p in (tmp / "out").rglob("*") if p.is_file())
        html = (tmp / "out" / "report.html").stat().st_size
        print(f"[ours] fairfoundry evaluate, {args.rows:,} rows, {args.groups:,} groups, with "
              f"report + figures (fresh process): {wall:.2f} s wall, {cpu:.2f} s CPU "
              f"(target <= 15 s: {'met' if wall <= 15 else 'NOT met'} in wall time, "
              f"{'met' if cpu <= 15 else 'NOT met'} in CPU time); outputs {size / 1e6:.1f} MB, "
              f"report.html {html / 1e6:.2f} MB")
        peer, peer_cpu = naive_peer(frame, tmp / "peer.csv")
        print(f"[peer] pandas groupby + scikit-learn AUC per group, CSV only (no CIs, no "
              f"report), in-process: {peer:.2f} s wall, {peer_cpu:.2f} s CPU")
        print(f"RATIO command / peer: {wall / peer:.2f}x in wall time, {cpu / peer_cpu:.2f}x in "
              "CPU time (the command also computes 20 metrics per group, every summary, the "
              "findings, summary.json, the report and its figures)")

        import fairfoundry

        c = time.process_time()
        t = time.perf_counter()
        ev = fairfoundry.evaluate(tmp / "preds.csv", label="y", score="p", sensitive="site",
                                  split_col=None, threshold=0.5)
        t_eval, c_eval = time.perf_counter() - t, time.process_time() - c
        c = time.process_time()
        t = time.perf_counter()
        ev.save(tmp / "lib", overwrite=True)
        t_save, c_save = time.perf_counter() - t, time.process_time() - c
        print(f"[ours] library phases: evaluate {t_eval:.2f} s wall / {c_eval:.2f} s CPU, save "
              f"(csv, json, report, figures) {t_save:.2f} s wall / {c_save:.2f} s CPU; "
              f"{len(ev.by_group):,} table rows, {len(ev.warnings)} warning line(s)")
    print(f"1-min load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
