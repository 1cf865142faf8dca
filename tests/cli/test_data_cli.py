import json

import pandas as pd


def test_datasets_list_and_show(cli):
    r = cli("datasets", "list")
    assert r.code == 0 and "nih-chestxray14" in r.out and "mimic-cxr-jpg" in r.out
    r = cli("datasets", "list", "--coverage", "--json")
    rows = json.loads(r.out)
    assert {x["dataset"] for x in rows} >= {"chexpert", "ham10000"}
    r = cli("datasets", "show", "pad-ufes-20")
    assert r.code == 0 and "fitspatrick" in r.out and "CC BY 4.0" in r.out
    r = cli("datasets", "show", "ham1000")
    assert r.code == 2 and "ham10000" in r.err and "Traceback" not in r.err


def test_audit_data_on_real_ham10000(cli, data_dir, tmp_path):
    out = tmp_path / "audit"
    r = cli("audit-data", "--dataset", "ham10000", "--root", data_dir / "ham10000", "--out", out,
            "--min-group-size", "20")
    assert r.code == 0, r
    for f in ("audit.json", "audit.html", "datasheet.md", "manifest.csv", "groups.csv", "run.json"):
        assert (out / f).exists(), f
    raw = pd.read_csv(data_dir / "ham10000" / "HAM10000_metadata.csv")
    audit = json.loads((out / "audit.json").read_text())
    sex = {g["group"]: g["n"] for g in audit["groups"] if g["attribute"] == "sex"}
    assert sex == raw["sex"].value_counts().to_dict()
    prev = [p for p in audit["prevalence"] if p["attribute"] == "sex" and p["class"] == "mel"
            and p["group"] == "male"][0]
    ref = raw[raw["sex"] == "male"]["dx"].eq("mel")
    assert prev["positives"] == ref.sum()
    # refuses to overwrite without --overwrite
    r = cli("audit-data", "--dataset", "ham10000", "--root", data_dir / "ham10000", "--out", out)
    assert r.code == 2 and "--overwrite" in r.err


def test_audit_data_manifest_with_reference_and_leakage(cli, tmp_path):
    m = pd.DataFrame({"sample_id": [f"s{i}" for i in range(40)],
                      "patient_id": [f"p{i // 2}" for i in range(40)],
                      "split": ["train", "test"] * 20,
                      "sex": ["female"] * 30 + ["male"] * 10, "age": range(20, 60),
                      "label": [0, 1, 1, 0] * 10})
    m.to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "ref.json").write_text(json.dumps({"sex": {"female": 0.5, "male": 0.5}}))
    r = cli("audit-data", "--manifest", tmp_path / "m.csv", "--reference", tmp_path / "ref.json",
            "--intersect", "sex,age", "--bins", "age=30,50", "--min-group-size", "2",
            "--out", tmp_path / "o")
    assert r.code == 0, r
    assert "leakage: 20 patient(s)" in r.err
    audit = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert audit["summary"]["n_leaking_patients"] == 20
    rep = {x["group"]: x["ratio"] for x in audit["representation"]}
    assert rep["male"] == 0.5
    groups = {(g["attribute"], g["group"]) for g in audit["groups"]}
    assert ("sex&age_group", "sex=female & age_group=30-49") in groups


def test_audit_data_bad_input_gives_exit_2_and_no_outputs(cli, data_dir, tmp_path):
    pd.DataFrame({"id": ["a"], "sex": ["F"]}).to_csv(tmp_path / "bad.csv", index=False)
    r = cli("audit-data", "--manifest", tmp_path / "bad.csv", "--out", tmp_path / "o1")
    assert r.code == 2 and "sample_id" in r.err and not (tmp_path / "o1").exists()
    r = cli("audit-data", "--dataset", "nope", "--root", tmp_path, "--out", tmp_path / "o2")
    assert r.code == 2 and "known datasets" in r.err and not (tmp_path / "o2").exists()
    r = cli("audit-data", "--dataset", "ham10000", "--root", tmp_path / "missing",
            "--out", tmp_path / "o3")
    assert r.code == 2 and "does not exist" in r.err
    r = cli("audit-data", "--dataset", "ham10000", "--out", tmp_path / "o4")
    assert r.code == 2 and "--root" in r.err
    r = cli("audit-data", "--dataset", "ham10000", "--root", data_dir / "ham10000",
            "--check-files", "--strict", "--out", tmp_path / "o5")
    assert r.code == 2 and "missing" in r.err and not (tmp_path / "o5").exists()


