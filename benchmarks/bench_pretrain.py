"""Training throughput (images/s) of each pre-training objective, against a supervised step.

Every objective trains the same ViT (the ``fairfoundry-tiny`` architecture: 64 px, patch 8,
width 192, depth 4) on the same batch of bundled NIH X-rays; the peer, measured in the same run,
is one ordinary supervised step of that ViT (forward, linear head, cross-entropy, backward,
AdamW). The ratio ``objective / supervised`` says what an objective costs relative to plain
fine-tuning (multi-view and multi-crop objectives cost more, MAE less: its encoder sees a
quarter of the patches). Objective and supervised steps alternate, and each ratio is the median
of the per-pair ratios, so ratios hold on a shared, unevenly loaded machine.

    .venv/bin/python benchmarks/bench_pretrain.py [--batch-size 32] [--steps 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

HEADS = {
    "mae": {"decoder_dim": 128, "decoder_depth": 2, "decoder_heads": 4},
    "simclr": {"proj_hidden": 512, "proj_dim": 128},
    "dino": {"out_dim": 4096, "head_hidden": 512, "head_bottleneck": 128, "local_crops": 4},
    "ijepa": {"predictor_dim": 96, "predictor_depth": 3, "predictor_heads": 3},
    "clip": {"embed_dim": 128, "text_width": 128, "text_depth": 2, "text_heads": 4},
    "siglip": {"embed_dim": 128, "text_width": 128, "text_depth": 2, "text_heads": 4},
}
ARCH = {"model": "vit_tiny_patch16_224", "image_size": 64, "patch_size": 8, "embed_dim": 192,
        "depth": 4, "num_heads": 3}


def _time(step, steps: int, warmup: int, sync) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import pandas as pd
    import torch

    from fairfoundry.datasets import nih_images
    from fairfoundry.pretrain import (
        OBJECTIVES,
        Augment,
        ImageBank,
        build_objective,
        build_vit,
        byte_tokenize,
    )

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    frame = pd.read_csv(nih_images())
    paths = [str(nih_images().parent / p) for p in frame["path"].iloc[: args.batch_size]]
    images = ImageBank(paths, size=64).batch(range(len(paths)), device=dev)
    text = byte_tokenize(frame["finding_labels"].iloc[: args.batch_size].tolist()).to(dev)
    y = torch.as_tensor(frame["No_Finding"].iloc[: args.batch_size].to_numpy().copy()).long().to(dev)

    torch.manual_seed(0)
    vit = build_vit(**ARCH).to(dev)
    head = torch.nn.Linear(192, 2).to(dev)
    opt = torch.optim.AdamW(list(vit.parameters()) + list(head.parameters()), lr=1e-4)

    def supervised():
        loss = torch.nn.functional.cross_entropy(head(vit((images - 0.5) / 0.5)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    t_sup = _time(supervised, args.steps, args.warmup, sync)
    sup_times = [t_sup]
    rows = []
    for name, options in HEADS.items():
        torch.manual_seed(0)
        obj = build_objective(name, build_vit(**ARCH),
                              augment=Augment.preset("xray", **OBJECTIVES[name].augment_overrides),
                              **options).to(dev)
        o = torch.optim.AdamW([p for p in obj.parameters() if p.requires_grad], lr=1e-4)
        g = torch.Generator().manual_seed(0)

        def step(obj=obj, o=o, g=g):
            loss, _ = obj.compute_loss(images, text=text, generator=g)
            o.zero_grad()
            loss.backward()
            o.step()
            obj.on_step_end(0, 100)

        # objective and peer steps alternate, and each ratio is the median of per-pair
        # ratios, so a shared machine's changing load moves both numbers of a ratio together
        for _ in range(args.warmup):
            step()
        t_obj, ratios = [], []
        for _ in range(args.steps):
            a = _time(step, 1, 0, sync)
            b = _time(supervised, 1, 0, sync)
            t_obj.append(a)
            sup_times.append(b)
            ratios.append(b / a)
        rows.append((name, args.batch_size / statistics.median(t_obj), statistics.median(ratios)))
    rows.insert(0, ("supervised (peer)", args.batch_size / statistics.median(sup_times), 1.0))
    print(f"device={dev} batch={args.batch_size} threads={args.threads} (median of {args.steps} steps)")
    print(f"{'objective':<20}{'images/s':>10}{'ratio vs supervised':>22}")
    for name, ips, ratio in rows:
        print(f"{name:<20}{ips:>10.1f}{ratio:>22.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
