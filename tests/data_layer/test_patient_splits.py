import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairfoundry._errors import FairfoundryError
from fairfoundry.data import check_leakage, exact_duplicates, patient_split


def _manifest(n_pat=600, seed=0):
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 5, n_pat)
    pid = np.repeat([f"p{i}" for i in range(n_pat)], k)
    sex = np.repeat(rng.choice(["female", "male"], n_pat), k)
    label = np.repeat(rng.random(n_pat) < 0.2, k).astype(int)
    return pd.DataFrame({"sample_id": [f"s{i}" for i in range(len(pid))], "patient_id": pid,
                         "sex": sex, "label": label})


def test_patient_split_is_patient_level_seeded_and_proportional():
    m = _manifest()
    s = patient_split(m, ratios={"train": 0.7, "val": 0.1, "test": 0.2}, seed=3,
                      stratify=["label", "sex"])
    assert s.groupby(m["patient_id"]).nunique().max() == 1
    per_patient = s.groupby(m["patient_id"]).first().value_counts(normalize=True)
    assert per_patient["train"] == pytest.approx(0.7, abs=0.02)
    assert per_patient["test"] == pytest.approx(0.2, abs=0.02)
    assert s.equals(patient_split(m, ratios=[0.7, 0.1, 0.2], seed=3, stratify=["label", "sex"]))
    assert not s.equals(patient_split(m, seed=4, stratify=["label", "sex"]))
    # stratified: label prevalence close in every split
    prev = m["label"].groupby(s).mean()
    assert prev.max() - prev.min() < 0.05


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=200), st.integers(0, 10))
def test_no_patient_in_two_splits(patients, seed):
    m = pd.DataFrame({"sample_id": [str(i) for i in range(len(patients))],
                      "patient_id": [str(p) for p in patients]})
    m["split"] = patient_split(m, seed=seed)
    assert len(check_leakage(m)) == 0


def test_leakage_is_found_and_named():
    m = pd.DataFrame({"patient_id": ["a", "a", "b", "c", "c"],
                      "split": ["train", "test", "train", "val", "val"]})
    leaks = check_leakage(m)
    assert leaks.to_dict(orient="records") == [{"patient_id": "a", "splits": "test+train",
                                                "n_images": 2}]
    with pytest.raises(FairfoundryError, match="a \\(test\\+train\\)"):
        check_leakage(m, raise_error=True)


def test_split_bad_input():
    with pytest.raises(FairfoundryError, match="non-negative"):
        patient_split(_manifest(10), ratios={"train": -1, "test": 2})
    with pytest.raises(FairfoundryError, match="race"):
        patient_split(_manifest(10), stratify="race")


def test_exact_duplicates_by_content(tmp_path, data_dir):
    import shutil

    imgs = sorted((data_dir / "ham10000_images_224" / "images").iterdir())[:3]
    for i, p in enumerate(imgs):
        shutil.copy(p, tmp_path / f"{i}.jpg")
    shutil.copy(imgs[0], tmp_path / "copy_of_0.jpg")
    m = pd.DataFrame({"sample_id": ["a", "b", "c", "d", "e"],
                      "path": ["0.jpg", "1.jpg", "2.jpg", "copy_of_0.jpg", "gone.jpg"]})
    dups, problems = exact_duplicates(m, root=tmp_path)
    assert dups["sample_id"].tolist() == ["a", "d"] and dups["group_size"].tolist() == [2, 2]
    assert problems["path"].tolist() == ["gone.jpg"]
