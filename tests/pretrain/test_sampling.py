"""Fairness-aware data selection: who the model learns from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.pretrain import BatchSampler, CompositionTracker, group_labels, select_rows


def _groups(n_a=90, n_b=10):
    return np.array(["female"] * n_a + ["male"] * n_b)


def test_balanced_sampling_sees_groups_equally_often_whatever_their_size():
    s = BatchSampler(_groups(), batch_size=32, mode="balanced", seed=0)
    seen = np.concatenate([s.batch(t) for t in range(200)])
    frac_male = np.mean(seen >= 90)
    assert frac_male == pytest.approx(0.5, abs=0.02)  # 10 % of the data, half of the batches
    uniform = BatchSampler(n=100, batch_size=32, seed=0)
    frac_uniform = np.mean(np.concatenate([uniform.batch(t) for t in range(200)]) >= 90)
    assert frac_uniform == pytest.approx(0.1, abs=0.01)


def test_uniform_sampling_visits_every_row_once_per_epoch():
    s = BatchSampler(n=10, batch_size=5, seed=3)
    epoch = np.concatenate([s.batch(0), s.batch(1)])
    assert sorted(epoch.tolist()) == list(range(10))


def test_stratified_batches_have_the_target_composition_exactly():
    s = BatchSampler(_groups(), batch_size=10, mode="stratified",
                     target={"female": 0.7, "male": 0.3}, seed=0)
    for t in range(20):
        b = s.batch(t)
        assert (b >= 90).sum() == 3 and (b < 90).sum() == 7
    default = BatchSampler(_groups(), batch_size=20, mode="stratified", seed=0)
    assert all((default.batch(t) >= 90).sum() == 2 for t in range(5))  # the manifest's 10 %


def test_batches_are_a_pure_function_of_seed_and_step():
    a = BatchSampler(_groups(), batch_size=8, mode="balanced", seed=5)
    b = BatchSampler(_groups(), batch_size=8, mode="balanced", seed=5)
    assert np.array_equal(a.batch(17), b.batch(17))
    assert not np.array_equal(a.batch(17), a.batch(18))


def test_empty_group_in_target_is_a_clear_error():
    with pytest.raises(FairfoundryError, match="no rows") as err:
        BatchSampler(_groups(), batch_size=8, mode="balanced", target={"female": 1, "other": 1})
    assert "female, male" in err.value.hint
    with pytest.raises(FairfoundryError, match="needs attributes"):
        BatchSampler(n=10, batch_size=4, mode="stratified")
    with pytest.raises(FairfoundryError, match="unknown sampling mode"):
        BatchSampler(_groups(), batch_size=4, mode="balance")
    with pytest.raises(FairfoundryError, match="empty manifest"):
        BatchSampler(np.array([], dtype=object), batch_size=4, mode="balanced")


def test_group_left_out_of_the_target_is_never_drawn_and_warned(caplog):
    groups = _groups()
    with caplog.at_level("WARNING", logger="fairfoundry.pretrain._sampling"):
        sampler = BatchSampler(groups, batch_size=8, mode="stratified", target={"female": 1})
    assert "'male'" in caplog.text and "never be drawn" in caplog.text
    drawn = {str(np.asarray(groups, dtype=object)[i]) for s in range(5) for i in sampler.batch(s)}
    assert drawn == {"female"}


def test_missing_attribute_values_are_their_own_group():
    frame = pd.DataFrame({"sex": ["female", None, "male", ""], "site": ["a", "a", "b", None]})
    assert group_labels(frame, ["sex"]).tolist() == ["female", "unknown", "male", "unknown"]
    assert group_labels(frame, ["sex", "site"]).tolist()[3] == "unknown|unknown"
    with pytest.raises(FairfoundryError, match="'sx' not found"):
        group_labels(frame, ["sx"])


def test_composition_tracker_counts_what_was_seen():
    frame = pd.DataFrame({"sex": ["female"] * 3 + ["male"], "site": ["a", "b", "a", "b"]})
    tr = CompositionTracker(frame, ["sex", "site"])
    tr.update(np.array([3, 3, 0, 1]))
    table = tr.table().set_index(["attribute", "group"])
    assert table.loc[("sex", "male"), "n_seen"] == 2
    assert table.loc[("sex", "male"), "fraction_seen"] == 0.5
    assert table.loc[("sex", "male"), "fraction_in_manifest"] == 0.25
    assert table.loc[("sex|site", "male|b"), "n_seen"] == 2


def test_select_rows_of_a_curated_manifest():
    frame = pd.DataFrame({"sample_id": ["a", "b", "c"], "keep": [1, 0, 1]})
    assert select_rows(frame, keep_column="keep")["sample_id"].tolist() == ["a", "c"]
    assert select_rows(frame, sample_ids=["b"])["sample_id"].tolist() == ["b"]
    with pytest.raises(FairfoundryError, match="0/1"):
        select_rows(frame.assign(keep=["y", "n", "y"]), keep_column="keep")
    with pytest.raises(FairfoundryError, match="keeps no rows"):
        select_rows(frame.assign(keep=0), keep_column="keep")


def test_importing_pretrain_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, fairfoundry.pretrain, fairfoundry.cli._pretrain; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
