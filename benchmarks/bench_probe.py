"""Wall-time overhead of the fairness probe on a 200-step CPU pre-training run.

The same MAE run (the ``fairfoundry-tiny`` architecture: 64 px, patch 8, width 192, depth 4) on the
bundled NIH X-rays' train split (155 images) is timed twice in one process, without and with
``--probe-every 50`` on the validation split (75 images, label ``No_Finding``, sensitive ``sex,age``,
100 bootstrap replicates): the probe runs at steps 0, 50, 100, 150, 200 (five times). It prints
both wall times (decoding included) and the ratio ``with / without``; target <= 1.20. The runs
alternate (``--repeat``) and the ratio of the medians is reported. On a shared machine whose load
swings between runs the wall ratio mostly measures the load, so two load-robust figures are
printed too: the ratio at equal step speed (the probed run's time outside the optimiser steps plus
the plain run's step time, over the plain run's wall time) and the probe's own time over the plain
run.

    python benchmarks/bench_probe.py [--steps 200] [--every 50] [--repeat 1] [--threads 2]

``--null N`` instead runs a null simulation of the probe's verdicts on synthetic embeddings (400
rows, 200 patients of two images, sex constant per patient, label signal equal in both sexes, no
sex signal): the share of the ``N`` simulations whose leakage permutation test
(``leakage_p_value``, 99 permutations) has p < 0.05 (nominal 5 %, exact), and whose per-group
``auc_gap`` CI excludes 0 (nominal <= 5 %); for comparison the share whose old bootstrap CI of the
fixed out-of-fold leakage AUC (``--bootstrap`` replicates, patients resampled) excludes 0.5. Then
``--power`` runs with a planted sex signal (a shift of ``--shift`` sd in one of 8 dimensions) give
the test's power, and the test's own time per probe is printed.

    python benchmarks/bench_probe.py --null 200 [--power 50] [--shift 0.4] [--sex-per-image]
    python benchmarks/bench_probe.py --null 400 --power 0 --gap-power 100 --label-gap 1.0

The null runs also count the ``auc_gap_p_value`` permutation test of the per-group AUC gap
(nominal 5 %, exact); ``--gap-power`` runs give its power when the label signal is stronger in
men.

``--sex-per-image`` draws sex per image (it then varies within a patient), the design of the first
version of this simulation.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--null", type=int, default=0)
    ap.add_argument("--power", type=int, default=50)
    ap.add_argument("--shift", type=float, default=0.4)
    ap.add_argument("--sex-per-image", action="store_true",
                    help="null design of the first version: sex drawn per image, so it varies within a patient")
    ap.add_argument("--gap-power", type=int, default=0,
                    help="runs whose label signal is stronger in men (--label-gap sd more): the auc_gap "
                         "permutation test's power")
    ap.add_argument("--label-gap", type=float, default=1.0)
    args = ap.parse_args()
    if args.null:
        return null_simulation(args.null, bootstrap=args.bootstrap, n_power=args.power, shift=args.shift,
                               per_image=args.sex_per_image, n_gap_power=args.gap_power,
                               label_gap=args.label_gap)

    import pandas as pd
    import torch

    from fairfoundry.datasets import nih_images
    from fairfoundry.pretrain import pretrain

    torch.set_num_threads(args.threads)
    mp = Path(nih_images())
    m = pd.read_csv(mp)
    m["path"] = [str(mp.parent / p) for p in m["path"]]
    tmp = Path(tempfile.mkdtemp(prefix="bench-probe-"))
    m[m["split"] == "train"].to_csv(tmp / "train.csv", index=False)
    m.to_csv(tmp / "probe.csv", index=False)
    base = {"objective": "mae", "manifest": str(tmp / "train.csv"), "model": "vit_tiny_patch16_224",
            "image_size": 64, "patch_size": 8, "embed_dim": 192, "depth": 4, "num_heads": 3,
            "options": {"decoder_dim": 128, "decoder_depth": 2, "decoder_heads": 4}, "steps": args.steps,
            "batch_size": 32, "device": "cpu", "log_every": 10}
    probed = {**base, "probe_every": args.every, "probe_manifest": str(tmp / "probe.csv"),
              "probe_label": "No_Finding", "probe_sensitive": ["sex", "age"], "probe_bootstrap": args.bootstrap}
    plain_t, probe_t, probe_s, adjusted = [], [], [], []
    plain_train = 0.0
    for r in range(args.repeat):
        for name, cfg, sink in (("plain", base, plain_t), ("probe", probed, probe_t)):
            t0 = time.perf_counter()
            summary = pretrain(cfg, out=tmp / f"{name}{r}", overwrite=True)
            sink.append(time.perf_counter() - t0)
            if summary.get("probe"):
                probe_s.append(summary["probe"]["probe_seconds"])
                n_probes = summary["probe"]["probes"]
                # the probed run had its steps run at the plain run's speed: what the probe adds
                # outside the optimiser steps, against the plain run (robust to load swings)
                adjusted.append((plain_train + sink[-1] - summary["train_seconds"]) / plain_t[-1])
            else:
                plain_train = summary["train_seconds"]
            print(f"run {r} {name}: {sink[-1]:.1f} s", flush=True)
    a, b = statistics.median(plain_t), statistics.median(probe_t)
    print(f"steps={args.steps} probe_every={args.every} probes={n_probes} probe_images=75")
    print(f"without probe: {a:.1f} s   with probe: {b:.1f} s   (probe itself: {statistics.median(probe_s):.1f} s)")
    print(f"overhead ratio with/without: {b / a:.3f}  (target <= 1.20)")
    print(f"ratio at equal step speed (probed run's non-step time + plain run's step time, / plain wall): "
          f"{statistics.median(adjusted):.3f}")
    print(f"probe time / run without probe: {statistics.median(probe_s) / a:.3f}  (the probe's own share, "
          "less sensitive to a changing machine load)")
    return 0


def _old_bootstrap_ci(emb, frame, *, n_boot: int, seed: int) -> tuple[float, float]:
    """The probe's former leakage interval: a percentile bootstrap (patients resampled) of the fixed
    out-of-fold AUC, kept here only to show its null error rate next to the permutation test."""
    import numpy as np

    from fairfoundry.metrics import roc_auc
    from fairfoundry.models import probe_attributes

    res = probe_attributes(emb, frame, sensitive=["sex"], n_boot=0, n_perm=0, C=0.1, seed=seed)
    p = res.predictions[res.predictions["group"] == "male"]
    y, s = (p["y_true"] == "male").to_numpy(), p["proba"].to_numpy()
    pat = frame["patient_id"].to_numpy()
    members = [np.flatnonzero(pat == q) for q in np.unique(pat)]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        b = np.concatenate([members[c] for c in rng.integers(0, len(members), len(members))])
        if 0 < y[b].sum() < len(b):
            vals.append(roc_auc(y[b], s[b]))
    return tuple(np.quantile(vals, [0.025, 0.975]))


def _sim(k: int, shift: float, per_image: bool = False, label_gap: float = 0.0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1000 + k)
    n = 400
    sex = np.repeat(np.where(rng.random(n // 2) < 0.5, "female", "male"), 2)  # constant per patient
    if per_image:
        sex = np.where(rng.random(n) < 0.5, "female", "male")
    y = (rng.random(n) < 0.4).astype(int)
    emb = rng.normal(size=(n, 8))
    emb[:, 0] += (1.0 + label_gap * (sex == "male")) * y  # label_gap 0: the same signal in both groups
    emb[:, 1] += shift * (sex == "male")  # 0: nothing about sex
    frame = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "patient_id": [f"p{i // 2}" for i in range(n)],
                          "path": [f"x{i}.png" for i in range(n)], "sex": sex, "y": y})
    return emb, frame


def null_simulation(n_sims: int, *, bootstrap: int, n_power: int = 50, shift: float = 0.4,
                    per_image: bool = False, n_gap_power: int = 0, label_gap: float = 1.0) -> int:
    import numpy as np

    from fairfoundry.pretrain._probe import ProbeOptions, load_probe_data, probe_embeddings

    tmp = Path(tempfile.mkdtemp(prefix="bench-probe-null-"))
    perm_hits = old_hits = old_above = gap_hits = power_hits = gap_p_hits = gap_power_hits = 0
    t0 = time.perf_counter()
    t_test = []
    for k in range(n_sims + n_power + n_gap_power):
        null = k < n_sims
        gap_run = k >= n_sims + n_power
        emb, frame = _sim(k, 0.0 if null or gap_run else shift, per_image, label_gap if gap_run else 0.0)
        frame.to_csv(tmp / "m.csv", index=False)
        data = load_probe_data(ProbeOptions(manifest=str(tmp / "m.csv"), label="y", sensitive=("sex",), every=1,
                                            bootstrap=bootstrap, seed=k))
        rows = probe_embeddings(emb, data, step=0)
        pv = rows[rows["metric"] == "leakage_p_value"].iloc[0]
        gp = rows[(rows["metric"] == "auc_gap_p_value") & (rows["attribute"] == "sex")].iloc[0]
        if gap_run:
            gap_power_hits += int(gp["estimate"] < 0.05)
            continue
        if not null:
            power_hits += int(pv["estimate"] < 0.05)
            continue
        perm_hits += int(pv["estimate"] < 0.05)
        gap = rows[(rows["metric"] == "auc_gap") & (rows["attribute"] == "sex")].iloc[0]
        gap_hits += int(gap["ci_low"] > 0)
        gap_p_hits += int(gp["estimate"] < 0.05)
        lo, hi = _old_bootstrap_ci(emb, frame, n_boot=bootstrap, seed=k)
        old_hits += int(lo > 0.5 or hi < 0.5)
        old_above += int(lo > 0.5)
        if k < 20:
            from fairfoundry.models import leakage_permutation_test

            t1 = time.perf_counter()
            leakage_permutation_test(emb, frame["sex"], classes=["female", "male"], cluster=frame["patient_id"],
                                     n_perm=99, C=0.1, seed=k)
            t_test.append(time.perf_counter() - t1)
    print(f"null simulation: {n_sims} null runs + {n_power} with a sex shift of {shift} sd, "
          f"{bootstrap} bootstrap replicates, 99 permutations, sex per {'image' if per_image else 'patient'}, "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"leakage permutation test p < 0.05 (null):  {perm_hits}/{n_sims} = {perm_hits / n_sims:.3f}  (nominal 0.05)")
    print(f"  power (shift {shift} sd):                {power_hits}/{n_power} = {power_hits / max(n_power, 1):.3f}")
    print(f"old bootstrap CI of OOF AUC excludes 0.5: {old_hits}/{n_sims} = {old_hits / n_sims:.3f}  (nominal 0.05)")
    print(f"  of which above 0.5:                      {old_above}/{n_sims} = {old_above / n_sims:.3f}  (nominal 0.025)")
    print(f"auc_gap CI excludes 0:                    {gap_hits}/{n_sims} = {gap_hits / n_sims:.3f}  (nominal <= 0.05)")
    print(f"auc_gap permutation test p < 0.05 (null): {gap_p_hits}/{n_sims} = {gap_p_hits / n_sims:.3f}  (nominal 0.05)")
    if n_gap_power:
        print(f"  power (label signal {1 + label_gap:g} sd in men vs 1 sd in women): "
              f"{gap_power_hits}/{n_gap_power} = {gap_power_hits / n_gap_power:.3f}")
    print(f"permutation test time, 400 x 8, 99 permutations: {1000 * np.median(t_test):.1f} ms (median of 20)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
