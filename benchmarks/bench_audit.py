"""Benchmark: audit of a 1M-row manifest with 5 attributes and all their pairwise intersections.

Target: ``audit_manifest`` <= 10 s. Peer, measured in the same run: the naive pandas version a
user would write (one ``groupby`` per attribute and per pair for counts, distinct patients and
label prevalence). Prints both times and their ratio.

    .venv/bin/python benchmarks/bench_audit.py [--rows 1000000] [--seed 0]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import pandas as pd

from fairfoundry.audit import audit_manifest

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
    got = audit.groups[audit.groups["attribute"] == "sex×race"]
    for grp, n in zip(got["group"], got["n"], strict=True):
        assert ref[tuple(grp.split("×"))] == n, grp
    print(f"rows={args.rows:,} attributes={len(ATTRS)} intersections={len(audit.intersections)} "
          f"group rows: fairfoundry={ours_rows} pandas={peer_rows}")
    print(f"fairfoundry audit_manifest: {best_ours:.2f} s (target <= 10 s: "
          f"{'PASS' if best_ours <= 10 else 'FAIL'})")
    print(f"naive pandas groupby peer:  {best_peer:.2f} s")
    print(f"ratio pandas / fairfoundry: {best_peer / best_ours:.2f}x")


if __name__ == "__main__":
    main()
