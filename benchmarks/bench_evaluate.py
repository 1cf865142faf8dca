"""Benchmark fairfoundry.metrics.evaluate_groups against fairlearn's MetricFrame bootstrap.

Targets (issue 2): 1M rows, 4 groups, every metric incl. AUC and ECE:
  * point estimates <= 1 s;
  * 1,000 bootstrap replicates <= 30 s on 2 cores, peak RSS <= 2 GB;
  * >= 300x faster per replicate than fairlearn MetricFrame(n_boot=...) on the same metrics
    at 100k rows (fairlearn measured in the same run, a few replicates timed).

Run:  .venv/bin/python benchmarks/bench_evaluate.py [--rows 1000000] [--boot 1000]
      [--fairlearn-rows 100000] [--fairlearn-boot 3] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import warnings

import numpy as np

from fairfoundry.metrics import METRICS, evaluate_groups

THRESHOLD = 0.5


def make_data(n: int, n_groups: int = 4, seed: int = 0):
    """Synthetic predictions: group-dependent prevalence and score shift; float32 scores
    (as models output them, so some scores tie)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    y = (rng.random(n) < 0.2 + 0.05 * g).astype(np.int64)
    s = 1 / (1 + np.exp(-(1.6 * y - 1.0 + 0.15 * g + rng.normal(0, 1, n))))
    return y, s.astype(np.float32).astype(np.float64), g


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, repeat: int = 1):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def fairlearn_metrics(n_bins: int = 10):
    """The same per-group metrics, written the usual way for MetricFrame (y_pred = scores)."""
    from fairlearn import metrics as flm
    from sklearn import metrics as skm
    from sklearn.calibration import calibration_curve
    from sklearn.linear_model import LogisticRegression

    def thr(f):
        return lambda y, s: f(y, (s >= THRESHOLD).astype(int))

    def npv(y, p):
        tn, fp, fn, tp = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
        return tn / (tn + fn) if tn + fn else np.nan

    def ece(y, s):
        pt, pp = calibration_curve(y, s, n_bins=n_bins)
        tot = np.bincount(np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], s),
                          minlength=n_bins)
        return float(np.sum(tot[tot > 0] / len(y) * np.abs(pt - pp)))

    def cal(y, s):
        p = np.clip(s, 1e-15, 1 - 1e-15)
        x = np.log(p / (1 - p))[:, None]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = LogisticRegression(C=np.inf, solver="newton-cholesky").fit(x, y)
        return m.coef_[0, 0], m.intercept_[0]

    return {
        "n": lambda y, s: len(y),
        "positives": lambda y, s: int(np.sum(y)),
        "prevalence": lambda y, s: float(np.mean(y)),
        "auc": skm.roc_auc_score,
        "average_precision": skm.average_precision_score,
        "accuracy": thr(skm.accuracy_score),
        "balanced_accuracy": thr(skm.balanced_accuracy_score),
        "tpr": thr(flm.true_positive_rate),
        "fpr": thr(flm.false_positive_rate),
        "tnr": thr(flm.true_negative_rate),
        "fnr": thr(flm.false_negative_rate),
        "ppv": thr(lambda y, p: skm.precision_score(y, p, zero_division=np.nan)),
        "npv": thr(npv),
        "selection_rate": thr(flm.selection_rate),
        "f1": thr(skm.f1_score),
        "ece": ece,
        "brier": skm.brier_score_loss,
        "log_loss": skm.log_loss,
        "calibration_slope": lambda y, s: cal(y, s)[0],
        "calibration_intercept": lambda y, s: cal(y, s)[1],
    }


def fairlearn_per_replicate(y, s, g, n_boot: int, metrics: dict) -> tuple[float, float]:
    """Seconds per bootstrap replicate of MetricFrame(n_boot=...) and of its point estimate."""
    from fairlearn.metrics import MetricFrame

    def frame(k):
        kw = {"n_boot": k, "ci_quantiles": [0.025, 0.975], "random_state": 0} if k else {}
        return MetricFrame(metrics=metrics, y_true=y, y_pred=s, sensitive_features=g, **kw)

    t0, _ = timed(lambda: frame(0))
    tb, _ = timed(lambda: frame(n_boot))
    return max(tb - t0, 1e-9) / n_boot, t0


