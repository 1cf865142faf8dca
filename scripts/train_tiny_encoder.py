"""Train the bundled ``fairfoundry-tiny`` encoder on the 300 bundled NIH ChestX-ray14 images.

Trains a small ViT (64 px, patch 8, width 192, depth 4) with one self-supervised objective of
:mod:`fairfoundry.pretrain` on ``fairfoundry.datasets.nih_images()`` (NIH images only: their
licence allows redistribution; HAM10000 is non-commercial and is not used), then

1. writes the weights (float16 safetensors, with the timm spec in the metadata) to
   ``src/fairfoundry/pretrain/_weights/fairfoundry-tiny.safetensors``;
2. writes ``fairfoundry-tiny.json`` next to them: command, seed, data fingerprint, steps, time,
   loss curve, versions;
3. evaluates a linear probe (5-fold cross-validated logistic regression, out-of-fold scores,
   AUC with a 1000-resample bootstrap 95 % CI) of the trained encoder and of the same
   architecture at random initialisation, for several targets of the bundled manifest, and
   writes the table to ``fairfoundry-tiny-probe.csv`` (reported in docs/pretrain.md).

Usage::

    .venv/bin/python scripts/train_tiny_encoder.py --objective simclr --steps 600 --seed 0
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "src" / "fairfoundry" / "pretrain" / "_weights"
ARCH = {"model": "vit_tiny_patch16_224", "image_size": 64, "patch_size": 8, "embed_dim": 192,
        "depth": 4, "num_heads": 3}
HEADS = {
    "mae": {"decoder_dim": 128, "decoder_depth": 2, "decoder_heads": 4},
    "simclr": {"proj_hidden": 512, "proj_dim": 128},
    "dino": {"out_dim": 4096, "head_hidden": 512, "head_bottleneck": 128, "local_crops": 4},
    "ijepa": {"predictor_dim": 96, "predictor_depth": 3, "predictor_heads": 3},
}
TARGETS = {"abnormal (any finding)": ("No_Finding", True), "Effusion": ("Effusion", False),
           "Infiltration": ("Infiltration", False), "AP view": ("view", "AP"),
           "sex (male)": ("sex", "male")}


def _target(frame: pd.DataFrame, spec) -> np.ndarray:
    col, how = spec
    if how is True:  # abnormal = not No_Finding
        return (frame[col].to_numpy() == 0).astype(int)
    if how is False:
        return frame[col].to_numpy().astype(int)
    return (frame[col].astype(str).to_numpy() == how).astype(int)


def probe_auc(x: np.ndarray, y: np.ndarray, *, seed: int = 0, n_boot: int = 1000):
    """Out-of-fold linear-probe AUC with a percentile bootstrap 95 % CI."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=5000))
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    score = cross_val_predict(probe, x, y, cv=cv, method="predict_proba")[:, 1]
    auc = roc_auc_score(y, score)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        if len(np.unique(y[i])) == 2:
            boots.append(roc_auc_score(y[i], score[i]))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(auc), float(lo), float(hi)


def embed(backbone, frame) -> np.ndarray:
    import torch

    from fairfoundry.pretrain import ImageBank

    bank = ImageBank(frame["path"].tolist(), size=ARCH["image_size"])
    out = []
    backbone.eval()
    with torch.no_grad():
        for s in range(0, len(bank), 64):
            idx = np.arange(s, min(s + 64, len(bank)))
            out.append(backbone((bank.batch(idx) - 0.5) / 0.5).numpy())
    return np.concatenate(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objective", default="simclr", choices=sorted(HEADS))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--probe-only", action="store_true", help="evaluate existing weights")
    args = ap.parse_args(argv)

    import torch

    from fairfoundry._io import versions, write_json_atomic, write_table_atomic
    from fairfoundry.datasets import nih_images
    from fairfoundry.pretrain import (
        build_vit,
        load_manifest,
        load_pretrained_vit,
        pretrain,
        save_vit,
    )

    torch.set_num_threads(args.threads)
    manifest = nih_images()
    weights = args.out / "fairfoundry-tiny.safetensors"
    record_path = args.out / "fairfoundry-tiny.json"
    if not args.probe_only:
        cfg = {"objective": args.objective, "manifest": str(manifest), **ARCH,
               "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
               "seed": args.seed, "options": HEADS[args.objective], "modality": "xray",
               "device": "cpu", "log_every": 1}
        t0 = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            summary = pretrain(cfg, out=Path(tmp) / "run")
            log = pd.read_csv(Path(tmp) / "run" / "loss_log.csv")
            backbone, meta = load_pretrained_vit(Path(tmp) / "run" / "encoder.safetensors")
        seconds = time.time() - t0
        args.out.mkdir(parents=True, exist_ok=True)
        save_vit(backbone, weights, dtype=torch.float16, pixel_mean=[0.5] * 3,
                 pixel_std=[0.5] * 3, image_size=ARCH["image_size"],
                 recipe=json.loads(meta["recipe"]), licence="Apache-2.0",
                 data="NIH ChestX-ray14, 300 bundled images (fairfoundry.datasets.nih_images)")
        curve = log[["step", "loss"]]
        record = {
            "command": "python scripts/train_tiny_encoder.py " + " ".join(map(shlex.quote, sys.argv[1:])),
            "config": cfg | {"manifest": "fairfoundry.datasets.nih_images()"},
            "seconds": round(seconds, 1),
            "images_per_s": summary["images_per_s"],
            "first_loss": summary["first_loss"], "final_loss": summary["final_loss"],
            "loss_every_50_steps": curve[curve["step"] % 50 == 0].to_dict(orient="records")
            + [curve.iloc[-1].to_dict()],
            "versions": versions(),
        }
        write_json_atomic(record_path, record)
        print(f"trained {args.objective} for {args.steps} steps in {seconds:.0f} s: loss "
              f"{summary['first_loss']:.3f} -> {summary['final_loss']:.3f}")

    frame, _ = load_manifest(manifest)
    trained, _ = load_pretrained_vit(weights)
    torch.manual_seed(args.seed)
    random_init = build_vit(**ARCH)
    feats = {"fairfoundry-tiny": embed(trained, frame), "random init": embed(random_init, frame)}
    rows = []
    for name, spec in TARGETS.items():
        y = _target(frame, spec)
        for enc, x in feats.items():
            auc, lo, hi = probe_auc(x, y, seed=args.seed)
            rows.append({"target": name, "positives": int(y.sum()), "n": len(y), "encoder": enc,
                         "auc": round(auc, 3), "ci_low": round(lo, 3), "ci_high": round(hi, 3)})
    table = pd.DataFrame(rows)
    write_table_atomic(args.out / "fairfoundry-tiny-probe.csv", table)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
