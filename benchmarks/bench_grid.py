"""bench_grid: 8 grid cells on a local 2-CPU Ray cluster vs the local executor, in the same run.

Target (issue 13): speed-up >= 1.7x with Ray's startup included (and reported separately). Each
cell is one `fairfoundry fit` run (linear probe, one method, one seed) on synthetic embeddings;
every cell is pinned to one thread so the two executors do the same work per cell.

    .venv/bin/python benchmarks/bench_grid.py [--n 20000] [--d 256] [--epochs 30] [--cpus 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # one thread per cell, inherited by Ray workers
os.environ["MKL_NUM_THREADS"] = "1"


def _toy(tmp: Path, n: int, d: int) -> dict:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype("float32")
    y = (X[:, :4].sum(1) + rng.normal(size=n) > 0).astype(int)
    u = rng.random(n)
    man = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)],
                        "split": np.where(u < 0.6, "train", np.where(u < 0.8, "val", "test")), "y": y,
                        "sex": np.where(rng.random(n) < 0.5, "female", "male")})
    man.to_csv(tmp / "manifest.csv", index=False)
    np.save(tmp / "emb.npy", X)
    return {"name": "bench", "datasets": [{"name": "toy", "manifest": str(tmp / "manifest.csv"), "label": "y",
                                           "sensitive": ["sex"], "embeddings": {"pre": str(tmp / "emb.npy")}}],
            "encoders": ["pre"], "mitigations": ["erm", "reweigh", "groupdro", "resample"], "seeds": [0, 1]}


def main() -> None:
    from fairfoundry.bench import grid_cells, load_grid, run_grid

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        grid = _toy(tmp, args.n, args.d)
        grid["fit"] = {"epochs": args.epochs, "bootstrap": 50, "optimizer": "adamw"}
        spec = load_grid(grid)
        n_cells = len(grid_cells(spec))
        t0 = time.perf_counter()
        run_grid(spec, tmp / "local")
        local = time.perf_counter() - t0
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        run_grid(spec, tmp / "ray", executor="ray")
        ray_run = time.perf_counter() - t1
        ray.shutdown()
    total = startup + ray_run
    print(f"cells: {n_cells}  (n={args.n}, d={args.d}, epochs={args.epochs}, 1 thread per cell)")
    print(f"local executor:            {local:7.1f} s")
    print(f"ray executor ({args.cpus} CPUs):     {total:7.1f} s  (startup {startup:.1f} s + cells {ray_run:.1f} s)")
    print(f"speed-up, startup included: {local / total:.2f}x   (target >= 1.7x)")
    print(f"speed-up, cells only:       {local / ray_run:.2f}x")


if __name__ == "__main__":
    main()
