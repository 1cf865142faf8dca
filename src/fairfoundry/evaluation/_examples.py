"""Named example evaluations on bundled real data (``fairfoundry evaluate --example NAME``)."""

from __future__ import annotations

from collections.abc import Callable

from .._errors import FairfoundryError, did_you_mean

__all__ = ["EXAMPLES", "example_options"]


def _nih_chexnet() -> dict:
    from ..datasets import NIH_LABELS, nih_chexnet

    return {
        "data": nih_chexnet(),
        "label": list(NIH_LABELS),
        "score": [f"prob_{label}" for label in NIH_LABELS],
        "sensitive": ["sex", "age", "view"],
        "bins": {"age": [20.0, 40.0, 60.0, 80.0]},
        "split_col": "split",
        "threshold": "youden",
        "threshold_split": "val",
        "report_split": "test",
        "cluster": "patient_id",
        "id_col": "sample_id",
        "bootstrap": 200,
        "source_name": "fairfoundry.datasets.nih_chexnet()",
    }


#: example name -> function returning the keyword arguments of :func:`fairfoundry.evaluate`
#: (plus ``source_name``).
EXAMPLES: dict[str, Callable[[], dict]] = {"nih-chexnet": _nih_chexnet}


def example_options(name: str) -> dict:
    """Keyword arguments of :func:`fairfoundry.evaluate` for the bundled example ``name``.

    ``nih-chexnet``: real CheXNet predictions on NIH ChestX-ray14 (22,433 images, 14 findings);
    sensitive sex, age (bins 20, 40, 60, 80) and view; Youden thresholds chosen on ``val``
    patients, reported on ``test``, bootstrap clustered by patient.
    """
    if name not in EXAMPLES:
        raise FairfoundryError(f"unknown example {name!r}",
                               hint=did_you_mean(name, EXAMPLES, what="examples"))
    return EXAMPLES[name]()
