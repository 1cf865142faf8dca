"""Null simulation of the permutation test when the attribute varies within patients (issue 10,
item 3).

On the real CheXNet predictions (NIH ChestX-ray14 test split, label Effusion,
Youden threshold chosen on val), each patient gets one of three groups (50 / 30 / 20 %) **at
random**; in the "switch" scenario 10 % of the images then move to another random group (as age
does across follow-up images), in the "constant" scenario none does. There is no true
difference, so a calibrated test has p < 0.05 in 5 % of the data sets. For the TPR and FPR gaps
(max - min over groups) we count p < 0.05 under

* ``cluster``: ``evaluate_groups(..., cluster=patient_id, n_permutations=P)``, which permutes
  whole patients (constant) or whole patients' group sequences among patients with the same
  number of images (switch), and
* ``rows``: the same without ``cluster`` (image-level shuffling, what fairfoundry did before
  under ``--cluster`` when the attribute varied within patients).

    PYTHONPATH=src python benchmarks/sim_permutation_clusters.py --datasets 400
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fairfoundry.datasets import nih_chexnet
from fairfoundry.metrics import choose_threshold, evaluate_groups, parse_threshold

LABEL = "Effusion"
STATS = ("tpr_gap", "fpr_gap")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=400)
    ap.add_argument("--permutations", type=int, default=200)
    ap.add_argument("--switch", type=float, default=0.10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first data set (seeded by (seed, d))")
    ap.add_argument("--scenarios", default="constant,switch", help="comma-separated: constant, switch")
    ap.add_argument("--schemes", default="cluster,rows",
                    help="comma-separated: cluster (patient-level, fairfoundry's), rows (image-level)")
    args = ap.parse_args()
    df = nih_chexnet()
    val, test = df[df["split"] == "val"], df[df["split"] == "test"].reset_index(drop=True)
    thr = choose_threshold(val[LABEL].to_numpy(), val[f"prob_{LABEL}"].to_numpy(),
                           parse_threshold("youden"))
    y, s = test[LABEL].to_numpy(), test[f"prob_{LABEL}"].to_numpy()
    pid = test["patient_id"].to_numpy()
    inv = np.unique(pid, return_inverse=True)[1]
    sizes = np.bincount(inv)
    scenarios, schemes = args.scenarios.split(","), args.schemes.split(",")
    rej = {(sc, how, st): 0 for sc in scenarios for how in schemes for st in STATS}
    t0 = time.time()
    for d in range(args.start, args.start + args.datasets):
        rng = np.random.default_rng([args.seed, d])
        base = rng.choice(3, inv.max() + 1, p=[0.5, 0.3, 0.2])[inv]
        switched = base.copy()
        # 10 % of the images of patients with several images move to another group
        multi = np.flatnonzero(sizes[inv] > 1)
        k = int(round(args.switch * len(y)))
        pick = rng.choice(multi, size=min(k, multi.size), replace=False)
        switched[pick] = (base[pick] + rng.integers(1, 3, pick.size)) % 3
        for sc, g in (("constant", base), ("switch", switched)):
            if sc not in scenarios:
                continue
            for how, cl in (("cluster", pid), ("rows", None)):
                if how not in schemes:
                    continue
                res = evaluate_groups(y, s, threshold=thr, groups=g.astype(np.int64),
                                      group_names=["a", "b", "c"],
                                      metrics=["n", "positives", "tpr", "fpr"], cluster=cl,
                                      n_permutations=args.permutations, seed=d)
                p = res.summary.set_index("metric")["p_value"]
                for st in STATS:
                    rej[(sc, how, st)] += int(p[st] < 0.05)
        if (d + 1 - args.start) % 50 == 0:
            print(f"{d + 1 - args.start} data sets, {time.time() - t0:.0f} s", flush=True)
    n = args.datasets
    print(f"{n} null data sets, {args.permutations} permutations, label {LABEL}, "
          f"{int(round(args.switch * 100))} % of images switched in 'switch'")
    print("| scenario | permutation | statistic | p < 0.05 |")
    print("|---|---|---|---|")
    for (sc, how, st), r in rej.items():
        print(f"| {sc} | {how} | {st} | {r} of {n} = {r / n:.1%} |")


if __name__ == "__main__":
    main()
