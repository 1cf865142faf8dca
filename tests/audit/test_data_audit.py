import json
import math

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.audit import OPEN_MARK, audit_manifest, effective_groups, read_reference
from fairfoundry.data import load_dataset
from fairfoundry.groups import split_intersection


@pytest.fixture(scope="module")
def nih(data_dir):
    return load_dataset("nih-chestxray14", data_dir / "nih_chestxray14")


@pytest.fixture(scope="module")
def nih_audit(nih):
    return audit_manifest(nih.manifest, labels=["Effusion", "Cardiomegaly"],
                          reference_population={"sex": {"female": 50.8, "male": 49.2}},
                          dataset="nih-chestxray14", spec=nih.spec, notes=nih.notes)


def test_counts_match_pandas_groupby(nih, nih_audit):
    m = nih.manifest
    g = nih_audit.groups
    sex = g[g["attribute"] == "sex"].set_index("group")["n"].to_dict()
    assert sex == m["sex"].value_counts().to_dict()
    inter = g[g["attribute"] == "sex&age_group"]
    ref = m.groupby(["sex", "age_group"]).size()
    for grp, n in zip(inter["group"], inter["n"], strict=True):
        (_, s), (_, a) = split_intersection(grp)
        assert grp == f"sex={s} & age_group={a}"
        assert ref[(s, a)] == n
    pats = g[g["attribute"] == "age_group"].set_index("group")["n_patients"]
    assert pats.to_dict() == m.groupby("age_group")["patient_id"].nunique().to_dict()
    assert nih_audit.n_patients == m["patient_id"].nunique()


def test_prevalence_matches_pandas(nih, nih_audit):
    p = nih_audit.prevalence
    got = p[(p["attribute"] == "sex") & (p["label"] == "Effusion")].set_index("group")
    ref = nih.manifest.groupby("sex")["Effusion"].mean()
    assert got["prevalence"].to_dict() == pytest.approx(ref.to_dict())


def test_imbalance_missingness_reference(nih, nih_audit):
    imb = nih_audit.imbalance.set_index("attribute")
    counts = nih.manifest["sex"].value_counts()
    assert imb.loc["sex", "min_max_ratio"] == pytest.approx(counts.min() / counts.max())
    p = counts / counts.sum()
    assert imb.loc["sex", "effective_groups"] == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    miss = nih_audit.missingness.set_index("attribute")
    assert not miss.loc["race", "recorded"] and miss.loc["race", "share_unknown"] == 1.0
    rep = nih_audit.representation.set_index("group")
    assert rep.loc["female", "ratio"] == pytest.approx((counts["female"] / counts.sum()) / 0.508)
    # constant attributes (one site, one country) form no intersections
    assert all("site" not in t for t in nih_audit.intersections)


def test_effective_groups_and_reference_file(tmp_path):
    assert effective_groups([25, 25, 25, 25]) == pytest.approx(4)
    assert effective_groups([100, 0]) == pytest.approx(1)
    p = tmp_path / "ref.csv"
    pd.DataFrame({"attribute": ["sex", "sex"], "group": ["female", "male"],
                  "share": [3, 1]}).to_csv(p, index=False)
    assert read_reference(p) == {"sex": {"female": 0.75, "male": 0.25}}
    with pytest.raises(FairfoundryError, match="attribute, group, share"):
        pd.DataFrame({"a": [1]}).to_csv(p, index=False)
        read_reference(p)


def test_small_cells_are_suppressed_in_published_outputs(tmp_path):
    m = pd.DataFrame({"sample_id": [str(i) for i in range(103)],
                      "sex": ["female"] * 60 + ["male"] * 40 + ["other"] * 3,
                      "label": [0, 1] * 51 + [1]})
    a = audit_manifest(m, min_group_size=5)
    assert a.small_groups["group"].tolist() == ["other"]
    published = json.loads(a.to_json(tmp_path / "a.json"))
    other = [r for r in published["groups"] if r["group"] == "other"][0]
    assert other["n"] == "<5" and other["share"] is None
    assert (tmp_path / "a.json").exists()
    tables = a.to_html().split("Who is in the data")[1]  # (the headline says "other has <5")
    assert "3" not in tables.split("other")[1][:60]
    # the imbalance table would give the small group back (smallest = 3, 3/60 = 0.05)
    imb = {r["attribute"]: r for r in published["imbalance"]}
    assert imb["sex"]["smallest"] == "<5" and imb["sex"]["min_max_ratio"] is None
    assert imb["sex"]["largest"] == 60
    assert a.imbalance.set_index("attribute").loc["sex", "smallest"] == 3  # object keeps it
    assert "suppressed (smallest group < 5)" in a.to_datasheet()


