"""A planted effect seen by the fairness probe through real pre-training on the bundled NIH X-rays.

A known-answer test of the probe-in-training machinery (issue 17, "Must show"). Each of the 300
bundled NIH ChestX-ray14 images (``fairfoundry.datasets.nih_images()``) is written twice at the
training resolution: as it is, and with a planted **marker**: a bright line (3 px thick, 20 px long
at 32 px, +150 grey levels, at a random place) that is **horizontal on women's images and vertical
on men's**. The probe label is ``marker`` (0/1); captions say ``"line marker"`` or ``"plain"``.
The same feature thus looks different in the two sexes, as a finding can look different in two
acquisition protocols.

Three CLIP image-text pre-training runs (``fairfoundry.pretrain.pretrain``, a 2-block ViT of width
32 at 32 px, the same seed, steps and number of images: 71 patients, 142 images) differ only in whom
they learn from, taken from the manifest's train split:

- ``women``: women only (so only horizontal markers are ever seen);
- ``men``: men only (vertical markers), 71 of the 84 men;
- ``balanced``: 36 women and 35 men.

Every run probes the same held-out images (the manifest's validation split, 75 patients, 150
images, ``--probe-sensitive sex``) at step 0 (random initialisation, identical in all runs), every
``--every`` steps and at the end. Expected: at step 0 neither sex's marker is well encoded and the
gap's CI includes 0; the women-only encoder learns the horizontal marker (women's probe AUC near 1)
and not the vertical one (men's AUC stays near its initial value), the men-only run the mirror
image, and the balanced run learns both (gap CI includes 0). The effect exists only because the
marker is planted and named in the captions: this shows that the probe sees what training does to
each group, not that any real finding behaves this way.

    python benchmarks/sim_probe_planted.py [--steps 300] [--every 50] [--bootstrap 1000]
    python benchmarks/sim_probe_planted.py --objective simclr --runs women,balanced --every 100 --bootstrap 200

prints per run and probed step the per-group AUC with its 95 % bootstrap CI (clustered by patient:
the two copies of an image are one patient) and the gap (max - min) with its CI. The test
``tests/pretrain/test_probe_planted.py`` runs the same code at 100 steps
(``--runs women,balanced --lr 2e-3``; the men-only mirror is seed-dependent at that length).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: the three training compositions (women / men patients of the train split, 71 in each run)
RUNS = ("women", "men", "balanced")
MODEL = {"model": "vit_tiny_patch16_224", "image_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2,
         "num_heads": 2, "batch_size": 32, "lr": 1e-3}
CLIP_OPTIONS = {"embed_dim": 32, "text_width": 32, "text_depth": 1, "text_heads": 2}
#: ``--objective simclr``: the same runs without captions (self-supervised only)
SIMCLR_OPTIONS = {"proj_hidden": 64, "proj_dim": 32}


def _marker(img: np.ndarray, *, horizontal: bool, rng, length: int, thick: int, amp: float) -> np.ndarray:
    size = img.shape[0]
    y0, x0 = rng.integers(2, size - length - 2, 2)
    out = img.copy()
    if horizontal:
        out[y0:y0 + thick, x0:x0 + length] += amp
    else:
        out[y0:y0 + length, x0:x0 + thick] += amp
    return out


def build(folder: str | Path, *, size: int = 32, length: int = 20, thick: int = 3, amp: float = 150.0,
          seed: int = 0, n_patients: int = 71) -> dict[str, Path]:
    """Write the planted images and manifests into ``folder``; return their paths.

    Returns ``{"women", "men", "balanced"}`` -> pre-training manifests (train split, ``n_patients``
    patients each, both copies of every image) and ``"probe"`` -> the probe manifest (validation
    split only, both copies).
    """
    from PIL import Image

    from fairfoundry.datasets import nih_images

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    nih = nih_images()
    m = pd.read_csv(nih)
    m = m[m["split"].isin(["train", "val"])].reset_index(drop=True)  # the test split is not used
    rng = np.random.default_rng(seed)
    rows = []
    for r in m.itertuples(index=False):
        with Image.open(nih.parent / r.path) as im:
            img = np.asarray(im.convert("L").resize((size, size), Image.BILINEAR), dtype=float)
        stem = Path(r.sample_id).stem
        for mark in (0, 1):
            a = _marker(img, horizontal=r.sex == "female", rng=rng, length=length, thick=thick, amp=amp) \
                if mark else img
            name = f"images/{stem}_{mark}.png"
            Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(folder / name)
            rows.append({"sample_id": f"{stem}_{mark}", "patient_id": r.patient_id, "path": name, "sex": r.sex,
                         "age": r.age, "split": r.split, "marker": mark,
                         "caption": "line marker" if mark else "plain"})
    frame = pd.DataFrame(rows)
    train = frame[frame["split"] == "train"]
    patients = train.drop_duplicates("patient_id")
    women = patients.loc[patients["sex"] == "female", "patient_id"].tolist()
    men = patients.loc[patients["sex"] == "male", "patient_id"].tolist()
    if min(len(women), len(men)) < n_patients:
        raise ValueError(f"n_patients={n_patients}: the train split has {len(women)} women and {len(men)} men")
    chosen = {"women": women[:n_patients], "men": men[:n_patients],
              "balanced": women[: (n_patients + 1) // 2] + men[: n_patients // 2]}
    paths = {}
    for name, ids in chosen.items():
        paths[name] = folder / f"train_{name}.csv"
        train[train["patient_id"].isin(ids)].to_csv(paths[name], index=False)
    paths["probe"] = folder / "probe.csv"
    frame[frame["split"] == "val"].to_csv(paths["probe"], index=False)
    return paths


def run(folder: str | Path, *, runs=RUNS, steps: int = 300, every: int = 50, bootstrap: int = 1000,
        permutations: int = 0, seed: int = 0, num_threads: int | None = 1, objective: str = "clip",
        lr: float = MODEL["lr"]) -> pd.DataFrame:
    """Build the planted data in ``folder``, pre-train each run, return the probe's sex rows.

    Columns: ``run, step, metric (auc | auc_gap), group, estimate, ci_low, ci_high, n``; the
    ``auc_gap`` row's ``group`` is ``"<higher> - <lower>"``. Each run's own ``probe.csv``,
    ``report.html`` and ``run.json`` stay in ``folder/run_<name>``.
    """
    from fairfoundry.pretrain import pretrain

    folder = Path(folder)
    paths = build(folder, seed=seed)
    parts = []
    for name in runs:
        text = {"options": CLIP_OPTIONS, "text_column": "caption"} if objective == "clip" else \
            {"options": SIMCLR_OPTIONS}
        cfg = {"objective": objective, "manifest": str(paths[name]), **MODEL, "lr": lr, "steps": steps, "seed": seed,
               **text, "probe_every": every,
               "probe_manifest": str(paths["probe"]), "probe_label": "marker", "probe_sensitive": ["sex"],
               "probe_bootstrap": bootstrap, "probe_permutations": permutations, "num_threads": num_threads}
        pretrain(cfg, out=folder / f"run_{name}", overwrite=True)
        p = pd.read_csv(folder / f"run_{name}" / "probe.csv", keep_default_na=False, na_values=[""])
        p = p[p["metric"].isin(["auc", "auc_gap"]) & (p["attribute"] == "sex")].copy()
        p.insert(0, "run", name)
        parts.append(p[["run", "step", "metric", "group", "estimate", "ci_low", "ci_high", "n"]])
    return pd.concat(parts, ignore_index=True)


def signed_gap(rows: pd.DataFrame, run: str, step: int) -> tuple[float, float, float]:
    """Women's minus men's probe AUC at ``step`` of ``run``, with the gap's CI signed the same way."""
    r = rows[(rows["run"] == run) & (rows["step"] == step) & (rows["metric"] == "auc_gap")].iloc[0]
    sign = 1.0 if str(r["group"]).startswith("female") else -1.0
    lo, hi = sorted((sign * r["ci_low"], sign * r["ci_high"]))
    return sign * float(r["estimate"]) + 0.0, float(lo) + 0.0, float(hi) + 0.0  # no -0.0


