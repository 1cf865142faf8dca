"""The toy known-answer check of the conditional generator (docs/synth.md, BENCHMARKS.md).

Two shapes (square, ring) x two brightness groups (dark, bright); the ring x bright cell has 20
images, the others 60. The generator is trained on all 200 images at 28 px on CPU, samples
``--per-cell`` images of every cell, and the QC's attribute classifiers -- logistic regressions on
``fairfoundry-tiny`` features of the real images of the toy train split -- say which shape and
brightness each sample shows. A sample is recognised when both agree with the requested cell.

    PYTHONPATH=src python scripts/synth_toy.py --out runs/synth-toy

``--reuse`` keeps a generator already trained in ``OUT/G`` with the same settings.
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--reuse", action="store_true")
    p.add_argument("--sample-steps", type=int, default=25, help="denoising steps of the sampler")
    p.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm"])
    p.add_argument("--joint-embedding", action="store_true", help="one embedding per condition cell too")
    p.add_argument("--balance", default="none", choices=["none", "cells"],
                   help="'cells': every condition cell drawn equally often in training")
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
    if not (args.reuse and (args.out / "G" / "generator.json").exists()):
        train_generator(manifest, condition=["shape", "brightness"], out=args.out / "G", split=None, overwrite=True,
                        settings={"image_size": 28, "steps": args.steps, "channel_mult": (1, 2, 2),
                                  "base_channels": 16, "batch_size": 32, "seed": args.seed,
                                  "balance": args.balance, "joint_embedding": args.joint_embedding})
    t_train = time.perf_counter() - t0
    cells = ";".join(f"shape={s},brightness={b}:{args.per_cell}" for s, b in TOY_CELLS)
    sample_generator(args.out / "G", cells=cells, out=args.out / "S", seed=args.seed, guidance=args.guidance,
                     sample_steps=args.sample_steps, sampler=args.sampler, overwrite=True)
    run_qc(manifest, args.out / "S" / "manifest.csv", out=args.out / "Q", generator=args.out / "G", overwrite=True)
    q = pd.read_csv(args.out / "Q" / "qc.csv")
    clf = pd.read_csv(args.out / "Q" / "classifiers.csv")
    info = json.loads((args.out / "G" / "generator.json").read_text())
    cols = ["group", "n_synthetic", "n_real_train", "attribute_pass_rate", "copy_rate", "coverage"]
    print(q[cols].to_string(index=False))
    print(clf[["column", "cv_balanced_accuracy"]].to_string(index=False))
    print(f"generator steps {info['train']['steps']}, training seconds {info['train']['seconds']:.0f} "
          f"(this call: {t_train:.0f})")


if __name__ == "__main__":
    main()
