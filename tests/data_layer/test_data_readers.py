import math
import warnings

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.data import (
    load_image,
    load_npz_image,
    parse_dicom_age,
    read_dicom_header,
    read_npz_bundle,
    scan_dicom,
    scan_images,
)

pytest.importorskip("pydicom")


@pytest.fixture(scope="module")
def dicom_dir(data_dir):
    return data_dir / "dicom_pydicom_testfiles"


@pytest.fixture(scope="module")
def tags(dicom_dir):
    return pd.read_csv(dicom_dir / "dicom_tags.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def scanned(dicom_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scan_dicom(dicom_dir / "files")


def test_dicom_sex_matches_tag_table(tags, scanned):
    manifest, problems = scanned
    assert len(problems) == 0 and len(manifest) == len(tags) == 13
    expected = tags.set_index("file")["PatientSex"].map(
        {"M": "male", "F": "female", "O": "other", "": "unknown"})
    got = manifest.set_index("path")["sex"]
    for f, sex in expected.items():
        assert got[f.removeprefix("files/")] == sex, f


def test_dicom_age_from_age_string_or_dates(tags, scanned):
    manifest = scanned[0].set_index("path")
    for rec in tags.itertuples(index=False):
        got = manifest.loc[rec.file.removeprefix("files/"), "age"]
        if rec.PatientAge:
            assert got == pytest.approx(parse_dicom_age(rec.PatientAge)), rec.file
        elif rec.PatientBirthDate and rec.StudyDate:
            days = (pd.Timestamp(rec.StudyDate) - pd.Timestamp(rec.PatientBirthDate)).days
            assert got == pytest.approx(days / 365.2425), rec.file
        else:
            assert math.isnan(got), rec.file
    # RG1_J2KI has no PatientAge: age comes from birth 1940-03-05 and study 2004-08-26
    assert manifest.loc["RG1_J2KI.dcm", "age_source"] == "BirthDate"
    assert manifest.loc["RG1_J2KI.dcm", "age"] == pytest.approx(64.48, abs=0.01)
    # examples_overlay has an invalid birth date 11111111 but a valid PatientAge 058Y
    assert manifest.loc["examples_overlay.dcm", "age"] == 58.0


def test_rtstruct_without_preamble_needs_force(dicom_dir):
    f = dicom_dir / "files" / "rtstruct.dcm"
    with pytest.raises(FairfoundryError, match="force"):
        read_dicom_header(f, force=False)
    h = read_dicom_header(f, force=True)
    assert h["sex"] == "male" and h["Modality"] == "RTSTRUCT" and math.isnan(h["age"])


def test_dicom_pixels_and_unreadable_listed(dicom_dir):
    ct = load_image(dicom_dir / "files" / "CT_small.dcm")
    assert ct.shape == (128, 128) and ct.dtype == np.int16
    j2k = load_image(dicom_dir / "files" / "J2K_pixelrep_mismatch.dcm")  # JPEG 2000
    assert j2k.shape == (512, 512)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest, problems = scan_dicom(dicom_dir / "files", check=True)
    bad = set(problems["path"])
    # no pixel data (RTSTRUCT, ECG waveform, truncated J2K) and 12-bit lossy JPEG are listed
    assert {"rtstruct.dcm", "waveform_ecg.dcm", "RG1_J2KI.dcm", "JPEG-lossy.dcm"} <= bad
    assert len(manifest) + len(problems) == 13
    with warnings.catch_warnings(), pytest.raises(FairfoundryError):
        warnings.simplefilter("ignore")
        scan_dicom(dicom_dir / "files", check=True, strict=True)


def test_monochrome1_is_inverted(dicom_dir):
    import pydicom

    f = dicom_dir / "files" / "dicomdir_77654033_CR1_6154.dcm"
    raw = pydicom.dcmread(f).pixel_array
    got = load_image(f)
    bits = int(pydicom.dcmread(f).BitsStored)
    assert np.array_equal(got.astype(int), (2 ** bits - 1) - raw.astype(int))


def test_16bit_png_and_nifti_roundtrip(tmp_path):
    from PIL import Image

    arr = (np.arange(64 * 48, dtype=np.uint32).reshape(64, 48) * 20).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "x16.png")
    got = load_image(tmp_path / "x16.png")
    assert got.dtype == np.uint16 and np.array_equal(got, arr)
    nib = pytest.importorskip("nibabel")
    vol = np.random.default_rng(0).normal(size=(8, 9, 5)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "v.nii.gz")
    assert np.allclose(load_image(tmp_path / "v.nii.gz"), vol)
    (tmp_path / "bad.nii").write_bytes(b"junk")
    with pytest.raises(FairfoundryError, match="bad.nii"):
        load_image(tmp_path / "bad.nii")


def test_image_folder_lists_unreadable(tmp_path, data_dir):
    import shutil

    src = data_dir / "ham10000_images_224" / "images"
    for cls, names in {"a": sorted(src.iterdir())[:2], "b": sorted(src.iterdir())[2:3]}.items():
        (tmp_path / cls).mkdir()
        for p in names:
            shutil.copy(p, tmp_path / cls / p.name)
    (tmp_path / "b" / "broken.jpg").write_bytes(b"nope")
    manifest, problems = scan_images(tmp_path, check=True, label_from_folder=True)
    assert len(manifest) == 3 and problems["path"].tolist() == ["b/broken.jpg"]
    assert manifest["label"].tolist() == ["a", "a", "b"]
    assert set(manifest["height"]) == {224}


def test_medmnist_npz_bundle(data_dir):
    f = data_dir / "medmnist_pneumoniamnist_balanced" / "pneumoniamnist_balanced_subset.npz"
    manifest, _ = read_npz_bundle(f)
    with np.load(f) as z:
        sizes = {s: z[f"{s}_images"].shape[0] for s in ("train", "val", "test")}
        pos = {s: int(z[f"{s}_labels"].sum()) for s in ("train", "val", "test")}
        first_test = z["test_images"][0]
    assert manifest["split"].value_counts().to_dict() == sizes
    assert manifest.groupby("split")["label"].sum().to_dict() == pos
    ref = manifest.loc[manifest["split"] == "test", "path"].iloc[0]
    assert np.array_equal(load_npz_image(ref, base=f.parent), first_test)


def test_load_image_follows_npz_references(data_dir):
    from fairfoundry.data import load_dataset

    root = data_dir / "medmnist_pneumoniamnist_balanced"
    m = load_dataset("medmnist", root).manifest
    ref = m.loc[m["split"] == "val", "path"].iloc[5]
    with np.load(root / "pneumoniamnist_balanced_subset.npz") as z:
        expected = z["val_images"][5]
    assert np.array_equal(load_image(root / ref), expected)
