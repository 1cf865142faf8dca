"""Wall-time overhead of the fairness probe on a 200-step CPU pre-training run.

The same MAE run (the ``fairfoundry-tiny`` architecture: 64 px, patch 8, width 192, depth 4) on the
bundled NIH X-rays' train split (155 images) is timed twice in one process, without and with
``--probe-every 50`` on the validation split (75 images, label ``No_Finding``, sensitive ``sex,age``,
100 bootstrap replicates): the probe runs at steps 0, 50, 100, 150, 200 (five times). It prints
both wall times (decoding included) and the ratio ``with / without``; target <= 1.20. The runs
alternate (``--repeat``) and the ratio of the medians is reported, so a shared, unevenly loaded
machine moves both alike.

    python benchmarks/bench_probe.py [--steps 200] [--every 50] [--repeat 1] [--threads 2]
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
    args = ap.parse_args()

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
    plain_t, probe_t, probe_s = [], [], []
    for r in range(args.repeat):
        for name, cfg, sink in (("plain", base, plain_t), ("probe", probed, probe_t)):
            t0 = time.perf_counter()
            summary = pretrain(cfg, out=tmp / f"{name}{r}", overwrite=True)
            sink.append(time.perf_counter() - t0)
            if summary.get("probe"):
                probe_s.append(summary["probe"]["probe_seconds"])
                n_probes = summary["probe"]["probes"]
            print(f"run {r} {name}: {sink[-1]:.1f} s", flush=True)
    a, b = statistics.median(plain_t), statistics.median(probe_t)
    print(f"steps={args.steps} probe_every={args.every} probes={n_probes} probe_images=75")
    print(f"without probe: {a:.1f} s   with probe: {b:.1f} s   (probe itself: {statistics.median(probe_s):.1f} s)")
    print(f"overhead ratio with/without: {b / a:.3f}  (target <= 1.20)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
