"""Simulations behind docs/hallucination.md and docs/segmentation.md (not timed).

1. Planted hallucination rates (5 % women, 15 % men; 300 + 300 reports, two per patient),
   end to end through ``evaluate_reports`` (labeler + metrics + clustered bootstrap): coverage of
   the planted rates by the 95 % CIs, and power of the gap's permutation test.
2. Null error rate of ``evaluate_group_means``'s gap test and coverage of its group CIs
   (equal 20 % rates in two groups).
3. Null error rate of the ES-Dice permutation tests (equal Dice distributions in three groups).

Usage: python benchmarks/sim_hallucination_seg.py [--sims 100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "hallucination"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=100)
    args = ap.parse_args()
    from test_planted_rates import _simulate

    from fairfoundry.hallucination import evaluate_reports
    from fairfoundry.metrics import evaluate_group_means
    from fairfoundry.segmentation import ES_SCORES

    rng = np.random.default_rng(2025)
    cov = {"F": 0, "M": 0}
    power = 0
    for s in range(args.sims):
        df = _simulate(rng)
        ev = evaluate_reports(df, generated="generated", reference="reference",
                              sensitive=["sex"], cluster="patient_id", n_bootstrap=500,
                              n_permutations=200, seed=s)
        h = ev.get("hallucination").set_index("group")
        for g, rate in (("F", 0.05), ("M", 0.15)):
            cov[g] += h.loc[g, "ci_low"] <= rate <= h.loc[g, "ci_high"]
        power += ev.summary_table.set_index("metric").loc["hallucination_gap", "p_value"] <= 0.05
    print(f"planted rates, {args.sims} sims: CI coverage 5 %: {cov['F']}/{args.sims}, "
          f"15 %: {cov['M']}/{args.sims}; gap test power at 0.05: {power}/{args.sims}")

    rng = np.random.default_rng(11)
    sims = 4 * args.sims
    rej = covered = 0
    for _ in range(sims):
        g = rng.integers(0, 2, 200)
        v = (rng.random(200) < 0.2).astype(float)
        r = evaluate_group_means(v, groups=g, group_names=["a", "b"], n_bootstrap=500,
                                 n_permutations=199, seed=int(rng.integers(1 << 30)))
        rej += r.summary.set_index("metric").loc["value_gap", "p_value"] <= 0.05
        row = r.per_group.query("group == 'a'").iloc[0]
        covered += row.ci_low <= 0.2 <= row.ci_high
    print(f"null (equal 20 % rates), {sims} sims: gap test rejects {rej}/{sims} at 0.05; "
          f"group CI covers {covered}/{sims}")

    rng = np.random.default_rng(3)
    hits = dict.fromkeys(ES_SCORES, 0)
    for _ in range(sims):
        g = rng.integers(0, 3, 150)
        d = np.clip(rng.normal(0.8, 0.1, 150), 0, 1)
        r = evaluate_group_means(d, groups=g, group_names=["a", "b", "c"], metric_names=["dice"],
                                 scores=ES_SCORES, score_extremes=dict.fromkeys(ES_SCORES, "low"),
                                 n_permutations=199, seed=int(rng.integers(1 << 30)))
        for k in ES_SCORES:
            hits[k] += r.summary.set_index("metric").loc[k, "p_value"] <= 0.05
    print(f"null (equal Dice), {sims} sims: ES-Dice tests reject "
          + ", ".join(f"{k} {v}/{sims}" for k, v in hits.items()) + " at 0.05")


if __name__ == "__main__":
    main()
