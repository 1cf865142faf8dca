"""Print the known-bias benchmark table of docs/adapt.md (every method vs ERM over 5 seeds).

    .venv/bin/python scripts/knownbias_table.py [--seeds 5] [--out knownbias.csv]
    .venv/bin/python scripts/knownbias_table.py --images      # the image-level (NIH shortcut) table
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
    ap.add_argument("--images", action="store_true", help="the image-level table instead")
    args = ap.parse_args()
    if args.images:
        image_table(args.seeds)
        return
    t0 = time.perf_counter()
    methods = ["erm", "reweigh", "resample", "resample-group-label", "groupdro", ("adversarial", {"variant": "eo"}),
               ("fair-penalty", {"variant": "eo"}), "group-heads", "fin", "fairclip",
               ("group-threshold", {"constraint": "eo"}), ("group-calibration", {"method": "platt"})]
    runs, summary = run_knownbias_benchmark(methods, seeds=range(args.seeds))
    if args.out:
        runs.to_csv(args.out, index=False)
    cols = [("auc", "AUC"), ("auc_worst_group", "worst-group AUC"),
            ("equalized_odds_difference", "EO difference"), ("equal_opportunity_difference", "EOpp (TPR) difference"),
            ("demographic_parity_difference", "DP difference"), ("es_auc", "ES-AUC"),
            ("ece_gap", "ECE gap"), ("calibration_intercept_gap", "calibration-intercept gap")]
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


def image_table(seeds: int = 5) -> None:
    """Print the image-level table (shortcut marker on NIH X-rays) of docs/adapt.md."""
    from fairfoundry.bench import run_knownbias_image_benchmark

    t0 = time.perf_counter()
    _, s = run_knownbias_image_benchmark(seeds=range(seeds))
    print("| method | val AUC, marked group | clean-test AUC, marked group | shortcut gap | gap vs ERM | test AUC |")
    print("|---|---|---|---|---|---|")
    for r in s.to_dict(orient="records"):
        def ci(k, sign=False, r=r):
            f = "{:+.3f}" if sign else "{:.3f}"
            return f"{f.format(r[k])} [{f.format(r[k + '_ci_low'])}, {f.format(r[k + '_ci_high'])}]"

        print(f"| {r['method']} | {ci('val_auc_marked')} | {ci('test_auc_marked')} | {ci('shortcut_gap')} | "
              f"{ci('shortcut_gap_vs_erm', True)} | {ci('test_auc')} |")
    print(f"\n{seeds} seeds, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
