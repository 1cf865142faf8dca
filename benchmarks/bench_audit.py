"""Benchmark: audit of a 1M-row manifest with 5 attributes and all their pairwise intersections.

Targets: ``audit_manifest`` <= 10 s, and the whole command ``fairfoundry audit-data --manifest``
(reading the CSV, the audit, leakage, the HTML page with its plots, the datasheet, the JSON and
CSV outputs, in a fresh process) <= 5 s. Peers, measured in the same run: the naive pandas
version a user would write (one ``groupby`` per attribute and per pair for counts, distinct
patients and label prevalence), and, for the command, ``pandas.read_csv`` of the same file (the
I/O floor). Prints the times and their ratios.

    .venv/bin/python benchmarks/bench_audit.py [--rows 1000000] [--seed 0] [--no-cli]
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fairfoundry.audit import audit_manifest
from fairfoundry.groups import split_intersection

ATTRS = ["sex", "age_group", "race", "skin_type", "country"]


def make_manifest(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_pat = n // 3
    pid = rng.integers(0, n_pat, n)
    age = rng.normal(50, 18, n).clip(0, 100)
    age[rng.random(n) < 0.02] = np.nan
    frame = pd.DataFrame({
        "sample_id": np.char.add("s", np.arange(n).astype(str)),
        "patient_id": np.char.add("p", pid.astype(str)),
        "sex": rng.choice(["female", "male", "unknown"], n, p=[0.48, 0.5, 0.02]),
        "age": age,
        "race": rng.choice(["white", "black", "asian", "hispanic", "other", "unknown"], n,
                           p=[0.6, 0.12, 0.08, 0.1, 0.04, 0.06]),
        "skin_type": rng.choice(["I", "II", "III", "IV", "V", "VI", "unknown"], n,
                                p=[0.1, 0.3, 0.25, 0.15, 0.08, 0.02, 0.1]),
        "country": rng.choice(["USA", "ESP", "AUT", "BRA", "IND", "NGA", "CHN"], n),
        "label": (rng.random(n) < 0.15).astype(int),
        "split": rng.choice(["train", "val", "test"], n, p=[0.7, 0.1, 0.2]),
    })
    frame["age_group"] = pd.cut(frame["age"], [-np.inf, 20, 40, 60, 80, np.inf], right=False,
                                labels=["<20", "20-39", "40-59", "60-79", "80+"]).astype(object)
    frame["age_group"] = frame["age_group"].fillna("unknown")
    return frame


def naive_pandas(frame: pd.DataFrame) -> int:
    """The straightforward pandas audit: counts, patients and prevalence per group."""
    rows = 0
    groupings = [[a] for a in ATTRS] + [list(p) for p in itertools.combinations(ATTRS, 2)]
    for cols in groupings:
        g = frame.groupby(cols, observed=True)
        table = pd.DataFrame({"n": g.size(), "n_patients": g["patient_id"].nunique(),
                              "prevalence": g["label"].mean()})
        table["share"] = table["n"] / len(frame)
        rows += len(table)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-cli", action="store_true", help="skip timing the command")
    args = ap.parse_args()
    frame = make_manifest(args.rows, args.seed)
    best_ours, best_peer = np.inf, np.inf
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        audit = audit_manifest(frame.drop(columns=["age"]), attributes=ATTRS,
                               intersections="pairs", labels=["label"], min_group_size=10)
        best_ours = min(best_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        peer_rows = naive_pandas(frame)
        best_peer = min(best_peer, time.perf_counter() - t0)
    ours_rows = int((audit.groups["group"].str.len() > 0).sum())
    # same numbers as the peer (checked on one intersection)
    ref = frame.groupby(["sex", "race"]).size()
    got = audit.groups[audit.groups["attribute"] == "sex&race"]
    for grp, n in zip(got["group"], got["n"], strict=True):
        assert ref[tuple(v for _, v in split_intersection(grp))] == n, grp
    print(f"rows={args.rows:,} attributes={len(ATTRS)} intersections={len(audit.intersections)} "
          f"group rows: fairfoundry={ours_rows} pandas={peer_rows}")
    print(f"fairfoundry audit_manifest: {best_ours:.2f} s (target <= 10 s: "
          f"{'PASS' if best_ours <= 10 else 'FAIL'})")
    print(f"naive pandas groupby peer:  {best_peer:.2f} s")
    print(f"ratio pandas / fairfoundry: {best_peer / best_ours:.2f}x")
    if not args.no_cli:
        cli_bench(frame, args.repeat)


def cli_bench(frame: pd.DataFrame, repeat: int) -> None:
    """Time the command end to end in a fresh process, against read_csv of the same file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.csv"
        frame.drop(columns=["age_group"]).to_csv(path, index=False)
        best_cli, best_read = np.inf, np.inf
        for k in range(repeat):
            t0 = time.perf_counter()
            pd.read_csv(path, low_memory=False)
            best_read = min(best_read, time.perf_counter() - t0)
            out = Path(tmp) / f"out{k}"
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "fairfoundry.cli", "audit-data", "--manifest",
                                  str(path), "--out", str(out), "--labels", "label"],
                                 capture_output=True, text=True, env=os.environ.copy(), check=False)
            best_cli = min(best_cli, time.perf_counter() - t0)
            assert res.returncode == 0, res.stderr
    print(f"fairfoundry audit-data --manifest (CLI, fresh process): {best_cli:.2f} s "
          f"(target <= 5 s: {'PASS' if best_cli <= 5 else 'FAIL'})")
    print(f"pandas.read_csv of the same file (I/O floor):          {best_read:.2f} s")
    print(f"ratio CLI / read_csv: {best_cli / best_read:.2f}x")


if __name__ == "__main__":
    main()
