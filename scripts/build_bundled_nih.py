"""Build the bundled NIH ChestX-ray14 CheXNet example from the shared real data.

Reproduce: ``python scripts/build_bundled_nih.py --shared ../shared/data``

Inputs (see ``src/fairfoundry/datasets/_data/PROVENANCE.md``):
- ``nih_chexnet_predictions/chexnet_retrained_2022_nih_test_preds.csv`` (jrzech/reproduce-chexnet, BSD-3)
- ``nih_chestxray14/Data_Entry_2017_v2020.csv.gz`` (NIH, no restrictions)
- ``nih_chestxray14_images_256/`` (300 real images, 256 px)

The predictions cover the authors' test split only. To let thresholds be chosen on data that
is never reported, we assign 30 % of *patients* (seeded, patient-level) to ``val`` and keep the
rest as ``test``; the split column is part of the bundled file, so everyone gets the same split.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

LABELS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
          "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening",
          "Hernia"]
SEED = 20250224
VAL_SHARE = 0.3


def patient_split(patients: pd.Series, *, seed: int, val_share: float) -> pd.Series:
    """Deterministic patient-level split from a seeded hash (stable across pandas versions)."""
    def u(pid) -> float:
        digest = hashlib.sha256(f"{seed}:{pid}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64
    uniq = patients.drop_duplicates()
    assign = {p: ("val" if u(p) < val_share else "test") for p in uniq}
    return patients.map(assign)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default="../shared/data", type=Path)
    ap.add_argument("--out", default=Path("src/fairfoundry/datasets/_data"), type=Path)
    args = ap.parse_args()
    preds = pd.read_csv(args.shared / "nih_chexnet_predictions/chexnet_retrained_2022_nih_test_preds.csv")
    meta = pd.read_csv(args.shared / "nih_chestxray14/Data_Entry_2017_v2020.csv.gz")
    df = preds.merge(meta, on="Image Index", how="left", validate="one_to_one")
    assert df["Patient ID"].notna().all()
    findings = df["Finding Labels"].str.split("|")
    out = pd.DataFrame({
        "sample_id": df["Image Index"],
        "patient_id": df["Patient ID"].astype("int64"),
        "age": df["Patient Age"].astype("float64"),
        "sex": df["Patient Gender"].map({"M": "male", "F": "female"}).fillna("unknown"),
        "view": df["View Position"],
        "follow_up": df["Follow-up #"].astype("int64"),
    })
    for lab in LABELS:
        out[lab] = findings.map(lambda f, lab=lab: int(lab in f)).astype("int8")
    out["No_Finding"] = (out[LABELS].sum(axis=1) == 0).astype("int8")
    for lab in LABELS:
        out[f"prob_{lab}"] = df[f"prob_{lab}"].astype("float32")
    out["split"] = patient_split(out["patient_id"], seed=SEED, val_share=VAL_SHARE)
    args.out.mkdir(parents=True, exist_ok=True)
    out.to_parquet(args.out / "nih_chexnet.parquet", index=False, compression="zstd")
    shutil.copy(args.shared / "nih_chexnet_predictions/chexnet_retrained_2022_aucs.csv",
                args.out / "nih_chexnet_published_aucs.csv")
    # 300 real images (256 px) with a manifest relative to the image folder
    img_src = args.shared / "nih_chestxray14_images_256"
    img_dst = args.out / "nih_images_256"
    (img_dst / "images").mkdir(parents=True, exist_ok=True)
    m = pd.read_csv(img_src / "metadata.csv")
    for rel in m["file"]:
        shutil.copy(img_src / rel, img_dst / rel)
    man = pd.DataFrame({
        "sample_id": m["Image Index"], "patient_id": m["Patient ID"], "path": m["file"],
        "age": m["Patient Age"].astype(float),
        "sex": m["Patient Gender"].map({"M": "male", "F": "female"}).fillna("unknown"),
        "view": m["View Position"], "finding_labels": m["Finding Labels"],
    })
    fl = m["Finding Labels"].str.split("|")
    for lab in LABELS:
        man[lab] = fl.map(lambda f, lab=lab: int(lab in f)).astype("int8")
    man["No_Finding"] = (man[LABELS].sum(axis=1) == 0).astype("int8")
    for lab in LABELS:
        man[f"prob_{lab}"] = m[f"prob_{lab}"]
    # a patient-level train/val/test split (50/25/25, seeded hash) for the offline adaptation demo
    u = patient_split(man["patient_id"], seed=SEED, val_share=0.5)  # "val" marks the first 50 %
    u2 = patient_split(man["patient_id"], seed=SEED + 1, val_share=0.5)
    man["split"] = np.where(u == "val", "train", np.where(u2 == "val", "val", "test"))
    man.to_csv(img_dst / "manifest.csv", index=False)
    print(out.shape, out["split"].value_counts().to_dict(), man.shape, man["split"].value_counts().to_dict())


if __name__ == "__main__":
    main()