def ours_per_replicate(y, s, g, n_boot: int, metrics, n_jobs: int) -> tuple[float, float]:
    names = [f"g{k}" for k in range(int(g.max()) + 1)]

    def run(k):
        return evaluate_groups(y, s, threshold=THRESHOLD, groups=g, group_names=names,
                               metrics=metrics, n_bootstrap=k, seed=0, n_jobs=n_jobs)

    t0, _ = timed(lambda: run(0), repeat=2)
    tb, _ = timed(lambda: run(n_boot))
    return max(tb - t0, 1e-9) / n_boot, t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--fairlearn-rows", type=int, default=100_000)
    ap.add_argument("--fairlearn-boot", type=int, default=3)
    ap.add_argument("--ours-boot-small", type=int, default=200)
    ap.add_argument("--skip-fairlearn", action="store_true", help="only the 1M-row timings")
    args = ap.parse_args()

    y, s, g = make_data(args.rows)
    names = ["g0", "g1", "g2", "g3"]
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start "
          "(shared with other jobs)")
    print(f"data: {args.rows:,} rows, 4 groups, {len(METRICS)} per-group metrics "
          f"(incl. AUC, AP, ECE, calibration slope) + all summaries")

    cpu0 = time.process_time()
    t_point, res = timed(lambda: evaluate_groups(y, s, threshold=THRESHOLD, groups=g,
                                                 group_names=names), repeat=3)
    cpu_point = (time.process_time() - cpu0) / 3
    print(f"[ours] point estimates, {args.rows:,} rows: {t_point:.3f} s wall (best of 3), "
          f"{cpu_point:.3f} s CPU (mean)  (target <= 1 s: {'met' if t_point <= 1 else 'NOT met'})")

    cpu0 = time.process_time()
    t_boot, res = timed(lambda: evaluate_groups(y, s, threshold=THRESHOLD, groups=g,
                                                group_names=names, n_bootstrap=args.boot,
                                                seed=0, n_jobs=args.jobs))
    cpu = time.process_time() - cpu0
    rss = peak_rss_mb()
    print(f"[ours] {args.boot} bootstrap replicates, {args.rows:,} rows, n_jobs={args.jobs}: "
          f"{t_boot:.2f} s  (target <= 30 s: {'met' if t_boot <= 30 else 'NOT met'}); "
          f"calibration refit: {res.config['calibration_bootstrap']}")
    print(f"[ours]   CPU time of that run (all threads): {cpu:.1f} s; 1-min load average of "
          f"the machine: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"[ours] peak RSS so far: {rss:.0f} MB  (target <= 2048 MB: "
          f"{'met' if rss <= 2048 else 'NOT met'})")

    if args.skip_fairlearn:
        return
    # ---- per-replicate comparison with fairlearn at 100k rows, the same metrics
    yf, sf, gf = make_data(args.fairlearn_rows, seed=1)
    fl = fairlearn_metrics()
    fl_rep, fl_point = fairlearn_per_replicate(yf, sf, gf, args.fairlearn_boot, fl)
    ours_rep, ours_point = ours_per_replicate(yf, sf, gf, args.ours_boot_small, None, 1)
    print(f"[fairlearn] MetricFrame, {args.fairlearn_rows:,} rows, all {len(fl)} metrics: "
          f"point {fl_point:.2f} s, {fl_rep:.2f} s per replicate "
          f"(n_boot={args.fairlearn_boot})")
    print(f"[ours] same data/metrics, n_jobs=1: point {ours_point:.3f} s, "
          f"{ours_rep * 1e3:.2f} ms per replicate (n_bootstrap={args.ours_boot_small})")
    ratio = fl_rep / ours_rep
    print(f"RATIO per replicate fairlearn / ours (all metrics): {ratio:.0f}x  (target >= 300x: "
          f"{'met' if ratio >= 300 else 'NOT met'})")
    # without calibration slope/intercept both sides compute every replicate exactly
    sub = [m for m in METRICS if not m.startswith("calibration")]
    fl_sub = {k: v for k, v in fl.items() if k in sub}
    fl_rep2, _ = fairlearn_per_replicate(yf, sf, gf, args.fairlearn_boot, fl_sub)
    ours_rep2, _ = ours_per_replicate(yf, sf, gf, args.ours_boot_small, sub, 1)
    print(f"RATIO per replicate without calibration slope/intercept: "
          f"{fl_rep2 / ours_rep2:.0f}x  (fairlearn {fl_rep2:.2f} s, ours "
          f"{ours_rep2 * 1e3:.2f} ms)")
    est = (fl_rep * args.boot * 10)
    print(f"[fairlearn] extrapolated: {args.boot} replicates at {args.rows:,} rows ~ "
          f"{est / 3600:.1f} h (linear in rows)")


if __name__ == "__main__":
    main()
