"""Synthetic exactness check of the permutation scheme for groups that vary within patients.

150 patients (1-15+ images each, geometric sizes), labels and scores strongly correlated within a
patient, three groups assigned per patient at random and then 10 % of the images of patients
with several images switched to another group (as in ``sim_permutation_clusters.py``, but small
and fast, so thousands of data sets fit). Counts p < 0.05 of the TPR and FPR gaps from
``evaluate_groups(..., cluster=patient, n_permutations=P)`` (target: at most about 5 %).

    PYTHONPATH=src python benchmarks/sim_permutation_exact.py --datasets 1500 --permutations 99
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fairfoundry.metrics import evaluate_groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=1500)
    ap.add_argument("--permutations", type=int, default=99)
    args = ap.parse_args()
    rej = np.zeros(2)
    t0 = time.time()
    for d in range(args.datasets):
        rng = np.random.default_rng(d)
        sizes = rng.geometric(0.35, 150)
        pid = np.repeat(np.arange(150), sizes)
        n = pid.size
        u = rng.normal(0, 1, 150)[pid]
        y = (u + rng.normal(0, 1, n) > 0.8).astype(int)
        s = 1 / (1 + np.exp(-(u + rng.normal(0, 1, n))))
        base = rng.choice(3, 150, p=[0.5, 0.3, 0.2])[pid]
        g = base.copy()
        multi = np.flatnonzero(sizes[pid] > 1)
        pick = rng.choice(multi, size=min(int(round(0.1 * n)), multi.size), replace=False)
        g[pick] = (base[pick] + rng.integers(1, 3, pick.size)) % 3
        r = evaluate_groups(y, s, threshold=0.5, groups=g.astype(np.int64), group_names=list("abc"),
                            metrics=["n", "positives", "tpr", "fpr"], cluster=pid,
                            n_permutations=args.permutations, seed=d)
        p = r.summary.set_index("metric")["p_value"]
        rej += [p["tpr_gap"] < 0.05, p["fpr_gap"] < 0.05]
    n = args.datasets
    print(f"{n} data sets, {args.permutations} permutations, {time.time() - t0:.0f} s")
    print(f"TPR gap p < 0.05: {int(rej[0])} of {n} = {rej[0] / n:.1%}; "
          f"FPR gap p < 0.05: {int(rej[1])} of {n} = {rej[1] / n:.1%}")


if __name__ == "__main__":
    main()