def test_small_unknown_counts_are_suppressed_in_missingness():
    m = pd.DataFrame({"sample_id": [str(i) for i in range(50)],
                      "sex": ["female"] * 24 + ["male"] * 24 + ["unknown"] * 2})
    a = audit_manifest(m, min_group_size=5)
    miss = {r["attribute"]: r for r in a.to_dict()["missingness"]}
    assert miss["sex"]["n_unknown"] == "<5" and miss["sex"]["share_unknown"] is None
    assert "unknown for <5 images" in a.to_datasheet()
    assert "4.0%" not in a.to_html()  # 2/50 unknown


def test_html_is_self_contained_and_datasheet_marks_open_questions(nih_audit):
    html = nih_audit.to_html()
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg ") >= 4  # inline charts
    assert "http://" not in html.split("<main>")[0] and "<script src" not in html
    assert "112,120 images of 30,805 patients" in html
    assert "Coverage across datasets" in html and "» nih-chestxray14" in html
    # readable tables: shares as percentages, no empty class column, no python reprs
    assert "<td class=\"\">43.5%</td>" in html  # female share of 48,780 / 112,120
    assert "<th class=\"\">class</th>" not in html and ">None<" not in html
    assert ">True<" not in html and "{'train'" not in html
    ds = nih_audit.to_datasheet()
    assert "## Composition" in ds and "## Maintenance" in ds
    assert "112,120 images of 30,805 patients" in ds
    assert OPEN_MARK in ds and "No restrictions" in ds
    assert "race: not recorded" in ds


def test_audit_real_datasets_geography(data_dir):
    r = load_dataset("isic2019", data_dir / "isic2019")
    a = audit_manifest(r.manifest)
    geo = a.geography[a.geography["level"] == "country"].set_index("group")["n"]
    assert geo["ESP"] == (r.manifest["country"] == "ESP").sum()
    assert geo["unknown"] == (r.manifest["country"] == "unknown").sum()


def test_audit_bad_input():
    m = pd.DataFrame({"sample_id": ["a"], "sex": ["female"]})
    with pytest.raises(FairfoundryError, match="race"):
        audit_manifest(m, attributes=["race"])
    with pytest.raises(FairfoundryError, match="empty"):
        audit_manifest(m.iloc[:0])


def test_permuting_rows_changes_nothing(nih):
    m = nih.manifest.sample(5000, random_state=0)
    a = audit_manifest(m, attributes=["sex", "age_group"])
    b = audit_manifest(m.sample(frac=1, random_state=1), attributes=["sex", "age_group"])
    pd.testing.assert_frame_equal(a.groups, b.groups)


def test_prevalence_from_a_small_positive_count_is_suppressed():
    m = pd.DataFrame({"sample_id": [str(i) for i in range(200)],
                      "sex": ["female"] * 100 + ["male"] * 100,
                      "label": [1] * 3 + [0] * 97 + [1] * 50 + [0] * 50})
    a = audit_manifest(m, min_group_size=10)
    pub = a.suppressed(a.prevalence).set_index("group")
    assert pub.loc["female", "positives"] == "<10" and pub.loc["female", "prevalence"] is None
    assert pub.loc["male", "prevalence"] == 0.5
    # the exact numbers stay available to the analyst
    assert a.prevalence.set_index("group").loc["female", "positives"] == 3


def test_relabelling_groups_permutes_the_table():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=20, deadline=None)
    @given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=60))
    def check(values):
        m = pd.DataFrame({"sample_id": [str(i) for i in range(len(values))], "race": values})
        rename = {"a": "x", "b": "y", "c": "z"}
        one = audit_manifest(m, attributes=["race"], min_group_size=1).groups
        two = audit_manifest(m.assign(race=m["race"].map(rename)), attributes=["race"],
                             min_group_size=1).groups
        got = dict(zip(two["group"], two["n"], strict=True))
        assert {rename[g]: n for g, n in zip(one["group"], one["n"], strict=True)} == got

    check()


def test_values_outside_the_harmonised_vocabulary_are_flagged():
    m = pd.DataFrame({"sample_id": [str(i) for i in range(30)],
                      "sex": ["F"] * 12 + ["male"] * 15 + ["hombre"] * 3})
    a = audit_manifest(m, min_group_size=5)
    warning = [w for w in a.warnings if w.startswith("sex has 2 value(s)")]
    assert warning and "'F' (12)" in warning[0] and "'hombre' (<5)" in warning[0]
    assert "harmonise_sex" in warning[0]
    clean = audit_manifest(m.assign(sex=["female"] * 12 + ["male"] * 18), min_group_size=5)
    assert not any("vocabulary" in w for w in clean.warnings)
