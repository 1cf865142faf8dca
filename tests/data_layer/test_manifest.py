import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.data import read_manifest, write_manifest
from fairfoundry.datasets import nih_images


def test_read_bundled_manifest_keeps_ids_as_strings():
    m = read_manifest(nih_images(), required=("sample_id", "path"))
    ref = pd.read_csv(nih_images(), dtype={"patient_id": str})
    assert len(m) == len(ref) == 300
    assert m["patient_id"].tolist() == ref["patient_id"].tolist()
    assert m.attrs["manifest_path"].endswith("manifest.csv")
    # paths are not resolved
    assert m["path"].iloc[0] == ref["path"].iloc[0]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_round_trip(tmp_path, suffix):
    frame = pd.DataFrame({"sample_id": ["001", "002"], "patient_id": ["07", "07"],
                          "age": [40.0, None], "sex": ["female", "unknown"]})
    out = write_manifest(frame, tmp_path / f"m{suffix}")
    back = read_manifest(out)
    assert back["sample_id"].tolist() == ["001", "002"]
    assert back["patient_id"].tolist() == ["07", "07"]
    assert back["age"].iloc[0] == 40.0 and pd.isna(back["age"].iloc[1])


def test_missing_column_names_closest(tmp_path):
    p = tmp_path / "m.csv"
    pd.DataFrame({"sampleid": ["a"], "path": ["x.png"]}).to_csv(p, index=False)
    with pytest.raises(FairfoundryError, match="sample_id") as exc:
        read_manifest(p)
    assert "sampleid" in exc.value.hint


def test_duplicate_and_empty_ids(tmp_path):
    p = tmp_path / "m.csv"
    pd.DataFrame({"sample_id": ["a", "a", "b"]}).to_csv(p, index=False)
    with pytest.raises(FairfoundryError, match="duplicate"):
        read_manifest(p)
    pd.DataFrame({"sample_id": ["a", None]}).to_csv(p, index=False)
    with pytest.raises(FairfoundryError, match="empty in 1 row"):
        read_manifest(p)


def test_non_numeric_age_and_missing_file(tmp_path):
    p = tmp_path / "m.csv"
    pd.DataFrame({"sample_id": ["a", "b"], "age": ["58", "058Y"]}).to_csv(p, index=False)
    with pytest.raises(FairfoundryError, match="058Y"):
        read_manifest(p)
    with pytest.raises(FairfoundryError, match="not found"):
        read_manifest(tmp_path / "nope.csv")


def test_write_refuses_overwrite(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("keep")
    with pytest.raises(FairfoundryError, match="already exists"):
        write_manifest(pd.DataFrame({"sample_id": ["a"]}), p, overwrite=False)
    assert p.read_text() == "keep"


def test_data_and_audit_import_no_heavy_packages():
    import subprocess
    import sys

    code = ("import sys, fairfoundry.data, fairfoundry.audit; "
            "heavy = [m for m in ('torch', 'matplotlib', 'pydicom', 'nibabel') if m in sys.modules]; "
            "print(','.join(heavy))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == ""


def test_read_manifest_accepts_xlsx_and_keeps_id_zeros(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")

    wb = openpyxl.Workbook()
    ws = wb.active
    for row in [["sample_id", "patient_id", "sex", "age"], ["001", "007", "F", 61],
                ["002", "007", "F", 62], ["003", "010", "M", 40]]:
        ws.append(row)
    wb.save(tmp_path / "m.xlsx")
    m = read_manifest(tmp_path / "m.xlsx")
    assert m["sample_id"].tolist() == ["001", "002", "003"]
    assert m["patient_id"].tolist() == ["007", "007", "010"] and m["age"].tolist() == [61, 62, 40]
