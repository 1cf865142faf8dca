"""The toy known-answer check of the conditional generator (docs/synth.md, BENCHMARKS.md).

Two shapes (square, ring) x two brightness groups (dark, bright); the ring x bright cell has 20
images, the others 60. The generator is trained on all 200 images at 28 px on CPU, samples
``--per-cell`` images of every cell, and the QC's attribute classifiers -- logistic regressions on
``fairfoundry-tiny`` features of the real images of the toy train split -- say which shape and
brightness each sample shows. A sample is recognised when both agree with the requested cell.

    PYTHONPATH=src python scripts/synth_toy.py --out runs/synth-toy

``--reuse`` keeps a generator already trained in ``OUT/G`` with the same settings; ``--resume``
continues the checkpoint in ``OUT/G/checkpoints`` up to ``--steps`` (same settings otherwise);
``--train-only`` stops after training. ``--tag T`` writes the samples and the QC to ``OUT/S-T``
and ``OUT/Q-T`` (sampled with ``--sample-seed``), so a validation set and a test set of samples
drawn with different seeds can sit side by side.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--per-cell", type=int, default=25)
    p.add_argument("--seed", type=int, default=0, help="seed of the toy data and the generator's training")
    p.add_argument("--sample-seed", type=int, default=None, help="seed of the samples (default: --seed)")
    p.add_argument("--tag", default=None, help="write OUT/S-TAG and OUT/Q-TAG instead of OUT/S and OUT/Q")
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--reuse", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue OUT/G's checkpoint up to --steps")
    p.add_argument("--train-only", action="store_true", help="stop after training")
    p.add_argument("--sample-steps", type=int, default=25, help="denoising steps of the sampler")
    p.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm"])
    p.add_argument("--joint-embedding", action="store_true", help="one embedding per condition cell too")
    p.add_argument("--balance", default="none", choices=["none", "cells"],
                   help="'cells': every condition cell drawn equally often in training")
    p.add_argument("--scale-shift", action="store_true", help="adaptive group-norm conditioning")
    p.add_argument("--snr-gamma", type=float, default=None, help="Min-SNR-gamma loss weighting")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--checkpoint-every", type=int, default=200)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import pandas as pd

    from fairfoundry.synth import (
        TOY_CELLS,
        run_qc,
        sample_generator,
        train_generator,
        write_toy_manifest,
    )

    manifest = write_toy_manifest(args.out / "toy", size=28, seed=args.seed)
    t0 = time.perf_counter()
    settings = {"image_size": 28, "steps": args.steps, "channel_mult": (1, 2, 2), "base_channels": 16,
                "batch_size": 32, "seed": args.seed, "lr": args.lr, "balance": args.balance,
                "joint_embedding": args.joint_embedding, "scale_shift": args.scale_shift,
                "snr_gamma": args.snr_gamma, "checkpoint_every": args.checkpoint_every}
    if args.resume or not (args.reuse and (args.out / "G" / "generator.json").exists()):
        train_generator(manifest, condition=["shape", "brightness"], out=args.out / "G", split=None,
                        overwrite=not args.resume, resume=args.resume, settings=settings)
    t_train = time.perf_counter() - t0
    info = json.loads((args.out / "G" / "generator.json").read_text())
    if args.train_only:
        print(f"generator steps {info['train']['steps']}, training seconds {info['train']['seconds']:.0f}")
        return
    suffix = f"-{args.tag}" if args.tag else ""
    s_dir, q_dir = args.out / f"S{suffix}", args.out / f"Q{suffix}"
    cells = ";".join(f"shape={s},brightness={b}:{args.per_cell}" for s, b in TOY_CELLS)
    seed = args.seed if args.sample_seed is None else args.sample_seed
    sample_generator(args.out / "G", cells=cells, out=s_dir, seed=seed, guidance=args.guidance,
                     sample_steps=args.sample_steps, sampler=args.sampler, overwrite=True)
    run_qc(manifest, s_dir / "manifest.csv", out=q_dir, generator=args.out / "G", overwrite=True)
    q = pd.read_csv(q_dir / "qc.csv")
    clf = pd.read_csv(q_dir / "classifiers.csv")
    cols = ["group", "n_synthetic", "n_real_train", "attribute_pass_rate", "copy_rate", "coverage"]
    print(q[cols].to_string(index=False))
    print(clf[["column", "cv_balanced_accuracy"]].to_string(index=False))
    print(f"generator steps {info['train']['steps']}, training seconds {info['train']['seconds']:.0f} "
          f"(this call: {t_train:.0f})")


if __name__ == "__main__":
    main()