def _ci(e, lo, hi) -> str:
    return f"{e:.3f} [{lo:.3f}, {hi:.3f}]"


def markdown(rows: pd.DataFrame) -> str:
    """One line per (run, probed step): women's and men's AUC, women - men gap, each with its CI."""
    out = ["| run | step | women AUC [95 % CI] | men AUC [95 % CI] | women - men [95 % CI] |",
           "|---|---:|---|---|---|"]
    for (name, step), part in rows.groupby(["run", "step"], sort=False):
        auc = part[part["metric"] == "auc"].set_index("group")
        f, m = auc.loc["female"], auc.loc["male"]
        out.append(f"| {name} | {step} | {_ci(f.estimate, f.ci_low, f.ci_high)} | "
                   f"{_ci(m.estimate, m.ci_low, m.ci_high)} | {_ci(*signed_gap(rows, name, step))} |")
    return "\n".join(out)


def main() -> None:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--objective", choices=["clip", "simclr"], default="clip",
                    help="clip (captions name the marker) or simclr (no captions)")
    ap.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of women,men,balanced")
    ap.add_argument("--lr", type=float, default=MODEL["lr"], help="peak learning rate (cosine schedule)")
    ap.add_argument("--out", default=None, help="folder of the planted data and runs (default: a temp dir)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    folder = Path(args.out or tempfile.mkdtemp(prefix="probe-planted-"))
    t0 = time.perf_counter()
    rows = run(folder, steps=args.steps, every=args.every, bootstrap=args.bootstrap, seed=args.seed,
               objective=args.objective, runs=tuple(args.runs.split(",")), lr=args.lr)
    print(markdown(rows))
    print(f"\n{time.perf_counter() - t0:.0f} s; runs in {folder}")


if __name__ == "__main__":
    main()
