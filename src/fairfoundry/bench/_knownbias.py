r"""A benchmark with *known* injected bias, so the true effect of a mitigation is measurable.

Feature level (:func:`make_knownbias_features`), the mechanisms of Sec. 5 of the issue:

- **group shift**: the group moves the features along its own direction (the group is
  recoverable from the features, as age, sex and race are from X-ray embeddings);
- **under-diagnosis label noise**: in the train and validation splits, diseased patients of the
  ``noisy_group`` are labelled healthy with probability ``p_underdiagnosis`` (the mechanism
  Seyyed-Kalantari et al., Nature Medicine 2021, describe for under-served patients);
- **different prevalence and different signal per group** (``prevalence``, ``specificity``):
  part of the disease signal lies in a group-specific direction, so a model fit mostly to the
  majority under-serves the minority;
- **spurious feature**: one feature equals the label (up to noise) for the ``spurious_group``
  in training and validation only, and is pure noise at test time (a shortcut).

The test split keeps **clean labels** and no shortcut, so test metrics measure the true effect.
Image level (:func:`inject_marker`, :func:`make_knownbias_images`): a small bright square (a
"hospital token", Zech et al., PLoS Medicine 2018) stamped on images whose label is positive in
one group, in train/val only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError
from ..metrics import t_interval as _t_interval  # mean and Student-t interval over seeds

__all__ = ["KnownBiasData", "make_knownbias_features", "inject_marker", "make_knownbias_images"]


@dataclass
class KnownBiasData:
    """Features ``X`` (n, d) and a frame with ``sample_id, split, y, y_clean, group``.

    ``y`` is the observed (noisy) label in train/val and the clean label in test;
    ``y_clean`` is always the true label. ``params`` records the generator settings.
    """

    X: np.ndarray
    frame: object
    params: dict = field(default_factory=dict)

    def split(self, name: str):
        m = (self.frame["split"] == name).to_numpy()
        return self.X[m], self.frame.loc[m].reset_index(drop=True)


def make_knownbias_features(n: int = 6000, d: int = 32, *, seed: int = 0, minority_fraction: float = 0.3,
                            prevalence: tuple[float, float] = (0.4, 0.25), signal: float = 2.0,
                            specificity: float = 0.6, group_shift: float = 1.5,
                            p_underdiagnosis: float = 0.35, noisy_group: int = 1,
                            spurious_strength: float = 2.0, spurious_group: int = 0,
                            split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
                            spurious_splits: tuple[str, ...] = ("train", "val")) -> KnownBiasData:
    r"""Simulated embeddings of two groups with known, injected biases (see the module docstring).

    .. math:: x = y\,s\,\big((1-\rho) w_0 + \rho\, w_g\big) + \delta\,[g=1]\, u + \varepsilon,
              \quad \varepsilon \sim N(0, I)

    with unit directions :math:`w_0, w_g, u`, signal ``s``, specificity :math:`\rho` and group
    shift :math:`\delta`; the last feature is the shortcut (``y_obs`` times ``spurious_strength``
    plus noise for ``spurious_group`` in train/val, noise elsewhere).

    Parameters
    ----------
    n, d : samples and feature dimensions (d >= 4).
    seed : all randomness.
    minority_fraction : share of group 1.
    prevalence : disease prevalence in group 0 and group 1.
    p_underdiagnosis : probability that a diseased train/val patient of ``noisy_group`` is
        labelled healthy.
    spurious_strength : shortcut strength (0 disables it).
    spurious_splits : splits where the shortcut follows group x label (default: the development
        data, train and validation, as when both come from the same hospital; ``("train",)``
        keeps validation clean too, so validation-based selection cannot reward the shortcut).
        Never ``"test"``.

    Returns
    -------
    KnownBiasData
    """
    import pandas as pd

    if d < 4:
        raise FairfoundryError(f"d must be >= 4, got {d}")
    if not 0 <= p_underdiagnosis < 1:
        raise FairfoundryError("p_underdiagnosis must be in [0, 1)")
    rng = np.random.default_rng(seed)
    g = (rng.random(n) < minority_fraction).astype(int)
    prev = np.asarray(prevalence, dtype=float)[g]
    y = (rng.random(n) < prev).astype(int)
    dirs = np.linalg.qr(rng.normal(size=(d - 1, 4)))[0].T  # orthonormal w0, w_g0, w_g1, u
    w0, wg, u = dirs[0], dirs[1:3], dirs[3]
    sig = (1 - specificity) * w0[None, :] + specificity * wg[g]
    X = np.zeros((n, d))
    X[:, :-1] = y[:, None] * signal * sig + group_shift * g[:, None] * u[None, :] + rng.normal(size=(n, d - 1))
    fr = np.asarray(split_fractions, dtype=float)
    split = rng.choice(np.array(["train", "val", "test"]), size=n, p=fr / fr.sum())
    y_obs = y.copy()
    dev = split != "test"
    flip = dev & (g == noisy_group) & (y == 1) & (rng.random(n) < p_underdiagnosis)
    y_obs[flip] = 0
    if "test" in spurious_splits or not set(spurious_splits) <= {"train", "val"}:
        raise FairfoundryError(f"spurious_splits must be a subset of ('train', 'val'), got {spurious_splits}")
    shortcut = rng.normal(size=n)
    sc = np.isin(split, list(spurious_splits)) & (g == spurious_group)
    shortcut[sc] += spurious_strength * (2 * y_obs[sc] - 1)
    X[:, -1] = shortcut
    frame = pd.DataFrame({
        "sample_id": [f"kb{i:06d}" for i in range(n)],
        "split": split,
        "y": y_obs,
        "y_clean": y,
        "group": np.where(g == 1, "minority", "majority"),
    })
    params = dict(n=n, d=d, seed=seed, minority_fraction=minority_fraction, prevalence=list(prevalence),
                  signal=signal, specificity=specificity, group_shift=group_shift,
                  p_underdiagnosis=p_underdiagnosis, noisy_group=noisy_group,
                  spurious_strength=spurious_strength, spurious_group=spurious_group,
                  spurious_splits=list(spurious_splits))
    return KnownBiasData(X=X.astype(np.float32), frame=frame, params=params)


def inject_marker(image: np.ndarray, *, size: int | None = None, corner: str = "top-left",
                  value: int | None = None) -> np.ndarray:
    """Return a copy of ``image`` with a bright square marker in one corner.

    Parameters
    ----------
    image : ``(H, W)`` or ``(H, W, 3)`` array (uint8/uint16/float).
    size : side of the square in pixels (default: 1/10 of the shorter side).
    corner : ``"top-left"``, ``"top-right"``, ``"bottom-left"`` or ``"bottom-right"``.
    value : marker intensity (default: the dtype's maximum, 1.0 for floats).
    """
    img = np.array(image, copy=True)
    h, w = img.shape[:2]
    s = int(size or max(2, min(h, w) // 10))
    if value is None:
        value = np.iinfo(img.dtype).max if np.issubdtype(img.dtype, np.integer) else 1.0
    m = max(1, s // 2)
    rows = slice(m, m + s) if corner.startswith("top") else slice(h - m - s, h - m)
    cols = slice(m, m + s) if corner.endswith("left") else slice(w - m - s, w - m)
    if corner not in ("top-left", "top-right", "bottom-left", "bottom-right"):
        raise FairfoundryError(f"unknown corner {corner!r}")
    img[rows, cols] = value
    return img


def make_knownbias_images(manifest, *, label: str, group_col: str, marked_group: str,
                          out_dir: str | os.PathLike, image_root: str | os.PathLike | None = None,
                          p_marker: float = 0.9, p_marker_negative: float = 0.05, size_px: int = 64,
                          split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0):
    """Write a shortcut-injected copy of an image dataset and return its manifest.

    In train and validation, images of ``marked_group`` with a positive ``label`` get the marker
    with probability ``p_marker`` (negatives with ``p_marker_negative``); test images never do,
    and test labels are the original ones. Images are resized to ``size_px`` (grayscale PNG).

    Parameters
    ----------
    manifest : DataFrame with ``path`` (relative to ``image_root``), ``label`` and ``group_col``.
    out_dir : where the images and ``manifest.csv`` are written.

    Returns
    -------
    pandas.DataFrame with ``sample_id, path, split, <label>, <group_col>, marker``.
    """
    from PIL import Image

    from .._io import write_table_atomic
    from ..data import load_image

    for col in ("path", label, group_col):
        if col not in manifest.columns:
            raise FairfoundryError(f"column {col!r} not found in the manifest",
                                   hint=f"columns are: {', '.join(map(str, manifest.columns))}")
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    root = Path(image_root) if image_root is not None else Path(".")
    frame = manifest.reset_index(drop=True).copy()
    fr = np.asarray(split_fractions, dtype=float)
    frame["split"] = rng.choice(np.array(["train", "val", "test"]), size=len(frame), p=fr / fr.sum())
    yv = frame[label].astype(int).to_numpy()
    in_group = frame[group_col].astype(str).to_numpy() == str(marked_group)
    prob = np.where(yv == 1, p_marker, p_marker_negative) * in_group
    marker = (rng.random(len(frame)) < prob) & (frame["split"] != "test").to_numpy()
    frame["marker"] = marker.astype(int)
    paths = []
    for i, row in frame.iterrows():
        arr = load_image(root / row["path"])
        if arr.ndim == 3:
            arr = np.asarray(Image.fromarray(arr).convert("L"))
        if arr.dtype != np.uint8:
            arr = (arr / max(1, arr.max()) * 255).astype(np.uint8)
        im = np.asarray(Image.fromarray(arr).resize((size_px, size_px), Image.BILINEAR))
        if marker[i]:
            im = inject_marker(im)
        name = f"images/{i:05d}.png"
        Image.fromarray(im).save(out / name)
        paths.append(name)
    frame["path"] = paths
    if "sample_id" not in frame.columns:
        frame["sample_id"] = [f"img{i:05d}" for i in range(len(frame))]
    keep = ["sample_id", "path", "split", label, group_col, "marker"]
    result = frame[keep]
    write_table_atomic(out / "manifest.csv", result)
    return result


#: summary metrics of :func:`run_knownbias_benchmark` (from :func:`fairfoundry.evaluate`, test split)
KNOWNBIAS_METRICS: tuple[str, ...] = ("auc", "auc_worst_group", "auc_gap", "es_auc", "equalized_odds_difference",
                                      "equal_opportunity_difference", "demographic_parity_difference", "ece_gap",
                                      "calibration_intercept_gap")



def run_knownbias_benchmark(methods=None, *, seeds=range(5), head: str = "linear", epochs: int = 20, batch_size: int = 256,
                            lr: float = 3e-3, select: str = "overall_auc", data_kwargs: dict | None = None,
                            progress=None):
    r"""Every method on the feature-level known-bias data, over seeds, against ERM.

    For each seed a new dataset is drawn (:func:`make_knownbias_features` with ``seed``), every
    method is trained with the same seed, the checkpoint is selected on the (noisy) validation
    split, and the clean test split is evaluated with :func:`fairfoundry.evaluate` (threshold:
    Youden on validation; 0.5 on group-threshold's transformed scores). Returns the per-run
    table and a summary with, per method and metric, the mean over seeds, its 95% t-interval,
    and the paired difference to ERM with its 95% t-interval (a method helps when that interval
    excludes 0 in the right direction).

    Parameters
    ----------
    methods : registry names, or ``(name, kwargs)`` pairs; default every registered
        mitigation (:data:`fairfoundry.mitigate.MITIGATIONS`, ERM first), so a new method is
        benchmarked without editing a list.
    seeds : data and training seeds (>= 5 for the docs table).

    Returns
    -------
    (runs, summary) : pandas DataFrames.
    """
    import pandas as pd

    from ..adapt import HeadClassifier
    from ..evaluation import evaluate
    from ..mitigate import load_mitigations
    from ..pipeline import train_and_score

    if methods is None:
        methods = ["erm", *[m for m in load_mitigations() if m != "erm"]]
    specs = [(m, {}) if isinstance(m, str) else (m[0], dict(m[1])) for m in methods]
    if not any(name == "erm" and not kw for name, kw in specs):
        specs.insert(0, ("erm", {}))
    rows = []
    for seed in seeds:
        kb = make_knownbias_features(seed=int(seed), **(data_kwargs or {}))
        f = kb.frame
        tr, va = (f["split"] == "train").to_numpy(), (f["split"] == "val").to_numpy()
        g = f["group"].to_numpy()
        y = f["y"].to_numpy()
        for name, kw in specs:
            def make_estimator(hooks, seed=int(seed)):
                return HeadClassifier(head, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                      select=select, hooks=hooks)

            run = train_and_score(name, kw, X=kb.X, y=y, groups=g, train=tr, val=va,
                                  make_estimator=make_estimator)
            preds = pd.DataFrame({"y_true": y, "y_score": run.scores, "group": g,
                                  "split": f["split"]})
            ev = evaluate(preds, label="y_true", score="y_score", sensitive="group", split_col="split",
                          report_split="test", threshold=run.threshold,
                          threshold_split="val", bootstrap=0, seed=int(seed))
            row = {"method": run.label, "stage": run.stage, "seed": int(seed)}
            bg, st = ev.by_group, ev.summary_table
            row["auc"] = float(bg[(bg["metric"] == "auc") & (bg["attribute"] == "overall")]["estimate"].iloc[0])
            for metric in KNOWNBIAS_METRICS[1:]:
                r = st[(st["metric"] == metric) & (st["attribute"] == "group")]
                row[metric] = float(r["estimate"].iloc[0]) if len(r) else float("nan")
            rows.append(row)
            if progress is not None:
                progress(1)
    runs = pd.DataFrame(rows)
    erm = runs[runs["method"] == "erm"].set_index("seed")
    out = []
    for label, grp in runs.groupby("method", sort=False):
        rec = {"method": label, "stage": grp["stage"].iloc[0], "seeds": len(grp)}
        for metric in KNOWNBIAS_METRICS:
            m, lo, hi = _t_interval(grp[metric])
            diff = grp.set_index("seed")[metric] - erm[metric].reindex(grp["seed"]).to_numpy()
            dm, dlo, dhi = _t_interval(diff)
            rec.update({metric: m, f"{metric}_ci_low": lo, f"{metric}_ci_high": hi,
                        f"{metric}_vs_erm": dm, f"{metric}_vs_erm_ci_low": dlo, f"{metric}_vs_erm_ci_high": dhi})
        out.append(rec)
    return runs, pd.DataFrame(out)


def _small_cnn(seed: int):
    """Two conv layers + global max pooling + a linear head, seeded (global RNG untouched)."""
    import torch
    from torch import nn

    from ..adapt import ImageClassifier

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten())
        return ImageClassifier(body, 1, feature_dim=16)


def run_knownbias_image_benchmark(manifest=None, *, label: str = "No_Finding", group_col: str = "sex",
                                  marked_group: str = "male", methods=("erm", "resample-group-label", "groupdro"),
                                  seeds=range(5), size_px: int = 32, epochs: int = 6, lr: float = 3e-3,
                                  work_dir=None, image_root=None):
    r"""The image-level known-bias benchmark: a shortcut marker in one group, clean test.

    For each seed, :func:`make_knownbias_images` stamps the marker on positive images of
    ``marked_group`` in train/val (default: the bundled real NIH X-rays, label ``No_Finding``,
    marker on male patients), a small CNN (two conv layers, global max pooling) is trained from
    scratch with each method (checkpoint by validation AUC), and the marked group's AUC is
    measured on validation (marker present) and on the clean test split. The **shortcut gap**
    is validation minus test AUC of the marked group: how much of the apparent performance was
    the marker. Returns ``(runs, summary)`` like :func:`run_knownbias_benchmark` (means over
    seeds with 95% t-intervals and paired differences to ERM).
    """
    import tempfile

    import pandas as pd

    from ..adapt import (
        ImageDataset,
        TrainConfig,
        fit_images,
        predict_images,
        selection_scores,
    )
    from ..mitigate import MITIGATIONS, make_mitigation

    if manifest is None:
        from ..datasets import nih_images

        path = nih_images()
        manifest, image_root = pd.read_csv(path), path.parent
    rows = []
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for seed in seeds:
            out = Path(tmp) / f"seed{seed}"
            f = make_knownbias_images(manifest, label=label, group_col=group_col, marked_group=marked_group,
                                      out_dir=out, image_root=image_root, size_px=size_px, seed=int(seed))
            codes = (f[group_col].astype(str) == str(marked_group)).astype(int).to_numpy()

            def ds(split, f=f, out=out, codes=codes):
                m = (f["split"] == split).to_numpy()
                return ImageDataset(f.loc[m, "path"], y=f.loc[m, label], groups=codes[m], root=out, size=size_px,
                                    mean=(0.5,) * 3, std=(0.25,) * 3, cache=True), f.loc[m]

            (tr, _), (va, fv), (te, ft) = ds("train"), ds("val"), ds("test")
            for name in methods:
                if MITIGATIONS[name].stage not in ("none", "pre", "in"):
                    raise FairfoundryError(f"the image benchmark runs training methods; {name!r} is post-processing")
                hooks = [] if name == "erm" else [make_mitigation(name)]
                for h in hooks:
                    if hasattr(h, "n_groups"):
                        h.n_groups = 2
                model = _small_cnn(int(seed))
                model, _ = fit_images(model, tr, val=va, hooks=hooks,
                                      config=TrainConfig(epochs=epochs, batch_size=32, lr=lr, seed=int(seed)))
                sv, _ = predict_images(model, va)
                st, _ = predict_images(model, te)
                g_v, g_t = fv[group_col].astype(str).to_numpy(), ft[group_col].astype(str).to_numpy()
                v = selection_scores(fv[label].to_numpy(), sv, g_v)
                t = selection_scores(ft[label].to_numpy(), st, g_t)
                mk = f"auc[{marked_group}]"
                rows.append({"method": name, "seed": int(seed), "val_auc_marked": v.get(mk, float("nan")),
                             "test_auc_marked": t.get(mk, float("nan")), "test_auc": t["overall_auc"],
                             "test_worst_group_auc": t["worst_group_auc"]})
                rows[-1]["shortcut_gap"] = rows[-1]["val_auc_marked"] - rows[-1]["test_auc_marked"]
    runs = pd.DataFrame(rows)
    metrics = ("val_auc_marked", "test_auc_marked", "shortcut_gap", "test_auc", "test_worst_group_auc")
    erm = runs[runs["method"] == "erm"].set_index("seed")
    out_rows = []
    for name, grp in runs.groupby("method", sort=False):
        rec = {"method": name, "seeds": len(grp)}
        for metric in metrics:
            m, lo, hi = _t_interval(grp[metric])
            rec.update({metric: m, f"{metric}_ci_low": lo, f"{metric}_ci_high": hi})
            if len(erm):
                dm, dlo, dhi = _t_interval(grp.set_index("seed")[metric] - erm[metric].reindex(grp["seed"]).to_numpy())
                rec.update({f"{metric}_vs_erm": dm, f"{metric}_vs_erm_ci_low": dlo, f"{metric}_vs_erm_ci_high": dhi})
        out_rows.append(rec)
    return runs, pd.DataFrame(out_rows)
