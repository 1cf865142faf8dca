"""Mask readers, evaluate_segmentation and ``fairfoundry evaluate-seg``: outputs and bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.segmentation import (
    dice,
    es_dice_fairmedfm,
    es_dice_fairseg,
    evaluate_segmentation,
    read_mask,
)


def _disc(shape, c, r):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return ((yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= r * r).astype(np.uint8)


def _save(path, m):
    name = path.name
    if name.endswith(".png"):
        from PIL import Image

        Image.fromarray((m * 255).astype(np.uint8)).save(path)
    elif name.endswith(".nii.gz"):
        import nibabel as nib

        nib.save(nib.Nifti1Image(m.astype(np.uint8), np.diag([0.5, 0.5, 2.0, 1.0])), str(path))
    elif name.endswith(".npz"):
        np.savez(path, mask=m)
    else:
        np.save(path, m)


def _dataset(tmp_path, n=40, fmt=".png"):
    rng = np.random.default_rng(0)
    rows = []
    (tmp_path / "masks").mkdir(exist_ok=True)
    for i in range(n):
        t = _disc((32, 32), rng.integers(12, 20, 2), int(rng.integers(5, 9)))
        p = np.roll(t, 1 if i % 2 else 3, axis=1)  # group M segmented worse
        _save(tmp_path / "masks" / f"t{i}{fmt}", t)
        _save(tmp_path / "masks" / f"p{i}{fmt}", p)
        # two images per patient, of the same sex (the permutation test moves whole patients)
        rows.append({"sample_id": f"s{i}", "patient_id": f"pt{i // 4}-{i % 2}",
                     "sex": "F" if i % 2 else "M", "age": 30 + i,
                     "pred": f"masks/p{i}{fmt}", "truth": f"masks/t{i}{fmt}"})
    table = pd.DataFrame(rows)
    table.to_csv(tmp_path / "masks.csv", index=False)
    return tmp_path / "masks.csv", table


@pytest.mark.parametrize("fmt", [".png", ".nii.gz", ".npz", ".npy"])
def test_readers_round_trip(tmp_path, fmt):
    m = _disc((20, 24), (10, 12), 6)
    path = tmp_path / f"m{fmt}"
    _save(path, m[..., None] if fmt == ".nii.gz" else m)
    got, spacing = read_mask(path)
    assert got.dtype == bool and np.array_equal(got.reshape(m.shape), m.astype(bool))
    assert spacing == ((0.5, 0.5, 2.0) if fmt == ".nii.gz" else None)


def test_non_binary_mask_is_refused(tmp_path):
    np.save(tmp_path / "prob.npy", np.linspace(0, 1, 16).reshape(4, 4))
    with pytest.raises(FairfoundryError, match="not binary"):
        read_mask(tmp_path / "prob.npy")


def test_per_group_dice_and_both_es_dice_with_cis(tmp_path):
    path, table = _dataset(tmp_path)
    ev = evaluate_segmentation(path, pred="pred", truth="truth", sensitive=["sex", "age"],
                               bins={"age": [50]}, intersect=[["sex", "age"]],
                               cluster="patient_id", n_bootstrap=200, n_permutations=100)
    per = ev.per_sample
    want = [dice(read_mask(tmp_path / p)[0], read_mask(tmp_path / t)[0])
            for p, t in zip(table.pred, table.truth, strict=True)]
    np.testing.assert_allclose(per["dice"], want)
    d = ev.get("dice", attribute="sex").set_index("group")
    assert d.loc["F", "estimate"] == pytest.approx(np.mean(want[1::2]))
    assert d.loc["M", "estimate"] < d.loc["F", "estimate"]
    s = ev.summary_table.query("attribute == 'sex'").set_index("metric")
    assert s.loc["es_dice_fairmedfm", "estimate"] == pytest.approx(
        es_dice_fairmedfm(per["dice"], groups=table["sex"]), abs=1e-9)
    assert s.loc["es_dice_fairseg", "estimate"] == pytest.approx(
        es_dice_fairseg(per["dice"], groups=table["sex"]), abs=1e-9)
    for m in ("es_dice_fairmedfm", "es_dice_fairseg", "dice_gap"):
        assert s.loc[m, "ci_low"] <= s.loc[m, "estimate"] <= s.loc[m, "ci_high"]
    assert s.loc["dice_gap", "ci_low"] > 0 and s.loc["dice_gap", "p_value"] < 0.05
    assert list(ev.get("dice", attribute="age")["group"]) == ["<50", "50+", "overall"]
    assert "sex&age" in set(ev.by_group["attribute"])


def test_nifti_spacing_is_used(tmp_path):
    import nibabel as nib

    t = _disc((20, 20), (10, 10), 5)[..., None]
    p = np.roll(t, 2, axis=0)
    for name, m in (("t.nii.gz", t), ("p.nii.gz", p)):
        nib.save(nib.Nifti1Image(m, np.diag([0.5, 0.5, 2.0, 1.0])), str(tmp_path / name))
    pd.DataFrame({"sample_id": ["a"], "sex": ["F"], "pred": ["p.nii.gz"],
                  "truth": ["t.nii.gz"]}).to_csv(tmp_path / "m.csv", index=False)
    ev = evaluate_segmentation(tmp_path / "m.csv", pred="pred", truth="truth", sensitive=["sex"])
    assert ev.per_sample["hd95"][0] == pytest.approx(1.0)  # 2 voxels of 0.5 mm


def test_cli_writes_every_output_and_refuses_to_overwrite(cli, tmp_path):
    path, _ = _dataset(tmp_path, n=20)
    out = tmp_path / "seg"
    r = cli("evaluate-seg", path, "--pred", "pred", "--truth", "truth", "--sensitive", "sex",
            "--bootstrap", "50", "--out", out)
    assert r.code == 0, r
    assert {p.name for p in out.iterdir()} == {"evaluation.csv", "summary.json",
                                               "per_sample.csv", "report.html"}
    summary = json.loads((out / "summary.json").read_text())
    names = {s["metric"] for s in summary["summaries"]}
    assert {"es_dice_fairmedfm", "es_dice_fairseg", "hd95_gap"} <= names
    assert summary["config"]["seed"] == 0 and summary["versions"]["fairfoundry"]
    assert "ES-Dice (FairMedFM)" in r.out
    again = cli("evaluate-seg", path, "--pred", "pred", "--truth", "truth", "--sensitive", "sex",
                "--out", out)
    assert again.code == 2 and "--overwrite" in again.err


@pytest.mark.parametrize("problem, message", [
    ("shape", "row 3 \\(sample_id 's2'\\): masks have different shapes"),
    ("nonbinary", "row 3 \\(sample_id 's2'\\): mask .* is not binary"),
    ("missing", "row 3 \\(sample_id 's2'\\): mask file not found"),
    ("nopath", "row 3 \\(sample_id 's2'\\): mask column 'truth' has no path"),
])
def test_bad_masks_exit_2_naming_the_row_and_write_nothing(cli, tmp_path, problem, message):
    path, table = _dataset(tmp_path, n=6, fmt=".npy")
    if problem == "shape":
        np.save(tmp_path / "masks" / "p2.npy", np.zeros((16, 16), np.uint8))
    elif problem == "nonbinary":
        np.save(tmp_path / "masks" / "p2.npy", np.full((32, 32), 0.5))
    elif problem == "missing":
        (tmp_path / "masks" / "t2.npy").unlink()
    else:
        table.loc[2, "truth"] = None
        table.to_csv(path, index=False)
    out = tmp_path / "out"
    r = cli("evaluate-seg", path, "--pred", "pred", "--truth", "truth", "--sensitive", "sex",
            "--out", out)
    assert r.code == 2, r
    assert len(r.err.strip().splitlines()) <= 2 and "Traceback" not in r.err
    import re

    assert re.search(message, r.err), r.err
    assert not out.exists()
