"""Null simulation: coverage of the monitor's analytic intervals (``intervals: analytic``).

Three checks, each over ``--reps`` seeded replicates (95 % intervals; a correct interval covers
in about 95 % of replicates, +/- 2 binomial SEs):

1. Realised proportions (prevalence, TPR, FPR) with patient clustering: patients with
   ``--per-patient`` images each share a random effect on the label and the score; each
   replicate draws one window of ``--patients`` patients. The truth is the population value
   (a 2,000,000-image sample). Plain Wilson (ignoring patients) is shown next to the
   cluster-adjusted one.
2. Realised AUC, clustered DeLong (Obuchowski 1997) vs plain DeLong, same windows.
3. CBPE estimates: scores fixed, labels drawn y ~ Bernoulli(p) from the calibrated
   probabilities; the realised AUC / TPR / FPR / PPV / prevalence of each draw is inside the
   delta-method interval in about 95 % of draws; median width vs the simulation interval.

    .venv/bin/python benchmarks/sim_monitor_intervals.py [--reps 1000] [--patients 500]
        [--per-patient 3] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np


def population(rng, n_patients, per_patient, *, rho=1.5):
    """``y, s, patient`` of ``n_patients`` patients with ``per_patient`` images each: a patient
    effect u ~ N(0, rho) raises both the label's log-odds and the score."""
    u = np.repeat(rng.normal(0, rho, n_patients), per_patient)
    pid = np.repeat(np.arange(n_patients), per_patient)
    y = (rng.uniform(size=len(u)) < 1 / (1 + np.exp(-(-1.0 + u)))).astype(int)
    s = 1 / (1 + np.exp(-(1.2 * y + 0.8 * u + rng.normal(0, 1, len(u)) - 0.6)))
    return y, s, pid


def truths(seed: int, per_patient: int, threshold: float = 0.5) -> dict:
    from fairfoundry.metrics import roc_auc

    y, s, _ = population(np.random.default_rng(seed + 10_000), 2_000_000 // per_patient,
                         per_patient)
    pred = s >= threshold
    return {"prevalence": y.mean(), "tpr": pred[y == 1].mean(), "fpr": pred[y == 0].mean(),
            "auc": roc_auc(y, s)}


def realised_coverage(*, reps: int, patients: int, per_patient: int, seed: int,
                      threshold: float = 0.5) -> dict:
    """Coverage of the realised-metric intervals, clustered and plain, over ``reps`` windows."""
    from fairfoundry.monitor._intervals import auc_interval, proportion_intervals

    truth = truths(seed, per_patient, threshold)
    rng = np.random.default_rng(seed)
    hits = {f"{m}_{c}": 0 for m in truth for c in ("clustered", "plain")}
    for _ in range(reps):
        y, s, pid = population(rng, patients, per_patient)
        pred = s >= threshold
        yb = y.astype(bool)
        for m, rows, succ in (("prevalence", np.ones(len(y), bool), yb), ("tpr", yb, pred),
                              ("fpr", ~yb, pred)):
            codes = np.zeros(int(rows.sum()), np.int64)
            for c, cl in (("clustered", pid[rows]), ("plain", None)):
                lo, hi = proportion_intervals(succ[rows], codes, 1, cluster=cl)
                hits[f"{m}_{c}"] += int(lo[0] <= truth[m] <= hi[0])
        for c, cl in (("clustered", pid), ("plain", None)):
            lo, hi, _ = auc_interval(y, s, cluster=cl)
            hits[f"auc_{c}"] += int(lo <= truth["auc"] <= hi)
    return {k: v / reps for k, v in hits.items()}


def cbpe_coverage(*, reps: int, n: int, seed: int, threshold: float = 0.5) -> dict:
    """Coverage of the CBPE delta-method intervals of the realised metrics under label draws
    from the calibrated probabilities, and their width relative to the simulation intervals."""
    from fairfoundry.metrics import roc_auc
    from fairfoundry.monitor import CBPE

    rng = np.random.default_rng(seed)
    x = rng.normal(size=20_000)
    y_ref = (rng.uniform(size=len(x)) < 1 / (1 + np.exp(-(1.6 * x - 0.8)))).astype(int)
    s_ref = 1 / (1 + np.exp(-0.7 * x))
    xs = rng.normal(0.3, 1.1, n)
    s = 1 / (1 + np.exp(-0.7 * xs))
    ana = CBPE(interval="analytic").fit(y_ref, s_ref)
    sim = CBPE(n_simulations=400, seed=seed).fit(y_ref, s_ref)
    est_a, est_s = ana.estimate(s, threshold=threshold), sim.estimate(s, threshold=threshold)
    p = ana.calibrate(s)
    pred = s >= threshold
    metrics = ("auc", "tpr", "fpr", "ppv", "prevalence")
    hits = dict.fromkeys(metrics, 0)
    for _ in range(reps):
        yy = (rng.uniform(size=n) < p).astype(int)
        real = {"auc": roc_auc(yy, s), "tpr": pred[yy == 1].mean(), "fpr": pred[yy == 0].mean(),
                "ppv": yy[pred].mean(), "prevalence": yy.mean()}
        for m in metrics:
            lo, hi = est_a[f"{m}_ci"]
            hits[m] += int(lo <= real[m] <= hi)
    width = {m: (est_a[f"{m}_ci"][1] - est_a[f"{m}_ci"][0])
             / (est_s[f"{m}_ci"][1] - est_s[f"{m}_ci"][0]) for m in metrics}
    return {"coverage": {m: hits[m] / reps for m in metrics}, "width_ratio": width}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--patients", type=int, default=500)
    ap.add_argument("--per-patient", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    se = 2 * np.sqrt(0.95 * 0.05 / args.reps)
    print(f"95 % intervals, {args.reps} replicates (a correct interval covers 0.95 +/- {se:.3f})")
    for per in (1, args.per_patient):
        cov = realised_coverage(reps=args.reps, patients=args.patients * args.per_patient // per,
                                per_patient=per, seed=args.seed)
        print(f"realised metrics, windows of {args.patients * args.per_patient} images, "
              f"{per} per patient:")
        for m in ("prevalence", "tpr", "fpr", "auc"):
            print(f"  {m:<11s} clustered {cov[m + '_clustered']:.3f}   plain "
                  f"{cov[m + '_plain']:.3f}")
    for n in (500, 5000):
        out = cbpe_coverage(reps=args.reps, n=n, seed=args.seed)
        print(f"CBPE delta-method intervals, window of {n}, labels ~ Bernoulli(p):")
        for m, c in out["coverage"].items():
            print(f"  {m:<11s} coverage {c:.3f}   width / simulation width "
                  f"{out['width_ratio'][m]:.2f}")


if __name__ == "__main__":
    main()
