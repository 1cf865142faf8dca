"""Benchmark: 3-level hierarchical k-means with resampling + balanced sampling on n x 384 embeddings,
against scikit-learn's MiniBatchKMeans (and faiss when installed) at the same k, in the same run.

    PYTHONPATH=src OMP_NUM_THREADS=2 taskset -c 0,1 python benchmarks/bench_curate.py --n 1000000
    PYTHONPATH=src python benchmarks/bench_curate.py --n 100000 --target 10000     # scaled down
    PYTHONPATH=src python benchmarks/bench_curate.py --n 100000 --target 10000 --backend faiss --skip-peers

Prints wall time and peak resident memory of each; the target of the issue is <= 10 min and
<= 4 GB for n = 1,000,000 on 2 cores. Synthetic data: a mixture of 2,000 Gaussian blobs with
Zipf-distributed sizes (a long tail, as in web-scale data), seeded.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", default="1000,100,10")
    ap.add_argument("--target", type=int, default=100_000)
    ap.add_argument("--n-iter", type=int, default=10)
    ap.add_argument("--resampling-steps", default="2,1,0")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backend", default="torch", help="torch, or faiss for fairfoundry's Lloyd steps")
    ap.add_argument("--skip-peers", action="store_true", help="time fairfoundry only")
    args = ap.parse_args()
    import torch

    from fairfoundry.curate import HierarchicalKMeans

    rng = np.random.default_rng(0)
    ks = [int(x) for x in args.k.split(",")]
    steps = [int(x) for x in args.resampling_steps.split(",")]
    sizes = rng.zipf(1.5, 2000).astype(float)
    p = sizes / sizes.sum()
    centres = rng.normal(size=(2000, args.d)).astype(np.float32)
    comp = rng.choice(2000, size=args.n, p=p)
    X = centres[comp]
    X += 0.3 * rng.standard_normal(X.shape, dtype=np.float32)
    print(f"data: {args.n} x {args.d} float32 ({X.nbytes / 1e9:.2f} GB), torch threads {torch.get_num_threads()}, "
          f"rss {_rss_gb():.2f} GB")
    t = time.perf_counter()
    hk = HierarchicalKMeans(n_clusters=ks, resampling_steps=steps, n_iter=args.n_iter, seed=0,
                            device=args.device, backend=args.backend).fit(X)
    idx = hk.balanced_sample(min(args.target, args.n), seed=0)
    t_ff = time.perf_counter() - t
    covered = len(np.unique(comp[idx]))
    print(f"fairfoundry ({args.backend}) hierarchical k-means {ks} + balanced sample of {len(idx)}: {t_ff:.1f} s, peak rss "
          f"{_rss_gb():.2f} GB; blobs covered {covered} (random sample: "
          f"{len(np.unique(comp[rng.choice(args.n, len(idx), replace=False)]))})")
    if args.skip_peers:
        return
    from sklearn.cluster import MiniBatchKMeans

    t = time.perf_counter()
    MiniBatchKMeans(n_clusters=ks[0], batch_size=4096, max_iter=args.n_iter, n_init=1, random_state=0).fit(X)
    t_sk = time.perf_counter() - t
    print(f"scikit-learn MiniBatchKMeans k={ks[0]} (one level, no resampling): {t_sk:.1f} s; "
          f"ratio fairfoundry / sklearn = {t_ff / t_sk:.2f}")
    try:
        import faiss
    except ImportError:
        print("faiss not installed: skipped")
        return
    t = time.perf_counter()
    km = faiss.Kmeans(args.d, ks[0], niter=args.n_iter, seed=0, max_points_per_centroid=args.n)
    km.train(X)
    t_fa = time.perf_counter() - t
    print(f"faiss Kmeans k={ks[0]} (one level): {t_fa:.1f} s; ratio fairfoundry / faiss = {t_ff / t_fa:.2f}; "
          f"peak rss {_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
