"""Real example data bundled with fairfoundry (NIH ChestX-ray14 only: unrestricted licence).

- :func:`nih_chexnet` -- 22,433 real CheXNet (DenseNet-121) predictions on the NIH test split, with
  ground truth for 14 findings, age, sex, view and patient id.
- :func:`nih_images` -- 300 real NIH X-rays at 256 px with a manifest (for embedding / adaptation
  demos that must run offline).

See ``datasets/_data/PROVENANCE.md`` for sources, licences and how the files were built.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["NIH_LABELS", "nih_chexnet", "nih_chexnet_published_aucs", "nih_images", "data_dir"]

NIH_LABELS: list[str] = [
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
]


def data_dir() -> Path:
    """Folder holding the bundled data files."""
    return Path(str(resources.files(__package__).joinpath("_data")))


def nih_chexnet():
    """Real CheXNet predictions on the NIH ChestX-ray14 test split (22,433 images).

    Columns: ``sample_id`` (NIH ``Image Index``), ``patient_id``, ``age`` (years), ``sex``
    (female/male), ``view`` (PA/AP), ``follow_up``, one 0/1 column per finding in
    :data:`NIH_LABELS` plus ``No_Finding``, one ``prob_<finding>`` column of model probabilities
    per finding, and ``split`` (``val`` for a seeded 30 % of patients, ``test`` for the rest: the
    authors released test predictions only, so thresholds are chosen on held-out patients).

    Source: predictions of jrzech/reproduce-chexnet (BSD-3, 2022 retrained DenseNet-121),
    joined with NIH ``Data_Entry_2017_v2020.csv`` (Wang et al., CVPR 2017; NIH Clinical Center).

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    return pd.read_parquet(data_dir() / "nih_chexnet.parquet")


def nih_chexnet_published_aucs():
    """The authors' published per-label test AUCs (``label``, ``auc``) for :func:`nih_chexnet`."""
    import pandas as pd

    return pd.read_csv(data_dir() / "nih_chexnet_published_aucs.csv")


def nih_images() -> Path:
    """Path of ``manifest.csv`` for 300 real NIH X-rays (256 px PNG, one per patient).

    The manifest has ``sample_id``, ``patient_id``, ``path`` (relative to the manifest), ``age``,
    ``sex``, ``view``, the 14 finding columns, ``No_Finding``, the CheXNet ``prob_*`` columns and
    ``split`` (patient-level, seeded: 155 train / 75 val / 70 test).
    """
    return data_dir() / "nih_images_256" / "manifest.csv"
