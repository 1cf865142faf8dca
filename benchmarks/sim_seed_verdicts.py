"""Null simulation of the seed-level verdicts of ``experiment curation-impact`` and
``experiment synthetic-pilot``.

Both experiments train a probe per arm and seed, evaluate it on one fixed test split, and state a
change only from paired differences over seeds (Student-t intervals). Here every arm is drawn
from the same distribution, so every stated change is false: a metric's value for (arm, seed) is
its test-split value (shared by all arms and seeds: one test split) plus independent seed noise
of sd ``sigma``; the per-run bootstrap half-width of the test split is ``half``. We count the
simulated experiments whose verdict states a change.

- curation impact (:func:`fairfoundry.bench._curation_impact._differences`): 3 comparisons x
  ``--metrics`` metrics; a change needs a paired t-interval excluding 0 **and** a difference
  beyond the test split's bootstrap half-width;
- synthetic pilot (:func:`fairfoundry.bench._synthetic_pilot._verdict`): one comparison (the AUC
  gap, synthetic vs real-only), t-interval excluding 0.

    PYTHONPATH=src python benchmarks/sim_seed_verdicts.py --reps 2000
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

ARMS = ("uncurated", "dedup", "balanced", "random")


def curation_null(rng, *, sigma: float, half: float, seeds: int, n_metrics: int) -> bool:
    from fairfoundry.bench._curation_impact import _differences

    cols = [f"m{j}" for j in range(n_metrics)]
    test = rng.uniform(0.6, 0.8, n_metrics)  # the one test split's value of each metric
    rows = []
    for arm in ARMS:
        for s in range(seeds):
            v = test + rng.normal(0, sigma, n_metrics)
            rows.append({"arm": arm, "seed": s, "n_train": 100,
                         **{c: v[j] for j, c in enumerate(cols)},
                         **{f"{c}_ci_low": v[j] - half for j, c in enumerate(cols)},
                         **{f"{c}_ci_high": v[j] + half for j, c in enumerate(cols)}})
    _, verdict = _differences(pd.DataFrame(rows), cols, pos=100, neg=100, min_events=10)
    return verdict[0].startswith("Curation changed")


def pilot_null(rng, *, sigma: float, seeds: int) -> bool:
    from fairfoundry.metrics import t_interval

    d = rng.normal(0, sigma, seeds) - rng.normal(0, sigma, seeds)  # synthetic - real-only, paired by seed
    _, lo, hi = t_interval(d)
    return bool(lo > 0 or hi < 0)  # _verdict states "widened" / "narrowed" exactly then


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--metrics", type=int, default=5)
    ap.add_argument("--half", type=float, default=0.05, help="test-split bootstrap half-width")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{args.reps} null experiments per row, {args.seeds} seeds, {args.metrics} metrics, "
          f"test bootstrap half-width {args.half}")
    print("| seed sd / half-width | curation impact: 'Curation changed' | synthetic pilot: gap 'widened/narrowed' |")
    print("|---|---|---|")
    for ratio in (0.1, 0.5, 1.0, 2.0, 4.0):
        sigma = ratio * args.half
        c = sum(curation_null(rng, sigma=sigma, half=args.half, seeds=args.seeds, n_metrics=args.metrics)
                for _ in range(args.reps))
        p = sum(pilot_null(rng, sigma=sigma, seeds=args.seeds) for _ in range(args.reps))
        print(f"| {ratio:g} | {c} of {args.reps} = {c / args.reps:.1%} | {p} of {args.reps} = {p / args.reps:.1%} |",
              flush=True)


if __name__ == "__main__":
    main()