def test_audit_data_lists_unreadable_dicoms(cli, data_dir, tmp_path):
    import shutil
    import warnings

    root = tmp_path / "dcm"
    shutil.copytree(data_dir / "dicom_pydicom_testfiles" / "files", root)
    (root / "broken.dcm").write_bytes(b"\x00" * 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = cli("audit-data", "--dataset", "dicom", "--root", root, "--out", tmp_path / "o")
    assert r.code == 0, r
    problems = pd.read_csv(tmp_path / "o" / "problems.csv")
    assert problems["path"].tolist() == ["broken.dcm"]
    audit = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert audit["summary"]["n_samples"] == 13


def test_audit_data_check_images_lists_unreadable(cli, data_dir, tmp_path):
    import shutil

    src = sorted((data_dir / "ham10000_images_224" / "images").iterdir())[:3]
    (tmp_path / "img").mkdir()
    for p in src:
        shutil.copy(p, tmp_path / "img" / p.name)
    (tmp_path / "img" / "broken.jpg").write_bytes(b"not a jpeg")
    paths = [f"img/{p.name}" for p in src] + ["img/broken.jpg", "img/absent.jpg"]
    pd.DataFrame({"sample_id": list("abcde"), "path": paths,
                  "sex": ["female", "male", "male", "female", "male"]}).to_csv(
        tmp_path / "m.csv", index=False)
    r = cli("audit-data", "--manifest", tmp_path / "m.csv", "--check-images",
            "--out", tmp_path / "o")
    assert r.code == 0, r
    problems = pd.read_csv(tmp_path / "o" / "problems.csv")
    assert problems["path"].tolist() == ["img/broken.jpg", "img/absent.jpg"]
    assert "cannot read image" in problems["error"].iloc[0]
    r = cli("audit-data", "--manifest", tmp_path / "m.csv", "--check-images", "--strict",
            "--out", tmp_path / "o2")
    assert r.code == 2 and "broken.jpg" in r.err and not (tmp_path / "o2").exists()


def test_datasets_build_writes_manifest_with_paths_relative_to_it(cli, data_dir, tmp_path):
    from fairfoundry.data import load_image, read_manifest

    out = tmp_path / "runs" / "mm.parquet"
    root = data_dir / "medmnist_pneumoniamnist_balanced"
    r = cli("datasets", "build", "medmnist", "--root", root, "--out", out)
    assert r.code == 0, r
    m = read_manifest(out, required=("sample_id", "path", "split"))
    assert len(m) == 3166 and (out.parent / (out.name + ".json")).exists()
    img = load_image(out.parent / m["path"].iloc[0])
    assert img.shape == (28, 28)
    r = cli("datasets", "build", "medmnist", "--root", root, "--out", out)
    assert r.code == 2 and "--overwrite" in r.err


def test_datasets_scan_dicom_folder_lists_unreadable(cli, data_dir, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = cli("datasets", "scan", data_dir / "dicom_pydicom_testfiles" / "files", "--dicom",
                "--check", "--out", tmp_path / "m.csv")
    assert r.code == 0, r
    m = pd.read_csv(tmp_path / "m.csv")
    bad = pd.read_csv(tmp_path / "m.problems.csv")
    assert len(m) == 9 and len(bad) == 4 and "JPEG-lossy.dcm" in set(bad["path"])
    assert (tmp_path / m["path"].iloc[0]).exists()  # paths relative to the manifest


def test_audit_data_bad_values_name_file_column_and_values(cli, data_dir, tmp_path):
    raw = pd.read_csv(data_dir / "ham10000" / "HAM10000_metadata.csv")
    root = tmp_path / "ham"
    root.mkdir()
    bad = raw.head(300).copy()
    bad.loc[:4, "sex"] = "hombre"
    bad["age"] = bad["age"].astype(object)
    bad.loc[10:11, "age"] = "fifty"
    bad.to_csv(root / "HAM10000_metadata.csv", index=False)
    r = cli("audit-data", "--dataset", "ham10000", "--root", root, "--out", tmp_path / "o1")
    assert r.code == 2 and "Traceback" not in r.err and not (tmp_path / "o1").exists()
    assert "HAM10000_metadata.csv" in r.err and "column 'sex'" in r.err
    assert "'hombre' (5)" in r.err and "datasets show ham10000 >" in r.err
    bad["sex"] = raw.head(300)["sex"]
    bad.to_csv(root / "HAM10000_metadata.csv", index=False)
    r = cli("audit-data", "--dataset", "ham10000", "--root", root, "--out", tmp_path / "o2")
    assert r.code == 2 and "column 'age'" in r.err and "'fifty' (2)" in r.err
    assert not (tmp_path / "o2").exists()


def test_audit_data_raw_table_as_manifest_points_to_dataset(cli, data_dir, tmp_path):
    r = cli("audit-data", "--manifest", data_dir / "ham10000" / "HAM10000_metadata.csv",
            "--out", tmp_path / "o")
    assert r.code == 2 and "--dataset ham10000 --root" in r.err
    assert not (tmp_path / "o").exists()


def test_edited_copy_of_a_shipped_spec_fixes_unmapped_values(cli, data_dir, tmp_path):
    raw = pd.read_csv(data_dir / "ham10000" / "HAM10000_metadata.csv").head(200)
    root = tmp_path / "ham"
    root.mkdir()
    raw.assign(sex=raw["sex"].replace({"male": "hombre"})).to_csv(
        root / "HAM10000_metadata.csv", index=False)
    r = cli("datasets", "show", "ham10000")
    text = r.out.replace("  sex:\n    column: sex\n", "  sex:\n    column: sex\n    map:\n"
                         "      hombre: male\n", 1)
    (tmp_path / "my.yaml").write_text(text, encoding="utf-8")
    r = cli("audit-data", "--dataset", tmp_path / "my.yaml", "--root", root,
            "--out", tmp_path / "o")
    assert r.code == 0, r
    audit = json.loads((tmp_path / "o" / "audit.json").read_text())
    sex = {g["group"]: g["n"] for g in audit["groups"] if g["attribute"] == "sex"}
    assert sex["male"] == int((raw["sex"] == "male").sum())


def test_datasets_build_lists_unreadable_npz_next_to_the_manifest(cli, tmp_path):
    import numpy as np

    root = tmp_path / "fairvlmed" / "Training"
    root.mkdir(parents=True)
    np.savez(root / "data_00001.npz", gender=np.array(1), race=np.array(2),
             ethnicity=np.array(0), language=np.array(0), maritalstatus=np.array(1),
             age=np.array(64.0), glaucoma=np.array(1))
    (root / "data_00002.npz").write_bytes(b"truncated download")
    out = tmp_path / "m.csv"
    r = cli("datasets", "build", "harvard-fairvlmed", "--root", root.parent, "--out", out)
    assert r.code == 0, r
    assert pd.read_csv(out)["sex"].tolist() == ["male"]
    bad = pd.read_csv(tmp_path / "m.problems.csv")
    assert bad["path"].tolist() == ["Training/data_00002.npz"] and "m.problems.csv" in r.err
    r = cli("datasets", "build", "harvard-fairvlmed", "--root", root.parent, "--strict",
            "--out", tmp_path / "s.csv")
    assert r.code == 2 and "data_00002.npz" in r.err and not (tmp_path / "s.csv").exists()
