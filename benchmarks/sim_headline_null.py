"""Null simulation of the evidence-based headlines (issue 10, item 1).

On the real CheXNet predictions (NIH ChestX-ray14 test split, 14 labels, Youden thresholds
chosen on the val split), a "race" attribute with four groups (55 / 25 / 12 / 8 %) is assigned
to each patient **at random**, so no true difference exists. Each data set also draws 85 % of
the patients. The headline findings are computed exactly as ``fairfoundry.evaluate`` does (the
same engine, 50 bootstrap replicates clustered by patient for the CIs, the same
:func:`fairfoundry.evaluation.find_findings`: >= 10 events, Westfall-Young max-T over 500
permutations of whole patients across every pairwise comparison, CI excluding 0). We count the data sets whose headline states any difference
(target: <= 5 %).

``--headline-metrics tpr --headline-labels Effusion`` restricts the headline family to a
pre-specified primary analysis (``fairfoundry evaluate --headline-metric tpr --headline-label
Effusion``): the same max-T, over that family only.

With ``--planted 0.15``: in each data set the 25 % group's Effusion TPR is lowered by 0.15
(that many of its detected positives get a score just below the threshold); we count the data
sets whose headline finds "Effusion TPR lower for that group" (target: >= 90 % when the group
has >= 300 positives; the rate is printed over every data set and over those with >= 300).

    PYTHONPATH=src python benchmarks/sim_headline_null.py --datasets 200
    PYTHONPATH=src python benchmarks/sim_headline_null.py --datasets 200 --planted 0.15
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from fairfoundry.datasets import NIH_LABELS, nih_chexnet
from fairfoundry.evaluation._findings import find_findings, proportion_cells
from fairfoundry.metrics import choose_threshold, evaluate_groups, parse_threshold

METRICS = ["n", "positives", "selection_rate", "tpr", "fpr", "ppv"]  # the headline metrics
NAMES = ["White", "Black", "Asian", "Other"]
PROBS = [0.55, 0.25, 0.12, 0.08]


def one_dataset(test: pd.DataFrame, thr: dict, rng, *, planted: float, boot: int, seed: int,
                perms: int = 500, family_metrics=None, family_labels=None):
    pid = test["patient_id"].to_numpy()
    uniq, inv = np.unique(pid, return_inverse=True)
    keep_p = rng.random(len(uniq)) < 0.85
    rows = keep_p[inv]
    t = test.loc[rows].reset_index(drop=True)
    inv = np.unique(t["patient_id"].to_numpy(), return_inverse=True)[1]
    groups = rng.choice(len(NAMES), inv.max() + 1, p=PROBS)[inv].astype(np.int64)
    frames, reps, cells = [], {"race": {}}, {}
    pos_planted = None
    for lab in (family_labels or NIH_LABELS):  # labels outside a pre-specified family make no headline
        y = t[lab].to_numpy()
        s = t[f"prob_{lab}"].to_numpy().copy()
        if planted and lab == "Effusion":
            g = groups == 1
            hit = np.flatnonzero(g & (y == 1) & (s >= thr[lab]))
            pos_planted = int((g & (y == 1)).sum())
            k = int(round(planted * pos_planted))
            drop = rng.choice(hit, size=min(k, hit.size), replace=False)
            s[drop] = thr[lab] * 0.999
        res = evaluate_groups(y, s, threshold=thr[lab], groups=groups, group_names=NAMES,
                              metrics=METRICS, n_bootstrap=boot, cluster=t["patient_id"].to_numpy(),
                              seed=seed)
        frames.append(res.per_group.assign(label=lab, attribute="race"))
        for m, cell in proportion_cells(y, s >= thr[lab]).items():
            cells[(lab, m)] = cell
        reps["race"][lab] = {"per": res.replicates, "names": [*NAMES, "overall"]}
    by_group = pd.concat(frames, ignore_index=True)
    findings, _, info = find_findings(by_group, reps, min_events=10, confidence=0.95,
                                      clustered=True, n_permutations=perms, seed=seed,
                                      rows={"attributes": ["race"], "names": [NAMES],
                                            "codes": [groups], "joint": groups,
                                            "decode": [np.arange(len(NAMES))],
                                            "cluster": t["patient_id"].to_numpy(),
                                            "cells": cells},
                                      metrics=family_metrics, labels=family_labels)
    return findings, info, pos_planted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=200)
    ap.add_argument("--planted", type=float, default=0.0)
    ap.add_argument("--bootstrap", type=int, default=50)
    ap.add_argument("--permutations", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--headline-metrics", default=None,
                    help="a pre-specified family's metrics, e.g. tpr (default: tpr, fpr, ppv)")
    ap.add_argument("--headline-labels", default=None,
                    help="a pre-specified family's labels, e.g. Effusion (default: all 14)")
    ap.add_argument("--start", type=int, default=0,
                    help="first data set (to split a run over processes; data set d is seeded "
                         "by (seed, d))")
    args = ap.parse_args()
    df = nih_chexnet()
    val, test = df[df["split"] == "val"], df[df["split"] == "test"].reset_index(drop=True)
    rule = parse_threshold("youden")
    thr = {lab: choose_threshold(val[lab].to_numpy(), val[f"prob_{lab}"].to_numpy(), rule)
           for lab in NIH_LABELS}
    fam_m = args.headline_metrics.split(",") if args.headline_metrics else None
    fam_l = args.headline_labels.split(",") if args.headline_labels else None
    if args.planted and fam_l is not None and "Effusion" not in fam_l:
        ap.error("the planted gap is in Effusion: keep it in --headline-labels")
    hits, found, pos_min, fam = 0, 0, [], []
    n300 = found300 = 0
    t0 = time.time()
    for d in range(args.start, args.start + args.datasets):
        rng = np.random.default_rng([args.seed, d])
        f, info, pos = one_dataset(test, thr, rng, planted=args.planted, boot=args.bootstrap,
                                   seed=args.seed + d, perms=args.permutations,
                                   family_metrics=fam_m, family_labels=fam_l)
        sig = f[f["status"] == "finding"]
        fam.append(info["family_size"])
        if args.planted:
            pos_min.append(pos)
            ok = sig[(sig["label"] == "Effusion") & (sig["metric"] == "tpr")
                     & (sig["group_low"] == NAMES[1])]
            found += int(not ok.empty)
            if pos >= 300:
                n300 += 1
                found300 += int(not ok.empty)
            hits += int(not sig.drop(ok.index).empty)
        else:
            hits += int(not sig.empty)
        if (d + 1 - args.start) % 20 == 0:
            print(f"{d + 1 - args.start} data sets, {time.time() - t0:.0f} s: any headline {hits}"
                  + (f", planted gap found {found}" if args.planted else ""), flush=True)
    n = args.datasets
    print(f"data sets: {n} (from {args.start}); family: {info['family']['description']}; "
          f"size (pairwise comparisons) median {int(np.median(fam))}")
    if args.planted:
        print(f"planted TPR gap {args.planted} in group {NAMES[1]} "
              f"(Effusion positives in the group: min {min(pos_min)}, median "
              f"{int(np.median(pos_min))})")
        print(f"found in {found} of {n} = {found / n:.1%}; in the {n300} data sets whose group has >= 300 "
              f"positives: {found300} of {n300} = {found300 / max(n300, 1):.1%} (target >= 90 %)")
        print(f"other (false) headlines in {hits} of {n} = {hits / n:.1%}")
    else:
        print(f"headline states a difference in {hits} of {n} = {hits / n:.1%} (target <= 5 %)")


if __name__ == "__main__":
    main()
