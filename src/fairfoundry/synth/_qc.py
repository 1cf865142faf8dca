"""Quality control of synthetic images, per requested cell (label x group).

:func:`run_qc` embeds real and synthetic images with one zoo encoder and reports, for every cell
of the synthetic manifest:

* fidelity / diversity: ``FD_<encoder>`` (Fréchet distance), ``KID_<encoder>``, precision,
  recall, density and coverage (:mod:`fairfoundry.synth._metrics`) against the real images of
  that cell;
* memorisation: the share of synthetic images whose nearest-neighbour distance ratio to the
  generator's training images is below ``copy_threshold`` (a copy), next to the same share for
  real held-out images of the cell (the calibration: what an honest sample scores);
* attribute / label fidelity (RoentGen-v2 style): one logistic-regression classifier per
  condition column, trained on the encoder features of real training images; a synthetic image
  passes when every classifier agrees with the condition it was generated for and it is not a
  copy. Failing images are rejected and listed with the reason.

Real images are resized to the synthetic images' resolution before encoding, so the distances
measure the generator and not the loss of resolution.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError
from ._conditions import _norm

__all__ = ["QC_FILES", "run_qc", "wilson_interval", "embed_images"]

log = logging.getLogger(__name__)

#: files ``run_qc`` writes (``qc.json`` last)
QC_FILES = ("qc.csv", "per_sample.csv", "rejected.csv", "accepted.csv", "classifiers.csv", "qc.html", "qc.json")


def wilson_interval(successes: int, n: int, *, z: float = 1.959963984540054) -> tuple[float, float]:
    r"""Wilson score interval of a proportion (Wilson 1927); NaN for ``n == 0``.

    .. math:: \frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n} + \frac{z^2}{4n^2}}}{1 + z^2/n}
    """
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if successes == 0 else max(0.0, mid - half)
    hi = 1.0 if successes == n else min(1.0, mid + half)
    return lo, hi


def embed_images(paths, encoder, *, size: int, channels: int, batch_size: int = 64, progress=None) -> np.ndarray:
    """Encoder features of image files, each first resized to ``size`` x ``size`` (``channels`` 1 or 3)."""
    from ._images import load_images, to_uint8

    feats = []
    paths = list(paths)
    for s in range(0, len(paths), batch_size):
        x = to_uint8(load_images(paths[s:s + batch_size], size=size, channels=channels))
        feats.append(encoder.encode_image(list(x)).cpu().numpy())
        if progress is not None:
            progress(len(x))
    return np.concatenate(feats).astype(np.float64)


def _cell_groups(frame, columns):
    """The one call site of the group encoder: codes and names of the condition cells."""
    from ..groups import intersect_groups

    return intersect_groups(frame, list(columns))


def _condition_columns(syn, conditions, where):
    if conditions:
        return list(conditions)
    if "cell" not in syn.columns:
        raise FairfoundryError(f"{where} has no 'cell' column: pass the condition columns explicitly",
                               hint="e.g. --condition Effusion,sex")
    first = str(syn["cell"].iloc[0])
    return [part.split("=", 1)[0] for part in first.split(",")]


def run_qc(real: str | os.PathLike, synthetic: str | os.PathLike, *, out: str | os.PathLike,
           conditions=None, encoder: str = "fairfoundry-tiny", encoder_weights: str | None = None,
           generator: str | os.PathLike | None = None, k: int = 5, copy_threshold: float = 1 / 3,
           split_col: str = "split", train_split: str = "train", seed: int = 0, device: str = "cpu",
           overwrite: bool = False, progress=None, allow_outside_root: bool = False) -> Path:
    """Run quality control of ``synthetic`` against ``real`` and write ``out`` (:data:`QC_FILES`).

    Parameters
    ----------
    real : manifest of real images (``sample_id``, ``path``, the condition columns, optionally
        ``split``).
    synthetic : manifest written by :func:`sample_generator` (or any manifest with the condition
        columns and ``path``).
    conditions : condition columns (default: read from the synthetic manifest's ``cell`` column).
    encoder, encoder_weights : the zoo encoder of the feature space (default ``fairfoundry-tiny``,
        bundled; nothing is downloaded).
    generator : the generator directory; its ``train_ids.txt`` names the images it was trained on
        (the memorisation reference). Without it: the real rows with ``split_col == train_split``
        (all rows when there is no split column).
    k : neighbourhood size of precision/recall/density/coverage.
    copy_threshold : nearest-neighbour distance ratio below which a synthetic image is a copy.
    seed : KID subsets and classifier cross-validation folds.

    Returns
    -------
    pathlib.Path of ``out``.
    """
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .._io import (
        file_fingerprint,
        prepare_out_dir,
        staged_dir,
        write_sidecar,
        write_table_atomic,
    )
    from ..data import load_image, read_manifest
    from ..models import load_encoder
    from ._images import resolve_paths
    from ._metrics import (
        copy_rate,
        frechet_distance,
        kernel_inception_distance,
        nn_distance_ratio,
        prdc,
    )

    if not (0 < copy_threshold < 1):
        raise FairfoundryError(f"copy_threshold must be in (0, 1), got {copy_threshold}")
    rm = read_manifest(real, required=("sample_id", "path"))
    sm = read_manifest(synthetic, required=("sample_id", "path"))
    cols = _condition_columns(sm, conditions, f"synthetic manifest {synthetic}")
    for c in cols:
        if c not in sm.columns:
            raise FairfoundryError(f"condition column {c!r} not found in synthetic manifest {synthetic}")
        if c not in rm.columns:
            raise FairfoundryError(f"condition column {c!r} not found in real manifest {real}",
                                   hint=f"columns are: {', '.join(map(str, rm.columns))}")
    rm = rm.copy()
    sm = sm.copy()
    for c in cols:
        rm[c] = [_norm(v) for v in rm[c].tolist()]
        sm[c] = [_norm(v) for v in sm[c].tolist()]
    known = np.ones(len(rm), dtype=bool)
    for c in cols:
        known &= ~rm[c].isin(["", "unknown"]).to_numpy()
    rm = rm[known].reset_index(drop=True)
    # train (memorisation reference, classifier training) vs held-out real rows
    if generator is not None:
        ids_file = Path(generator) / "train_ids.txt"
        if not ids_file.exists():
            raise FairfoundryError(f"{generator} has no train_ids.txt: not a generator directory")
        ids = set(ids_file.read_text().split())
        is_train = rm["sample_id"].astype(str).isin(ids).to_numpy()
        if not is_train.any():
            raise FairfoundryError(f"none of the generator's training images is in real manifest {real}")
    elif split_col in rm.columns:
        is_train = (rm[split_col].astype(str) == train_split).to_numpy()
    else:
        is_train = np.ones(len(rm), dtype=bool)
    if is_train.sum() < 2:
        raise FairfoundryError(f"real manifest {real} has fewer than 2 training images with every condition known")
    both = pd.concat([rm[cols].assign(_src="real"), sm[cols].assign(_src="syn")], ignore_index=True)
    codes, names = _cell_groups(both, cols)
    rcode, scode = codes[: len(rm)], codes[len(rm):]
    cells = sorted(set(scode.tolist()))
    for g in cells:
        if not (rcode == g).any():
            raise FairfoundryError(f"no real images of group {names[g]!r} in real manifest {real}: "
                                   "its synthetic images cannot be checked",
                                   hint="QC needs real images of every synthetic cell")
    prepare_out_dir(out, overwrite=overwrite, outputs=list(QC_FILES))
    spaths = resolve_paths(sm, sm.attrs.get("manifest_path", synthetic),
                           allow_outside_root=allow_outside_root)
    rpaths = resolve_paths(rm, rm.attrs.get("manifest_path", real), allow_outside_root=allow_outside_root)
    first = np.asarray(load_image(spaths[0]))
    size = int(first.shape[0])
    channels = 3 if first.ndim == 3 else 1
    enc = load_encoder(encoder, weights=encoder_weights, device=device)
    enc_name = str(encoder).replace("/", "_").replace(":", "_")
    fr = embed_images(rpaths, enc, size=size, channels=channels, progress=progress)
    fs = embed_images(spaths, enc, size=size, channels=channels, progress=progress)
    ftrain = fr[is_train]
    # attribute / label fidelity classifiers on real training features
    clf_rows, agree = [], np.ones(len(sm), dtype=bool)
    predicted = {}
    for c in cols:
        y = rm[c].to_numpy()[is_train]
        vals, counts = np.unique(y, return_counts=True)
        if len(vals) < 2:
            predicted[c] = np.full(len(sm), vals[0], dtype=object)
            clf_rows.append({"column": c, "classes": len(vals), "n_train": int(len(y)),
                             "cv_balanced_accuracy": float("nan"),
                             "note": "one value in the real training images: nothing to check"})
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
        folds = int(min(5, counts.min()))
        if folds >= 2:
            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            pred_cv = cross_val_predict(model, ftrain, y, cv=cv)
            bacc = float(np.mean([np.mean(pred_cv[y == v] == v) for v in vals]))
            note = f"{folds}-fold cross-validated on real training images"
        else:
            bacc, note = float("nan"), "a value has a single real training image: accuracy not estimable"
        model.fit(ftrain, y)
        predicted[c] = model.predict(fs)
        agree &= predicted[c] == sm[c].to_numpy()
        clf_rows.append({"column": c, "classes": len(vals), "n_train": int(len(y)), "cv_balanced_accuracy": bacc,
                         "chance": 1.0 / len(vals), "note": note})
    ratio = nn_distance_ratio(fs, ftrain)
    is_copy = ratio < copy_threshold
    passed = agree & ~is_copy
    per = pd.DataFrame({"sample_id": sm["sample_id"].astype(str), "path": [str(p.resolve()) for p in spaths],
                        "group": [names[g] for g in scode], **{c: sm[c].to_numpy() for c in cols},
                        **{f"predicted_{c}": predicted[c] for c in cols},
                        "nn_ratio": ratio, "copy": is_copy.astype(int), "attributes_agree": agree.astype(int),
                        "qc_pass": passed.astype(int)})
    reasons = []
    for i in range(len(per)):
        why = [f"classifier reads {c}={predicted[c][i]} (asked {sm[c].iloc[i]})" for c in cols
               if predicted[c][i] != sm[c].iloc[i]]
        if is_copy[i]:
            why.append(f"copy of a training image (nn ratio {ratio[i]:.3f} < {copy_threshold:.3f})")
        reasons.append("; ".join(why))
    per["reason"] = reasons
    rows = []
    for g in cells:
        sg, rg = scode == g, rcode == g
        held = rg & ~is_train
        km, ks = kernel_inception_distance(fr[rg], fs[sg], seed=seed)
        pr = prdc(fr[rg], fs[sg], k=min(k, max(1, min(rg.sum(), sg.sum()) - 1)))
        n_s, n_copy, n_pass = int(sg.sum()), int(is_copy[sg].sum()), int(passed[sg].sum())
        held_rate = copy_rate(fr[held], ftrain) if held.any() else float("nan")
        lo, hi = wilson_interval(n_pass, n_s)
        clo, chi = wilson_interval(n_copy, n_s)
        rows.append({"group": names[g], "n_synthetic": n_s, "n_real": int(rg.sum()), "n_real_train": int((rg & is_train).sum()),
                     f"FD_{enc_name}": frechet_distance(fr[rg], fs[sg]), f"KID_{enc_name}": km,
                     f"KID_{enc_name}_std": ks, **pr,
                     "copy_rate": n_copy / n_s, "copy_rate_ci_low": clo, "copy_rate_ci_high": chi,
                     "heldout_real_copy_rate": held_rate, "n_real_heldout": int(held.sum()),
                     "attribute_pass_rate": float(agree[sg].mean()), "qc_pass_rate": n_pass / n_s,
                     "qc_pass_ci_low": lo, "qc_pass_ci_high": hi, "rejected": n_s - n_pass})
    table = pd.DataFrame(rows)
    clf = pd.DataFrame(clf_rows)
    accepted = sm[passed].copy()
    accepted["path"] = [str(p.resolve()) for p, ok in zip(spaths, passed, strict=True) if ok]
    from ._report import render_qc_html

    with staged_dir(out) as stage:
        write_table_atomic(stage / "qc.csv", table, report=True)
        write_table_atomic(stage / "per_sample.csv", per, report=True)
        write_table_atomic(stage / "rejected.csv", per[per["qc_pass"] == 0], report=True)
        write_table_atomic(stage / "accepted.csv", accepted)
        write_table_atomic(stage / "classifiers.csv", clf, report=True)
        render_qc_html(stage / "qc.html", table=table, per_sample=per, classifiers=clf, encoder=str(encoder),
                       copy_threshold=copy_threshold, real=str(real), synthetic=str(synthetic))
        write_sidecar(stage / "qc.json", kind="fairfoundry.synth.qc", seed=seed,
                      config={"conditions": cols, "encoder": str(encoder), "encoder_weights": encoder_weights,
                              "k": k, "copy_threshold": copy_threshold, "image_size": size, "channels": channels,
                              "memorisation_reference": "generator train_ids.txt" if generator is not None
                              else f"{split_col} == {train_split}"},
                      inputs={"real": file_fingerprint(real), "synthetic": file_fingerprint(synthetic),
                              "encoder_weights_id": enc.weights_id},
                      summary={"n_synthetic": int(len(sm)), "n_pass": int(passed.sum()),
                               "n_copies": int(is_copy.sum())})
    return Path(out)
