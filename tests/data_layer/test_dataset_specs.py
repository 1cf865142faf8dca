from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.data import (
    check_leakage,
    coverage_matrix,
    get_spec,
    list_specs,
    load_dataset,
    load_spec_file,
)

FIX = Path(__file__).parent / "fixtures"

ALL = ["brset", "chexpert", "ddi", "dicom", "fitzpatrick17k", "generic", "ham10000",
       "harvard-fairseg", "harvard-fairvlmed", "harvard-gf", "isic2019", "isic2020", "medmnist",
       "mimic-cxr-jpg", "nih-chestxray14", "odir-5k", "odir-5k-annotations", "pad-ufes-20",
       "padchest", "papila"]


def test_registry_has_every_spec_with_licence_and_citation():
    assert list_specs() == ALL
    for name in ALL:
        spec = get_spec(name)
        assert spec.licence and spec.citation and spec.tested_on, name


def test_unknown_dataset_lists_known():
    with pytest.raises(FairfoundryError) as exc:
        get_spec("ham1000")
    assert "ham10000" in exc.value.hint


def test_bad_spec_file_names_the_key(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("name: x\ntitle: x\nmodality: x\nlicence: x\ncitation: x\ntabels: []\n")
    with pytest.raises(FairfoundryError, match="tabels"):
        load_spec_file(p)


@pytest.fixture(scope="module")
def nih(data_dir):
    return load_dataset("nih-chestxray14", data_dir / "nih_chestxray14")


def test_nih_full_metadata_matches_pandas(nih, data_dir):
    raw = pd.read_csv(data_dir / "nih_chestxray14" / "Data_Entry_2017_v2020.csv.gz")
    m = nih.manifest
    assert len(m) == len(raw) == 112120
    assert m["patient_id"].nunique() == raw["Patient ID"].nunique() == 30805
    assert (m["sex"] == "female").sum() == (raw["Patient Gender"] == "F").sum()
    assert (m["sex"] == "male").sum() == (raw["Patient Gender"] == "M").sum()
    edges = pd.cut(raw["Patient Age"], [-np.inf, 20, 40, 60, 80, np.inf], right=False,
                   labels=["<20", "20-39", "40-59", "60-79", "80+"])
    assert m["age_group"].value_counts().to_dict() == edges.value_counts().to_dict()
    eff = raw["Finding Labels"].str.contains("Effusion", regex=False).sum()
    assert m["Effusion"].sum() == eff
    assert m["No Finding"].sum() == (raw["Finding Labels"] == "No Finding").sum()
    assert set(m["country"]) == {"USA"} and set(m["income_group"]) == {"High income"}
    assert len(check_leakage(m)) == 0


def test_ham10000_matches_pandas(data_dir):
    raw = pd.read_csv(data_dir / "ham10000" / "HAM10000_metadata.csv")
    m = load_dataset("ham10000", data_dir / "ham10000").manifest
    assert m["label"].value_counts().to_dict() == raw["dx"].value_counts().to_dict()
    assert m["sex"].value_counts().to_dict() == raw["sex"].value_counts().to_dict()
    aus = (raw["dataset"] == "rosendahl").sum()
    assert (m["country"] == "AUS").sum() == aus and (m["country"] == "AUT").sum() == len(raw) - aus
    assert m["age"].isna().sum() == raw["age"].isna().sum()
    assert len(check_leakage(m)) == 0  # lesion-level split


def test_isic2019_matches_pandas(data_dir):
    meta = pd.read_csv(data_dir / "isic2019" / "ISIC_2019_Training_Metadata.csv")
    gt = pd.read_csv(data_dir / "isic2019" / "ISIC_2019_Training_GroundTruth.csv")
    m = load_dataset("isic2019", data_dir / "isic2019").manifest
    assert len(m) == len(meta) == 25331
    onehot = gt.set_index("image").drop(columns=[]).idxmax(axis=1)
    assert m["label"].value_counts().to_dict() == onehot.value_counts().to_dict()
    assert (m["sex"] == "unknown").sum() == meta["sex"].isna().sum()
    assert (m["country"] == "ESP").sum() == meta["lesion_id"].str.startswith("BCN_").sum()
    assert (m["site"] == "MSK").sum() == meta["lesion_id"].str.startswith("MSK4_").sum()


def test_isic2020_matches_pandas(data_dir):
    raw = pd.read_csv(data_dir / "isic2020" / "ISIC_2020_Training_GroundTruth.csv")
    m = load_dataset("isic2020", data_dir / "isic2020").manifest
    assert m["label"].sum() == raw["target"].sum() == 584
    assert m["patient_id"].nunique() == raw["patient_id"].nunique() == 2056
    assert m["age"].isna().sum() == raw["age_approx"].isna().sum()
    assert len(check_leakage(m)) == 0


def test_fitzpatrick17k_matches_pandas(data_dir):
    raw = pd.read_csv(data_dir / "fitzpatrick17k" / "fitzpatrick17k.csv")
    m = load_dataset("fitzpatrick17k", data_dir / "fitzpatrick17k").manifest
    roman = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI", -1: "unknown"}
    assert m["skin_type"].value_counts().to_dict() == \
        raw["fitzpatrick_scale"].map(roman).value_counts().to_dict()
    assert (m["site"] == "atlasdermatologico.com.br").sum() == \
        raw["url"].str.contains("atlasdermatologico", na=False).sum()


def test_pad_ufes_matches_pandas(data_dir):
    raw = pd.read_csv(data_dir / "pad_ufes_20" / "metadata.csv")
    m = load_dataset("pad-ufes-20", data_dir / "pad_ufes_20").manifest
    assert (m["sex"] == "unknown").sum() == raw["gender"].isna().sum() == 804
    assert (m["skin_type"] == "II").sum() == (raw["fitspatrick"] == 2).sum()
    assert set(m["income_group"]) == {"Upper middle income"}
    assert m["patient_id"].nunique() == raw["patient_id"].nunique() == 1373
    assert len(check_leakage(m)) == 0


def test_medmnist_and_dicom_specs(data_dir):
    mm = load_dataset("medmnist", data_dir / "medmnist_pneumoniamnist_balanced").manifest
    assert mm["split"].value_counts().to_dict() == {"train": 2428, "test": 468, "val": 270}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dc = load_dataset("dicom", data_dir / "dicom_pydicom_testfiles" / "files").manifest
    assert dc["sex"].value_counts().to_dict() == {"male": 6, "female": 3, "unknown": 3, "other": 1}
    assert "unknown" in set(dc["site"])  # J2K_pixelrep_mismatch has neither institution nor maker


def test_fixture_chexpert_joins_demo_race(tmp_path):
    r = load_dataset("chexpert", FIX / "chexpert")
    m = r.manifest.set_index("patient_id")
    assert m.loc["patient00001", "race"] == "white"
    assert m.loc["patient00003", "ethnicity"] == "hispanic_or_latino"
    assert m.loc["patient64541", "split"] == "val"
    assert r.manifest["Cardiomegaly"].tolist()[1] == -1.0  # uncertain kept
    # without the DEMO table race/ethnicity are unknown, with a note
    import shutil

    shutil.copy(FIX / "chexpert" / "train.csv", tmp_path / "train.csv")
    r2 = load_dataset("chexpert", tmp_path)
    assert set(r2.manifest["race"]) == {"unknown"} and any("DEMO" in n for n in r2.notes)


def test_fixture_mimic_uses_mimic_iv_tables():
    m = load_dataset("mimic-cxr-jpg", FIX / "mimic").manifest.set_index("sample_id")
    first = m.iloc[0]
    assert first["path"].startswith("files/p10/p10000032/s50414267/")
    assert first["race"] == "white" and first["insurance"] == "Other"  # first admission
    assert m["split"].value_counts().to_dict() == {"train": 3, "val": 1, "test": 1}
    assert m.loc[m["patient_id"] == "10000764", "race"].iloc[0] == "hispanic"
    assert m.loc[m["patient_id"] == "10000764", "language"].iloc[0] == "unknown"


@pytest.mark.parametrize("name,folder,checks", [
    ("padchest", "padchest", {"sex": ["female", "male", "male"], "age": [84.0, 49.0, 1.0]}),
    ("ddi", "ddi", {"skin_type": ["V-VI", "V-VI", "I-II", "III-IV", "I-II"],
                    "label": [1.0, 1.0, 0.0, 0.0, 1.0]}),
    ("papila", "papila", {"sex": ["male", "female", "female"] * 2,
                          "label": ["healthy", "glaucoma", "suspect", "healthy", "healthy",
                                    "suspect"]}),
    ("brset", "brset", {"sex": ["female", "female", "male", "male"],
                        "country": ["BRA", "BRA", "BRA", "PRT"]}),
    ("odir-5k", "odir", {"sex": ["female", "male", "male", "female"]}),
])
def test_fixture_specs(name, folder, checks):
    m = load_dataset(name, FIX / folder).manifest
    for col, expected in checks.items():
        assert m[col].tolist() == expected, col
    assert len(check_leakage(m)) == 0


@pytest.mark.parametrize("name,keys", [
    ("harvard-fairvlmed", {"gender": 0, "race": 1, "ethnicity": -1, "language": 1,
                           "maritalstatus": 0, "age": 61.5, "glaucoma": 1}),
    ("harvard-gf", {"male": 0, "race": 1, "hispanic": -1, "age": 61.5, "glaucoma": 1}),
    ("harvard-fairseg", {"gender": 0, "race": 1, "ethnicity": -1, "language": 1,
                         "maritalstatus": 0, "age": 61.5}),
])
def test_harvard_npz_specs(tmp_path, name, keys):
    for folder, i in [("Training", 1), ("Testing", 2)]:
        (tmp_path / folder).mkdir()
        np.savez(tmp_path / folder / f"data_{i:05d}.npz", slo_fundus=np.zeros((4, 4), np.uint8),
                 **{k: np.array(v) for k, v in keys.items()})
    m = load_dataset(name, tmp_path).manifest
    assert m["split"].tolist() == ["test", "train"]
    assert m["sex"].tolist() == ["female", "female"] and m["race"].tolist() == ["black"] * 2
    assert m["ethnicity"].tolist() == ["unknown"] * 2 and m["age"].tolist() == [61.5, 61.5]


def test_missing_root_and_files(tmp_path):
    with pytest.raises(FairfoundryError, match="does not exist"):
        load_dataset("ham10000", tmp_path / "nope")
    with pytest.raises(FairfoundryError, match="HAM10000_metadata.csv"):
        load_dataset("ham10000", tmp_path)


def test_values_outside_value_map_are_listed(tmp_path, data_dir):
    raw = pd.read_csv(data_dir / "ham10000" / "HAM10000_metadata.csv").head(50)
    raw.loc[:2, "sex"] = "X?"
    raw.loc[3, "sex"] = "hermaphrodite"
    raw.to_csv(tmp_path / "HAM10000_metadata.csv", index=False)
    with pytest.raises(FairfoundryError) as exc:
        load_dataset("ham10000", tmp_path)
    assert "'X?' (3)" in exc.value.message and "'hermaphrodite' (1)" in exc.value.message


def test_check_files_lists_missing_images(data_dir, tmp_path):
    r = load_dataset("ham10000", data_dir / "ham10000", check_files=True)
    assert len(r.problems) == len(r.manifest)  # the metadata folder holds no images
    with pytest.raises(FairfoundryError, match="missing"):
        load_dataset("ham10000", data_dir / "ham10000", check_files=True, strict=True)


def test_coverage_matrix_from_specs():
    cov = coverage_matrix()
    assert "generic" not in cov.index and "dicom" not in cov.index and len(cov) == len(ALL) - 3
    assert "odir-5k-annotations" not in cov.index  # same dataset as odir-5k
    assert cov.loc["mimic-cxr-jpg", "insurance"] == "image"
    assert cov.loc["nih-chestxray14", "race"] == "-"
    assert cov.loc["fitzpatrick17k", "skin_type"] == "image"
    assert cov.loc["pad-ufes-20", "country"] == "dataset"
    assert cov.loc["medmnist"].drop("n_recorded").eq("-").all()


def test_docs_coverage_matrix_is_generated_from_specs():
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("data_docs", root / "scripts" / "data_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.coverage_markdown() in (root / "docs" / "data.md").read_text(encoding="utf-8")


def test_generic_spec_on_a_canonical_table(tmp_path):
    pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "patient_id": ["1", "1", "2", "3"],
                  "path": ["a.png", "b.png", "c.png", "d.png"], "label": ["x", "y", "x", "x"],
                  "sex": ["F", "F", "M", "M"], "age": [30, 30, "065Y", None]}).to_csv(
        tmp_path / "manifest.csv", index=False)
    r = load_dataset("generic", tmp_path)
    m = r.manifest
    assert m["sex"].tolist() == ["female", "female", "male", "male"]
    assert m["age"].tolist()[:3] == [30.0, 30.0, 65.0] and np.isnan(m["age"].iloc[3])
    assert m["age_group"].tolist() == ["20-39", "20-39", "60-79", "unknown"]
    assert len(check_leakage(m)) == 0


