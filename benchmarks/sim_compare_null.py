"""Null simulation of the fit comparison's verdict (issue 10, item 7): methods equal to ERM.

Two scenarios, each with three methods (``erm`` and two others drawn from the same
distribution), so a calibrated verdict says "differs" in at most about 5 % of them (it is
family-wise over the K = 2 methods x 3 metrics comparisons):

* ``seeds``: per-run test AUC and equalized-odds gaps with a seed effect shared by every method
  and independent run noise, 5 seeds; paired t over seeds, Bonferroni over K.
* ``bootstrap``: one seed; per-sample predictions of three exchangeable models (the same
  signal, independent noise; 300 test samples, two per patient, a random sex), the paired
  bootstrap over test samples (``--bootstrap`` resamples, clustered by patient) and its max-T
  band over K.

    PYTHONPATH=src python benchmarks/sim_compare_null.py --datasets 200 --bootstrap 100
    PYTHONPATH=src python benchmarks/sim_compare_null.py --datasets 600 --seed 1 --scenarios seeds
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "mitigate"))

from test_compare import _null_predictions, _one_seed_comparison, _seed_table

from fairfoundry.mitigate._compare import compare_runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=400)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenarios", default="seeds,bootstrap", help="comma-separated: seeds, bootstrap")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    out = {}
    for scenario in args.scenarios.split(","):
        said, per = 0, []
        for d in range(args.datasets):
            if scenario == "seeds":
                c = compare_runs(_seed_table(rng, ["erm", "a", "b"], 5), sensitive=["sex"],
                                 events={"auc": 50, "sex:equalized_odds_difference": 50, "sex:auc_gap": 50})
            else:
                c = _one_seed_comparison(_null_predictions(rng), n_bootstrap=args.bootstrap, seed=d)
            dd = c.differences
            said += int((dd["status"] == "differs").any())
            per += list((dd["ci_low"] > 0) | (dd["ci_high"] < 0))
        out[scenario] = (said, float(np.mean(per)), len(per))
        print(f"{scenario}: 'differs' in {said} of {args.datasets}; single CIs excluding 0: "
              f"{np.mean(per):.1%} of {len(per)} ({time.time() - t0:.0f} s)", flush=True)
    n = args.datasets
    print(f"{n} null comparisons per scenario (3 methods equal to ERM, K = 6 comparisons), "
          f"bootstrap {args.bootstrap}")
    print("| scenario | verdict says 'differs' (family-wise) | single 95 % CIs excluding 0 |")
    print("|---|---|---|")
    for sc, (said, rate, k) in out.items():
        print(f"| {sc} | {said} of {n} = {said / n:.1%} | {rate:.1%} of {k} |")


if __name__ == "__main__":
    main()
