"""The pilot's choice of the smallest label x group cells, on the bundled NIH X-rays (no training)."""

from __future__ import annotations

import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.bench._synthetic_pilot import _targets, _verdict
from fairfoundry.datasets import nih_images


def test_smallest_cells_are_brought_to_the_largest():
    m = pd.read_csv(nih_images())
    tr = m[m["split"] == "train"]
    counts = tr.groupby(["Infiltration", "sex"]).size()
    assert counts.min() == 12 and counts.max() == 59  # female positives are the smallest cell
    assert _targets(m, label="Infiltration", attribute="sex", target_cells=1, where="nih") == [("1", "female", 47)]
    two = _targets(m, label="Infiltration", attribute="sex", target_cells=2, where="nih")
    assert [t[:2] for t in two] == [("1", "female"), ("1", "male")] and two[1][2] == 59 - 25
    flat = pd.DataFrame({"split": "train", "y": [0, 1, 0, 1], "sex": ["f", "f", "m", "m"]})
    with pytest.raises(FairfoundryError, match="no smaller subgroup"):
        _targets(flat, label="y", attribute="sex", target_cells=1, where="t")


def test_verdict_says_too_few_to_judge_with_few_test_events():
    delta = pd.DataFrame([{"arm": "synthetic", "metric": "sex:auc_gap", "change_vs_real_only": -0.05,
                           "ci_low": -0.08, "ci_high": -0.02, "seeds": 5}])
    qc = pd.DataFrame({"n_synthetic": [40], "qc_pass_rate": [0.5]})
    few = _verdict(delta, None, {"female": 6, "male": 7}, "sex", "Infiltration", qc, 20)
    assert few.startswith("20 of 40") and "Too few to judge" in few and "narrowed" in few
    many = _verdict(delta, None, {"female": 60, "male": 70}, "sex", "Infiltration", qc, 20)
    assert "Too few" not in many and "narrowed" in many
    none = _verdict(delta.assign(ci_low=-0.1, ci_high=0.1), None, {"female": 60, "male": 70}, "sex", "y", qc, 0)
    assert "No synthetic image passed" in none and "no detectable change" in none
