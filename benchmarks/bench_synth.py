"""bench_synth: training steps/s of the conditional diffusion generator on CPU at 28 and 64 px.

Peer, measured in the same run, paired step by step: the bare ``diffusers`` ``UNet2DModel`` of the
same architecture trained by a hand-written loop (noise, MSE, AdamW), so the ratio is the cost
of fairfoundry's conditioning, EMA and shared training loop. Optionally (``--pilot``) the whole
``fairfoundry experiment synthetic-pilot`` with its defaults, timed end to end (target: <= 20 min
on 2 cores).

    PYTHONPATH=src python benchmarks/bench_synth.py [--steps 6] [--threads 2] [--pilot OUT]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")


def _ours_step_times(size: int, steps: int, batch: int) -> list[float]:
    """Per-step seconds of DiffusionGenerator.fit (through adapt.Trainer), from its progress callback."""
    from fairfoundry.synth import DiffusionConfig, DiffusionGenerator, make_toy_shapes

    toy = make_toy_shapes(size=size, n_per_cell=batch, seed=0)
    gen = DiffusionGenerator(DiffusionConfig(image_size=size, steps=steps + 2, batch_size=batch), toy.conditions)
    stamps: list[float] = []
    gen.fit(toy.images[: batch], toy.codes[: batch], progress=lambda n: stamps.append(time.perf_counter()))
    return [b - a for a, b in zip(stamps[1:], stamps[2:], strict=False)]


def _peer_step_times(size: int, steps: int, batch: int) -> list[float]:
    import torch
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    net = UNet2DModel(sample_size=size, in_channels=1, out_channels=1, block_out_channels=(16, 32, 32),
                      layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                      up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8,
                      attention_head_dim=8)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x0 = torch.rand(batch, 1, size, size) * 2 - 1
    out = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (batch,))
        loss = ((net(sched.add_noise(x0, noise, t), t).sample - noise) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pilot", default=None, help="also time the synthetic pilot, writing to this directory")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads {args.threads}, batch {args.batch_size}, {args.steps} timed steps per size")
    print("| size | ours steps/s | peer steps/s | ratio ours/peer |")
    print("|---|---|---|---|")
    for size in (28, 64):
        ours, peer = [], []
        for _ in range(2):  # alternate, so both see the same machine load
            ours += _ours_step_times(size, args.steps // 2, args.batch_size)
            peer += _peer_step_times(size, args.steps // 2, args.batch_size)
        o, p = 1 / statistics.median(ours), 1 / statistics.median(peer)
        print(f"| {size} | {o:.2f} | {p:.2f} | {o / p:.2f} |")
    if args.pilot:
        from fairfoundry.cli import main as cli

        t0, c0 = time.perf_counter(), time.process_time()
        rc = cli(["experiment", "synthetic-pilot", "--out", args.pilot, "--overwrite"])
        print(f"synthetic-pilot (defaults): rc {rc}, wall {time.perf_counter() - t0:.0f} s, "
              f"CPU time of this process {time.process_time() - c0:.0f} s")


if __name__ == "__main__":
    main()
