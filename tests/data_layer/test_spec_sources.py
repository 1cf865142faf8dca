"""Spec value maps checked against their published sources; .xlsx tables; release renames."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.data import get_spec, list_specs, load_dataset
from fairfoundry.data._harmonise import harmonise_ethnicity, harmonise_race

FIX = Path(__file__).parent / "fixtures"

openpyxl = pytest.importorskip("openpyxl")


def _write_xlsx(path: Path, rows: list[list]) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)


# the published PAPILA sheets: a title row, the header row (first cell 'ID'), a sub-header row
# without an ID naming the refraction / IOP sub-columns, then one row per patient, ID '#002'.
PAPILA_HEADER = ["ID", "Age", "Gender", "Diagnosis", "Refractive_Defect", None, None,
                 "Phakic/Pseudophakic", "IOP", None, "Pachymetry", "Axial_Length", "VF_MD"]
PAPILA_SUB = [None, "Age", "Gender", "Diagnosis", "dioptre_1", "dioptre_2", "astigmatism",
              "Phakic/Pseudophakic", "Pneumatic", "Perkins", "Pachymetry", "Axial_Length", "VF_MD"]


def _papila_rows(title: str, patients: list[tuple]) -> list[list]:
    rows = [[title] + [None] * 12, PAPILA_HEADER, PAPILA_SUB]
    for pid, age, gender, diagnosis in patients:
        rows.append([pid, age, gender, diagnosis, -0.5, -1.0, 90, 0, 15, None, 550, 23.5, None])
    return rows


def test_papila_reads_the_published_xlsx_layout(tmp_path):
    patients = [("#002", 39, 0, 0), ("#004", 53, 1, 1), ("#005", 72, 1, 2)]
    _write_xlsx(tmp_path / "ClinicalData" / "patient_data_od.xlsx",
                _papila_rows("Right eye (OD)", patients))
    _write_xlsx(tmp_path / "ClinicalData" / "patient_data_os.xlsx",
                _papila_rows("Left eye (OS)", patients))
    m = load_dataset("papila", tmp_path).manifest
    # the sub-header row (no ID) is dropped: 3 patients x 2 eyes, nothing else
    assert len(m) == 6
    assert m["sample_id"].tolist() == ["RET002OD", "RET004OD", "RET005OD",
                                       "RET002OS", "RET004OS", "RET005OS"]
    assert m["path"].iloc[0] == "FundusImages/RET002OD.jpg"
    assert m["patient_id"].tolist() == ["002", "004", "005"] * 2
    assert m["sex"].tolist() == ["male", "female", "female"] * 2
    assert m["label"].tolist() == ["healthy", "glaucoma", "suspect"] * 2
    assert m["age"].tolist() == [39.0, 53.0, 72.0] * 2
    assert set(m["country"]) == {"ESP"}
    # both eyes of a patient always land in the same split
    assert m.groupby("patient_id")["split"].nunique().max() == 1


def test_papila_xlsx_and_csv_give_the_same_manifest(tmp_path):
    # the CSV fixture holds the same patients as a sheet saved to CSV
    csv = load_dataset("papila", FIX / "papila").manifest
    od = pd.read_csv(FIX / "papila" / "ClinicalData" / "patient_data_od.csv", header=1)
    patients = [(r.ID, r.Age, r.Gender, r.Diagnosis) for r in od.itertuples()]
    for eye, name in [("OD", "od"), ("OS", "os")]:
        _write_xlsx(tmp_path / "ClinicalData" / f"patient_data_{name}.xlsx",
                    _papila_rows(eye, patients))
    xlsx = load_dataset("papila", tmp_path).manifest
    assert xlsx["sample_id"].tolist()[:3] == csv["sample_id"].tolist()[:3]
    assert xlsx["sex"].tolist()[:3] == csv["sex"].tolist()[:3]


def test_chexpert_demo_xlsx_joins_race(tmp_path):
    shutil.copy(FIX / "chexpert" / "train.csv", tmp_path / "train.csv")
    demo = pd.read_csv(FIX / "chexpert" / "CHEXPERT DEMO.csv")
    assert demo.columns.tolist() == ["PATIENT", "GENDER", "AGE_AT_CXR", "PRIMARY_RACE",
                                     "ETHNICITY"]
    _write_xlsx(tmp_path / "CHEXPERT DEMO.xlsx",
                [demo.columns.tolist()] + demo.astype(object).values.tolist())
    r = load_dataset("chexpert", tmp_path)
    m = r.manifest.drop_duplicates("patient_id").set_index("patient_id")
    assert m.loc["patient00001", "race"] == "white"
    assert m.loc["patient00002", "race"] == "black"
    assert m.loc["patient00003", "ethnicity"] == "hispanic_or_latino"
    assert not any("DEMO" in n for n in r.notes)


def test_xlsx_without_openpyxl_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    shutil.copy(FIX / "chexpert" / "train.csv", tmp_path / "train.csv")
    _write_xlsx(tmp_path / "CHEXPERT DEMO.xlsx", [["PATIENT", "PRIMARY_RACE"]])
    real_import = builtins.__import__

    def no_openpyxl(name, *args, **kwargs):
        if name == "openpyxl":
            raise ImportError("no openpyxl")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openpyxl)
    with pytest.raises(FairfoundryError, match="CHEXPERT DEMO.xlsx needs openpyxl") as exc:
        load_dataset("chexpert", tmp_path)
    assert "fairfoundry[medical]" in exc.value.hint


# every PRIMARY_RACE / ETHNICITY string reported for the CHEXPERT DEMO table
CHEXPERT_RACE = {
    "White": "white", "White, non-Hispanic": "white", "White, Hispanic": "white",
    "Black or African American": "black", "Black, non-Hispanic": "black",
    "Black, Hispanic": "black", "Asian": "asian", "Asian, non-Hispanic": "asian",
    "Asian, Hispanic": "asian", "Native Hawaiian or Other Pacific Islander": "pacific_islander",
    "Pacific Islander, non-Hispanic": "pacific_islander",
    "Pacific Islander, Hispanic": "pacific_islander",
    "Native American, non-Hispanic": "native_american",
    "Native American, Hispanic": "native_american",
    "American Indian or Alaska Native": "native_american", "Other": "other",
    "Other, non-Hispanic": "other", "Other, Hispanic": "other",
    "Race and Ethnicity Unknown": "unknown", "Unknown": "unknown", "Patient Refused": "unknown",
}
CHEXPERT_ETHNICITY = {
    "Non-Hispanic/Non-Latino": "not_hispanic_or_latino", "Hispanic/Latino": "hispanic_or_latino",
    "Not Hispanic": "not_hispanic_or_latino", "Hispanic": "hispanic_or_latino",
    "Unknown": "unknown", "Patient Refused": "unknown",
}

# the 33 race strings of MIMIC-IV admissions (v2+)
MIMIC_RACE = {
    "WHITE": "white", "WHITE - OTHER EUROPEAN": "white", "WHITE - RUSSIAN": "white",
    "WHITE - EASTERN EUROPEAN": "white", "WHITE - BRAZILIAN": "white", "PORTUGUESE": "white",
    "BLACK/AFRICAN AMERICAN": "black", "BLACK/CAPE VERDEAN": "black",
    "BLACK/CARIBBEAN ISLAND": "black", "BLACK/AFRICAN": "black",
    "HISPANIC/LATINO - PUERTO RICAN": "hispanic", "HISPANIC/LATINO - DOMINICAN": "hispanic",
    "HISPANIC/LATINO - GUATEMALAN": "hispanic", "HISPANIC/LATINO - SALVADORAN": "hispanic",
    "HISPANIC/LATINO - MEXICAN": "hispanic", "HISPANIC/LATINO - COLUMBIAN": "hispanic",
    "HISPANIC/LATINO - HONDURAN": "hispanic", "HISPANIC/LATINO - CUBAN": "hispanic",
    "HISPANIC/LATINO - CENTRAL AMERICAN": "hispanic", "HISPANIC OR LATINO": "hispanic",
    "SOUTH AMERICAN": "hispanic", "ASIAN": "asian", "ASIAN - CHINESE": "asian",
    "ASIAN - SOUTH EAST ASIAN": "asian", "ASIAN - ASIAN INDIAN": "asian",
    "ASIAN - KOREAN": "asian", "AMERICAN INDIAN/ALASKA NATIVE": "native_american",
    "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER": "pacific_islander",
    "MULTIPLE RACE/ETHNICITY": "multiracial", "OTHER": "other", "UNKNOWN": "unknown",
    "UNABLE TO OBTAIN": "unknown", "PATIENT DECLINED TO ANSWER": "unknown",
}


def test_chexpert_demo_strings_all_harmonise():
    spec = get_spec("chexpert")
    race = harmonise_race(pd.Series(list(CHEXPERT_RACE)), mapping=spec.attributes["race"].map)
    assert list(race) == list(CHEXPERT_RACE.values())
    eth = harmonise_ethnicity(pd.Series(list(CHEXPERT_ETHNICITY)),
                              mapping=spec.attributes["ethnicity"].map)
    assert list(eth) == list(CHEXPERT_ETHNICITY.values())


def test_mimic_iv_race_strings_all_harmonise():
    assert len(MIMIC_RACE) == 33
    spec = get_spec("mimic-cxr-jpg")
    race = harmonise_race(pd.Series(list(MIMIC_RACE)), mapping=spec.attributes["race"].map)
    assert list(race) == list(MIMIC_RACE.values())


def test_brset_v102_column_names_load_like_v101(tmp_path):
    old = load_dataset("brset", FIX / "brset").manifest
    table = pd.read_csv(FIX / "brset" / "labels.csv")
    assert {"drusens", "insuline", "iluminaton", "quality"} <= set(table.columns)
    table.rename(columns={"drusens": "drusen", "insuline": "insulin",
                          "iluminaton": "illumination"}).to_csv(tmp_path / "label_brset.csv",
                                                                index=False)
    new = load_dataset("brset", tmp_path).manifest
    pd.testing.assert_frame_equal(old, new)
    assert old["drusen"].tolist() == table["drusens"].tolist()
    # published coding: patient_sex 1 = male, 2 = female
    assert dict(zip(table["patient_sex"], old["sex"], strict=True)) == {1: "male", 2: "female"}


def _npz(path: Path, **keys) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, rnflt=np.zeros((4, 4), np.float32), **{k: np.array(v) for k, v in keys.items()})


def test_harvard_gf_readme_keys_and_string_race(tmp_path):
    # keys as in the Harvard-GF README: male, race, ethnicity, language, maritalstatus
    _npz(tmp_path / "train" / "data_0001.npz", male=1, race=2, ethnicity=1, language=1,
         maritalstatus=3, age=70.2, glaucoma=1)
    # race stored as the string the authors' loader maps (Black or African American -> 1)
    _npz(tmp_path / "test" / "data_0002.npz", male=0, race="Black or African American",
         ethnicity=-1, language=-1, maritalstatus=-1, age=55.0, glaucoma=0)
    m = load_dataset("harvard-gf", tmp_path).manifest.set_index("sample_id")
    a, b = m.loc["train/data_0001.npz"], m.loc["test/data_0002.npz"]
    assert (a["sex"], a["race"], a["ethnicity"], a["language"], a["marital_status"]) == (
        "male", "white", "hispanic_or_latino", "Spanish", "widowed")
    assert (b["sex"], b["race"], b["ethnicity"], b["language"], b["marital_status"]) == (
        "female", "black", "unknown", "unknown", "unknown")
    assert (a["split"], b["split"]) == ("train", "test")


def test_harvard_gf_without_optional_keys_leaves_them_unknown(tmp_path):
    _npz(tmp_path / "train" / "data_0001.npz", male=1, race=0, age=40.0, glaucoma=0)
    r = load_dataset("harvard-gf", tmp_path)
    assert r.manifest["language"].tolist() == ["unknown"]
    assert r.manifest["ethnicity"].tolist() == ["unknown"]
    assert any("language" in n and "not in the files" in n for n in r.notes)


def test_unreadable_npz_is_listed_not_a_crash(tmp_path):
    _npz(tmp_path / "Training" / "data_00001.npz", gender=1, race=0, ethnicity=0, language=0,
         maritalstatus=0, age=50.0, glaucoma=1)
    (tmp_path / "Training" / "data_00002.npz").write_bytes(b"not a zip file")
    r = load_dataset("harvard-fairvlmed", tmp_path)
    assert r.manifest["sample_id"].tolist() == ["Training/data_00001.npz"]
    assert r.problems["path"].tolist() == ["Training/data_00002.npz"]
    with pytest.raises(FairfoundryError, match="data_00002.npz"):
        load_dataset("harvard-fairvlmed", tmp_path, strict=True)


@pytest.mark.parametrize("name", ["brset", "papila", "harvard-fairvlmed", "harvard-gf",
                                  "harvard-fairseg", "ddi", "odir-5k", "chexpert",
                                  "mimic-cxr-jpg"])
def test_value_maps_record_their_sources(name):
    spec = get_spec(name)
    assert spec.sources and all(s.url.startswith("https://") and s.says for s in spec.sources)
    assert name in list_specs()


def test_odir_annotation_workbook_is_unpivoted_to_one_row_per_image(tmp_path):
    header = ["ID", "Patient Age", "Patient Sex", "Left-Fundus", "Right-Fundus",
              "Left-Diagnostic Keywords", "Right-Diagnostic Keywords",
              "N", "D", "G", "C", "A", "H", "M", "O"]
    rows = [[0, 69, "Female", "0_left.jpg", "0_right.jpg", "cataract", "normal fundus",
             0, 0, 0, 1, 0, 0, 0, 0],
            [1, 57, "Male", "1_left.jpg", "1_right.jpg", "normal fundus", "normal fundus",
             1, 0, 0, 0, 0, 0, 0, 0],
            [2, 42, "Male", "2_left.jpg", None, "laser spot", None, 0, 1, 0, 0, 0, 0, 0, 1]]
    _write_xlsx(tmp_path / "ODIR-5K_Training_Annotations(Updated)_V2.xlsx", [header, *rows])
    m = load_dataset("odir-5k-annotations", tmp_path).manifest
    # patient by patient, left then right; a patient without a right image has one row
    assert m["sample_id"].tolist() == ["0_left.jpg", "0_right.jpg", "1_left.jpg",
                                       "1_right.jpg", "2_left.jpg"]
    assert m["eye"].tolist() == ["left", "right", "left", "right", "left"]
    assert m["keywords"].tolist()[:2] == ["cataract", "normal fundus"]
    assert m["patient_id"].tolist() == ["0", "0", "1", "1", "2"]
    assert m["sex"].tolist() == ["female", "female", "male", "male", "male"]
    assert m["C"].tolist() == [1, 1, 0, 0, 0] and m["path"].iloc[0] == "Training Images/0_left.jpg"
    assert m.groupby("patient_id")["split"].nunique().max() == 1
