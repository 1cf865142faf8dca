"""Pick a toy generator's checkpoint and guidance scale on validation samples, then score fresh ones.

The toy known-answer check (docs/synth.md, BENCHMARKS.md) without tuning on the samples it
reports. For every candidate generator (the ``G`` of each ``scripts/synth_toy.py`` output
directory given, e.g. checkpoints of one run at several step counts) and every guidance scale of
``--grid``, ``--val-per-cell`` images per cell are sampled with ``--val-seed`` and the QC reads
them: its classifiers (logistic regressions on ``fairfoundry-tiny`` features of the real toy
train images) say which shape and brightness each sample shows, and its memorisation test says
whether it is a copy of a training image. A sample *passes* when both classifiers agree with the
requested cell and it is not a copy. The (generator, scale) with the highest worst-cell pass rate
wins (ties: the higher mean over cells, then fewer steps, then the smaller scale). Only then are
``--test-per-cell`` fresh images per cell drawn with ``--test-seed`` from the winner and scored;
each cell's rates come with Wilson 95 % intervals.

    PYTHONPATH=src python scripts/synth_toy_select.py runs/synth-toy --out runs/synth-toy/select

Writes ``OUT/``: ``val/<run>-g<scale>/{S,Q}``, ``test/{S,Q}``, ``validation.csv`` (one row per
candidate, scale and cell), ``test.csv`` (one row per cell) and ``selection.json`` (seeds, grid,
rule, choice). A validation set already in ``OUT/val`` with the same generator, seed and
settings is reused.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def _same_samples(out: Path, gdir: Path, *, cells: str, guidance: float, seed: int, sample_steps: int,
                  sampler: str) -> bool:
    import json

    try:
        syn = json.loads((out / "S" / "synthesis.json").read_text())
        gen = json.loads((gdir / "generator.json").read_text())
    except (OSError, ValueError):
        return False
    return ((out / "Q" / "qc.json").exists() and syn.get("seed") == seed
            and syn.get("config") == {"cells": cells, "guidance": guidance, "sample_steps": sample_steps,
                                      "sampler": sampler}
            and syn.get("inputs", {}).get("config_hash") == gen.get("config_hash")
            and (out / "S" / "synthesis.json").stat().st_mtime > (gdir / "generator.json").stat().st_mtime)


def _score(out: Path, gdir: Path, manifest: Path, *, guidance: float, per_cell: int, seed: int,
           sample_steps: int, sampler: str, reuse: bool = False):
    import pandas as pd

    from fairfoundry.synth import TOY_CELLS, run_qc, sample_generator, wilson_interval

    cells = ";".join(f"shape={s},brightness={b}:{per_cell}" for s, b in TOY_CELLS)
    if not (reuse and _same_samples(out, gdir, cells=cells, guidance=guidance, seed=seed,
                                    sample_steps=sample_steps, sampler=sampler)):
        sample_generator(gdir, cells=cells, out=out / "S", seed=seed, guidance=guidance,
                         sample_steps=sample_steps, sampler=sampler, overwrite=True)
        run_qc(manifest, out / "S" / "manifest.csv", out=out / "Q", generator=gdir, overwrite=True)
    ps = pd.read_csv(out / "Q" / "per_sample.csv")
    rows = []
    for group, g in ps.groupby("group", sort=True):
        n, k_rec, k_pass = len(g), int(g["attributes_agree"].sum()), int(g["qc_pass"].sum())
        rec_lo, rec_hi = wilson_interval(k_rec, n)
        lo, hi = wilson_interval(k_pass, n)
        rows.append({"group": group, "n": n, "recognised": k_rec, "recognised_rate": k_rec / n,
                     "recognised_low": rec_lo, "recognised_high": rec_hi, "copies": int(g["copy"].sum()),
                     "passed": k_pass, "rate": k_pass / n, "wilson_low": lo, "wilson_high": hi})
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path,
                   help="output directories of scripts/synth_toy.py (each with G/ and toy/): the candidates")
    p.add_argument("--out", required=True, type=Path, help="directory of the selection's outputs")
    p.add_argument("--grid", default="1,1.5,2,3", help="guidance scales to choose from")
    p.add_argument("--val-per-cell", type=int, default=40)
    p.add_argument("--test-per-cell", type=int, default=50)
    p.add_argument("--val-seed", type=int, default=1001)
    p.add_argument("--test-seed", type=int, default=2002)
    p.add_argument("--sample-steps", type=int, default=50)
    p.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm"])
    args = p.parse_args()
    if args.val_seed == args.test_seed:
        p.error("--val-seed and --test-seed must differ (the test samples must be fresh)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import json

    import pandas as pd

    from fairfoundry._io import write_json_atomic, write_table_atomic

    grid = [float(g) for g in args.grid.split(",")]
    manifests = {run: run / "toy" / "manifest.csv" for run in args.runs}
    digests = {(run / "toy" / "manifest.csv").read_bytes() for run in args.runs}
    if len(digests) != 1:
        p.error("the candidate runs were trained on different toy data (use the same --seed)")
    infos = {run: json.loads((run / "G" / "generator.json").read_text()) for run in args.runs}
    val = []
    for run in args.runs:
        for g in grid:
            t = _score(args.out / "val" / f"{run.name}-g{g:g}", run / "G", manifests[run], guidance=g,
                       per_cell=args.val_per_cell, seed=args.val_seed, sample_steps=args.sample_steps,
                       sampler=args.sampler, reuse=True)
            t.insert(0, "guidance", g)
            t.insert(0, "steps", infos[run]["train"]["steps"])
            t.insert(0, "run", str(run))
            val.append(t)
            print(t.to_string(index=False), flush=True)
    val = pd.concat(val, ignore_index=True)
    write_table_atomic(args.out / "validation.csv", val)
    summary = val.groupby(["run", "steps", "guidance"])["rate"].agg(["min", "mean"]).reset_index()
    summary = summary.sort_values(["min", "mean", "steps", "guidance"], ascending=[False, False, True, True])
    best = summary.iloc[0]
    run, chosen = Path(best["run"]), float(best["guidance"])
    print(summary.to_string(index=False))
    print(f"chosen on validation: {run} ({int(best['steps'])} steps), guidance {chosen:g}", flush=True)
    test = _score(args.out / "test", run / "G", manifests[run], guidance=chosen, per_cell=args.test_per_cell,
                  seed=args.test_seed, sample_steps=args.sample_steps, sampler=args.sampler)
    test.insert(0, "guidance", chosen)
    test.insert(0, "steps", int(best["steps"]))
    write_table_atomic(args.out / "test.csv", test)
    write_json_atomic(args.out / "selection.json", {
        "candidates": [{"run": str(r), "steps": infos[r]["train"]["steps"], "config": infos[r]["config"]}
                       for r in args.runs],
        "grid": grid, "pass": "both QC classifiers read the requested cell and the sample is not a copy",
        "rule": "max over (generator, guidance) of the worst cell's validation pass rate; ties: higher mean, "
                "then fewer steps, then smaller scale",
        "val_seed": args.val_seed, "val_per_cell": args.val_per_cell, "test_seed": args.test_seed,
        "test_per_cell": args.test_per_cell, "sample_steps": args.sample_steps, "sampler": args.sampler,
        "validation_summary": summary.to_dict(orient="records"), "chosen_run": str(run),
        "chosen_steps": int(best["steps"]), "chosen_guidance": chosen, "test": test.to_dict(orient="records")})
    print(test.to_string(index=False))


if __name__ == "__main__":
    main()