def test_leaking_patients_from_precomputed_codes_matches_check_leakage():
    """The audit factorizes patient ids once and passes the codes; same table as check_leakage,
    rows with a missing patient or split skipped."""
    import numpy as np
    import pandas as pd

    from fairfoundry.data import leaking_patients

    m = pd.DataFrame({"patient_id": ["p2", "p1", "p1", "p2", None, "p3", "p3"],
                      "split": ["train", "train", "test", "train", "test", None, "val"]})
    want = check_leakage(m)
    assert want["patient_id"].tolist() == ["p1"] and want["splits"].tolist() == ["test+train"]
    codes, uniq = pd.factorize(m["patient_id"])
    got = leaking_patients(codes, uniq, m["split"])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))
    assert np.asarray(got["n_images"]).tolist() == [2]


def test_spec_files_are_read_into_a_raw_frame_not_a_side_channel(data_dir):
    """The raw step returns what it found (problems, skipped tables, column files) in a
    RawFrame; the manifest carries no DataFrame.attrs."""
    from fairfoundry.data._spec_tables import RawFrame, _base_frame

    spec = get_spec("ham10000")
    notes: list[str] = []
    raw = _base_frame(spec, data_dir / "ham10000", notes)
    assert isinstance(raw, RawFrame) and len(raw.frame) > 0 and raw.frame.attrs == {}
    assert raw.column_files and all(v.endswith(".csv") for v in raw.column_files.values())
    loaded = load_dataset("ham10000", data_dir / "ham10000")
    assert loaded.manifest.attrs == {}
