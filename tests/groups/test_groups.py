"""The one group model: codes and names, intersections, the missing token, bins and order."""

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.groups import (
    DEFAULT_AGE_EDGES,
    MISSING,
    attribute_groups,
    auto_bin_columns,
    encode_groups,
    group_labels,
    intersect_groups,
    intersection_name,
    is_known,
    parse_bins,
    sort_groups,
    split_intersection,
)


def test_values_become_codes_and_names_with_one_missing_token():
    codes, names = encode_groups(pd.Series(["M", None, "F", np.nan, "unknown"]))
    assert names == ["F", "M", MISSING] and MISSING == "unknown"
    assert codes.tolist() == [1, 2, 0, 2, 2]  # None, NaN and the word 'unknown' are one group
    codes, names = encode_groups([2.0, 1.0, None])  # whole floats read as integers
    assert names == ["1", "2", "unknown"]


def test_bins_sort_numerically_and_unknown_last():
    assert sort_groups(["80+", "40-59", "unknown", "<40", "60-79"]) == ["<40", "40-59", "60-79", "80+",
                                                                          "unknown"]
    assert sort_groups(["10", "9", "b", "a"]) == ["9", "10", "a", "b"]
    cat = attribute_groups([85, 20, None, 45], edges=[40, 60, 80])
    assert list(cat.categories) == ["<40", "40-59", "60-79", "80+", "unknown"]
    # age-group labels given as text (a harmonised manifest) are ordered numerically too
    cat = attribute_groups(["80+", "<20", "20-39"])
    assert list(cat.categories) == ["<20", "20-39", "80+"]


def test_intersections_have_one_naming_everywhere():
    frame = pd.DataFrame({"sex": ["female", "male", "female", None], "age": [65, 30, 70, 50]})
    codes, names = intersect_groups(frame, ["sex", "age"], bins={"age": [40, 60, 80]})
    assert names == ["sex=female & age=60-79", "sex=male & age=<40", "sex=unknown & age=40-59"]
    assert codes.tolist() == [0, 1, 0, 2]
    assert intersection_name(["sex", "age"], ["female", "60-79"]) == names[0]
    assert split_intersection(names[2]) == [("sex", "unknown"), ("age", "40-59")]
    assert not is_known(names[2]) and is_known(names[0])
    labels = group_labels(frame, ["sex", "age"], bins={"age": [40, 60, 80]})
    assert labels.tolist() == [names[c] for c in codes]
    # adapt / mitigate / evaluation / audit agree on the names
    from fairfoundry.adapt import encode_groups as adapt_encode
    from fairfoundry.mitigate import training_groups

    assert adapt_encode is encode_groups
    tg = training_groups(frame.assign(age=frame["age"].astype(float)), ["sex"])
    assert tg.tolist() == ["female", "male", "female", "unknown"]


def test_one_default_age_binning_trimmed_to_the_data():
    assert DEFAULT_AGE_EDGES == (20.0, 40.0, 60.0, 80.0)
    frame = pd.DataFrame({"age": np.arange(25, 91)})
    assert auto_bin_columns(frame, ["age"]) == {"age": [40.0, 60.0, 80.0]}
    assert auto_bin_columns(frame, ["age"], {"age": [50]}) == {"age": [50.0]}  # explicit: kept


def test_bins_are_parsed_once_with_errors_naming_the_option():
    assert parse_bins(["age=40,60,80"]) == {"age": [40.0, 60.0, 80.0]}
    with pytest.raises(FairfoundryError, match="strictly increasing"):
        parse_bins(["age=60,40"])
    with pytest.raises(FairfoundryError, match="must be numbers"):
        parse_bins(["age=forty"])
    with pytest.raises(FairfoundryError, match="COLUMN=EDGE"):
        parse_bins(["age"])


def test_fixed_categories_and_non_numeric_bins():
    codes, names = encode_groups(["a", "z", None], categories=["a", "b", "unknown"])
    assert codes.tolist() == [0, -1, 2] and names == ["a", "b", "unknown"]
    with pytest.raises(FairfoundryError, match=r"row 2 holds 'old'"):
        attribute_groups(["30", "old"], edges=[40], name="age")


def test_evaluate_groups_accepts_labels_as_well_as_codes():
    from fairfoundry.metrics import evaluate_groups

    y = [0, 1, 0, 1, 0, 1, 1, 0]
    s = [0.2, 0.8, 0.6, 0.7, 0.1, 0.4, 0.9, 0.3]
    g = ["<40", "<40", "80+", "80+", "40-59", "40-59", None, None]
    by_label = evaluate_groups(y, s, threshold=0.5, groups=g)
    codes, names = encode_groups(g)
    by_code = evaluate_groups(y, s, threshold=0.5, groups=codes, group_names=names)
    pd.testing.assert_frame_equal(by_label.per_group, by_code.per_group)
    assert list(dict.fromkeys(by_label.per_group["group"])) == ["<40", "40-59", "80+", "unknown",
                                                                 "overall"]
    fixed = evaluate_groups(y, s, threshold=0.5, groups=g, group_names=["<40", "40-59", "80+", "unknown",
                                                                          "never"])
    assert "group is empty" in set(fixed.per_group.loc[fixed.per_group["group"] == "never", "reason"])
    with pytest.raises(FairfoundryError, match="not in group_names"):
        evaluate_groups(y, s, threshold=0.5, groups=g, group_names=["<40"])


def test_the_audit_and_evaluate_name_intersections_the_same_way():
    from fairfoundry.audit import audit_manifest
    from fairfoundry.evaluation import evaluate

    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)],
                          "sex": rng.choice(["female", "male"], n), "age": rng.uniform(20, 90, n),
                          "split": rng.choice(["val", "test"], n), "y": rng.integers(0, 2, n)})
    frame["p"] = np.clip(frame["y"] * 0.3 + rng.uniform(0, 0.7, n), 0, 1)
    audit = audit_manifest(frame, attributes=["sex", "age"], intersections=[("sex", "age")],
                           age_bins=[40, 60, 80])
    ev = evaluate(frame, label="y", score="p", sensitive=["sex", "age"], intersect=[["sex", "age"]],
                  bins={"age": [40, 60, 80]}, threshold=0.5)
    a_names = set(audit.groups.loc[audit.groups["attribute"] == "sex&age_group", "group"])
    e_names = set(ev.by_group.loc[ev.by_group["attribute"] == "sex&age", "group"])
    assert {n.replace("age_group=", "age=") for n in a_names} == e_names
    assert "sex=female & age=<40" in e_names
