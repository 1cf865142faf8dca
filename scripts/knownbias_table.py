"""Print the known-bias benchmark table of docs/adapt.md (every method vs ERM over 5 seeds).

    .venv/bin/python scripts/knownbias_table.py [--seeds 5] [--out knownbias.csv]
"""

from __future__ import annotations

import argparse
import math
import time

from fairfoundry.bench import run_knownbias_benchmark


def _f(m, lo, hi):
    if math.isnan(m):
        return "n/a"
    return f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    methods = ["erm", "reweigh", "resample", "resample-group-label", "groupdro", ("adversarial", {"variant": "eo"}),
               ("fair-penalty", {"variant": "eo"}), "group-heads", "fin", "fairclip",
               ("group-threshold", {"constraint": "eo"}), ("group-calibration", {"method": "platt"})]
    runs, summary = run_knownbias_benchmark(methods, seeds=range(args.seeds))
    if args.out:
        runs.to_csv(args.out, index=False)
    cols = [("auc", "AUC"), ("auc_worst_group", "worst-group AUC"),
            ("equalized_odds_difference", "EO difference"), ("equal_opportunity_difference", "EOpp (TPR) difference"),
            ("demographic_parity_difference", "DP difference")]
    print("| method | stage | " + " | ".join(c[1] for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for r in summary.to_dict(orient="records"):
        cells = []
        for key, _ in cols:
            if r["method"] == "erm":
                cells.append(f"{r[key]:.3f} [{r[key + '_ci_low']:.3f}, {r[key + '_ci_high']:.3f}]")
            else:
                cells.append(_f(r[key + "_vs_erm"], r[key + "_vs_erm_ci_low"], r[key + "_vs_erm_ci_high"]))
        print(f"| {r['method']} | {r['stage']} | " + " | ".join(cells) + " |")
    print(f"\n{args.seeds} seeds, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
