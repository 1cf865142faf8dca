"""Null simulation of the studies' "differs" verdicts (``experiment peft-vs-full``, ``cross-site``,
``zoo-benchmark``): how often a report states at least one false difference.

Each simulated report compares ``k`` configurations (adaptations, encoders, ...) with a reference
on ``metrics`` metrics over ``seeds`` seeds, every configuration drawn from the same distribution,
so every "differs" is false. A metric's value for (configuration, seed) is a seed effect that all
configurations share (same split, same initialisation seed; sd ``shared``) plus independent noise
(sd ``noise``). The report's verdicts are the paired t-intervals of
:func:`fairfoundry.bench.paired_differences`, either plain 95 % (what the studies stated before)
or made simultaneous over the report's ``k x metrics`` comparisons with
:func:`fairfoundry.bench.simultaneous` (what they state now). Target: the simultaneous rate at
most 5 % up to simulation noise.

    PYTHONPATH=src python benchmarks/sim_study_verdicts.py --reps 2000
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

#: (configurations compared with the reference, metrics, seeds): peft-vs-full on NIH (5 x 1
#: judged metric) and on HAM10000 (5 x 2), cross-site (2 x 1, 5 seeds), a wider report (5 x 3)
SETTINGS = ((5, 1, 3), (5, 2, 3), (2, 1, 5), (5, 3, 3))


def null_report(rng: np.random.Generator, *, k: int, metrics: int, seeds: int, shared: float = 0.05,
                noise: float = 0.03) -> tuple[bool, bool]:
    """One null report: (any plain-95 % "differs", any simultaneous "differs")."""
    from fairfoundry.bench import paired_differences, simultaneous

    configs = ["ref", *(f"c{j}" for j in range(k))]
    rows = []
    for m in range(metrics):
        effect = rng.normal(0, shared, size=seeds)
        for c in configs:
            for s in range(seeds):
                rows.append({"dataset": "d", "encoder": "e", "adaptation": c, "mitigation": "erm",
                             "label_fraction": 1.0, "seed": s, "label": "y", "attribute": f"a{m}", "group": "",
                             "metric": "m", "estimate": effect[s] + rng.normal(0, noise), "kind": "summary"})
    res = pd.DataFrame(rows)
    diffs = [paired_differences(res, metric="m", attribute=f"a{m}", group=None, kind="summary", by="adaptation",
                                reference="ref") for m in range(metrics)]
    family = sum(len(d) for d in diffs)
    return (any(d["differs"].any() for d in diffs),
            any(simultaneous(d, family)["differs"].any() for d in diffs))


def rates(*, k: int, metrics: int, seeds: int, reps: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = np.array([null_report(rng, k=k, metrics=metrics, seeds=seeds) for _ in range(reps)])
    return {"k": k, "metrics": metrics, "seeds": seeds, "family": k * metrics, "reps": reps,
            "plain": float(out[:, 0].mean()), "simultaneous": float(out[:, 1].mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print("| configurations vs reference | metrics | seeds | comparisons | reports with a false 'differs': "
          "plain 95 % | simultaneous |")
    print("|---|---|---|---|---|---|")
    for i, (k, metrics, seeds) in enumerate(SETTINGS):
        r = rates(k=k, metrics=metrics, seeds=seeds, reps=args.reps, seed=args.seed + i)
        se = np.sqrt(0.05 * 0.95 / r["reps"])
        print(f"| {k} | {metrics} | {seeds} | {r['family']} | {r['plain']:.1%} | {r['simultaneous']:.1%} "
              f"(5 % +- {2 * se:.1%}) |", flush=True)


if __name__ == "__main__":
    main()
