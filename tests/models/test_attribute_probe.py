"""Attribute-leakage probe: finds a planted attribute, stays at chance without one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fairfoundry._errors import FairfoundryError
from fairfoundry.models import probe_attributes


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    age = rng.uniform(20, 90, n)
    race = rng.choice(["asian", "black", "white"], n)
    X = rng.normal(size=(n, 8))
    X[:, 0] += 2.0 * (sex == "male")  # sex is encoded, race and age are not
    frame = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "sex": sex, "age": age,
                          "race": race})
    return X, frame


def test_probe_detects_an_encoded_attribute_and_not_an_absent_one():
    X, frame = _data()
    res = probe_attributes(X, frame, attributes=["sex", "race", "age"], n_boot=100, seed=0)
    t = res.table.set_index("attribute")
    assert t.loc["sex", "auc"] > 0.85 and t.loc["sex", "ci_low"] > 0.5
    assert t.loc["race", "ci_low"] < 0.5 < t.loc["race", "ci_high"]
    assert t.loc["race", "n_groups"] == 3
    assert t.loc["age", "groups"] == "20-39|40-59|60-79|80+"  # binned (default edges), in bin order
    # the reported AUC is the sklearn AUC of the out-of-fold probabilities written out
    p = res.predictions[(res.predictions.attribute == "sex") & (res.predictions.group == "male")]
    assert roc_auc_score(p["y_true"] == "male", p["proba"]) == pytest.approx(t.loc["sex", "auc"])
    assert len(p) == 300


def test_missing_values_and_tiny_groups_are_left_out_and_reported():
    X, frame = _data()
    frame.loc[:9, "sex"] = "unknown"
    frame.loc[10:12, "race"] = "other"  # 3 < folds samples: dropped, named
    t = probe_attributes(X, frame, attributes=["sex", "race"], n_boot=20).table.set_index("attribute")
    assert t.loc["sex", "n_missing"] == 10 and t.loc["sex", "n"] == 290
    assert t.loc["race", "dropped_groups"] == "other" and t.loc["race", "n"] == 297


def test_probe_bad_input():
    X, frame = _data(40)
    with pytest.raises(FairfoundryError, match="attribute column 'sx' not found") as err:
        probe_attributes(X, frame, attributes=["sx"])
    assert "sex" in err.value.hint
    frame["site"] = "one"
    with pytest.raises(FairfoundryError, match="fewer than two groups"):
        probe_attributes(X, frame, attributes=["site"])
    with pytest.raises(FairfoundryError, match="does not match"):
        probe_attributes(X[:10], frame, attributes=["sex"])
