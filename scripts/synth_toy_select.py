"""Pick the guidance scale of a trained toy generator on validation samples, then score fresh ones.

The toy known-answer check (docs/synth.md, BENCHMARKS.md) without tuning on the samples it
reports: for every guidance scale of ``--grid`` the generator in ``OUT/G`` (trained by
``scripts/synth_toy.py``) samples ``--val-per-cell`` images per cell with ``--val-seed`` and the
QC's classifiers (logistic regressions on ``fairfoundry-tiny`` features of the real toy train
images) read shape and brightness. The scale with the highest worst-cell recognition rate wins
(ties: the higher mean over cells, then the smaller scale). Only then are ``--test-per-cell``
fresh images per cell drawn with ``--test-seed`` at that scale and scored; each cell's rate comes
with a Wilson 95 % interval.

    PYTHONPATH=src python scripts/synth_toy_select.py --out runs/synth-toy

Writes ``OUT/select/``: ``val-g<scale>/{S,Q}``, ``test/{S,Q}``, ``validation.csv`` (one row per
scale and cell), ``test.csv`` (one row per cell) and ``selection.json`` (seeds, grid, choice).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def _score(out: Path, gdir: Path, manifest: Path, *, guidance: float, per_cell: int, seed: int,
           sample_steps: int, sampler: str):
    import pandas as pd

    from fairfoundry.synth import TOY_CELLS, run_qc, sample_generator, wilson_interval

    cells = ";".join(f"shape={s},brightness={b}:{per_cell}" for s, b in TOY_CELLS)
    sample_generator(gdir, cells=cells, out=out / "S", seed=seed, guidance=guidance, sample_steps=sample_steps,
                     sampler=sampler, overwrite=True)
    run_qc(manifest, out / "S" / "manifest.csv", out=out / "Q", generator=gdir, overwrite=True)
    ps = pd.read_csv(out / "Q" / "per_sample.csv")
    rows = []
    for group, g in ps.groupby("group", sort=True):
        k, n = int(g["qc_pass"].sum()), len(g)
        lo, hi = wilson_interval(k, n)
        rows.append({"group": group, "recognised": k, "n": n, "rate": k / n, "wilson_low": lo, "wilson_high": hi,
                     "copies": int(g["copy"].sum())})
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="directory of scripts/synth_toy.py (with G/ and toy/)")
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

    gdir, manifest, sel = args.out / "G", args.out / "toy" / "manifest.csv", args.out / "select"
    info = json.loads((gdir / "generator.json").read_text())
    grid = [float(g) for g in args.grid.split(",")]
    val = []
    for g in grid:
        t = _score(sel / f"val-g{g:g}", gdir, manifest, guidance=g, per_cell=args.val_per_cell, seed=args.val_seed,
                   sample_steps=args.sample_steps, sampler=args.sampler)
        t.insert(0, "guidance", g)
        val.append(t)
        print(t.to_string(index=False), flush=True)
    val = pd.concat(val, ignore_index=True)
    write_table_atomic(sel / "validation.csv", val)
    summary = val.groupby("guidance")["rate"].agg(["min", "mean"]).reset_index()
    summary = summary.sort_values(["min", "mean", "guidance"], ascending=[False, False, True])
    chosen = float(summary.iloc[0]["guidance"])
    print(summary.to_string(index=False))
    print(f"chosen on validation: guidance {chosen:g}", flush=True)
    test = _score(sel / "test", gdir, manifest, guidance=chosen, per_cell=args.test_per_cell, seed=args.test_seed,
                  sample_steps=args.sample_steps, sampler=args.sampler)
    test.insert(0, "guidance", chosen)
    write_table_atomic(sel / "test.csv", test)
    write_json_atomic(sel / "selection.json", {
        "generator_steps": info["train"]["steps"], "generator_config": info["config"], "grid": grid,
        "rule": "max over guidance of the worst cell's validation rate; ties: higher mean, then smaller scale",
        "val_seed": args.val_seed, "val_per_cell": args.val_per_cell, "test_seed": args.test_seed,
        "test_per_cell": args.test_per_cell, "sample_steps": args.sample_steps, "sampler": args.sampler,
        "validation_summary": summary.to_dict(orient="records"), "chosen_guidance": chosen,
        "test": test.to_dict(orient="records")})
    print(test.to_string(index=False))


if __name__ == "__main__":
    main()
