"""Every command that reads an image manifest refuses relative paths climbing out of the
manifest's folder, naming the 1-based data row, unless --allow-outside-root (issue 9, item 7)."""

import shutil

import pandas as pd
import pytest

from fairfoundry.datasets import nih_images


@pytest.fixture
def climbing(tmp_path):
    """12 bundled NIH rows with absolute paths, except data row 3: ``../outside.png``."""
    src = nih_images()
    m = pd.read_csv(src, dtype={"sample_id": str, "patient_id": str}).head(12).copy()
    m["path"] = [str((src.parent / p).resolve()) for p in m["path"]]
    shutil.copy(m.loc[2, "path"], tmp_path / "outside.png")
    m.loc[2, "path"] = "../outside.png"
    (tmp_path / "sub").mkdir()
    m.to_csv(tmp_path / "sub" / "manifest.csv", index=False)
    return tmp_path / "sub" / "manifest.csv"


COMMANDS = {
    "fit": ["fit", "--encoder", "fairfoundry-tiny", "--encoder-weights", "random", "--label",
            "Infiltration", "--sensitive", "sex", "--no-emissions", "--no-html"],
    "pretrain": ["pretrain", "--objective", "mae", "--steps", "1", "--batch-size", "4",
                 "--image-size", "32", "--device", "cpu"],
    "distill": ["distill", "--teacher", "fairfoundry-tiny", "--steps", "1", "--batch-size", "4",
                "--image-size", "32", "--device", "cpu"],
    "experiment baseline-audit": ["experiment", "baseline-audit", "--label", "Infiltration",
                                  "--sensitive", "sex", "--bootstrap", "10", "--no-emissions"],
    "synth train": ["synth", "train", "--condition", "sex", "--split", "all", "--steps", "1",
                    "--image-size", "8", "--batch-size", "4", "--device", "cpu"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_climbing_path_is_refused_with_its_row(cli, climbing, tmp_path, command):
    r = cli(*COMMANDS[command], "--manifest", climbing, "--out", tmp_path / "o")
    assert r.code == 2, r
    assert "row 3" in r.err and "'../outside.png' points outside" in r.err, r.err
    assert "--allow-outside-root" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_allow_outside_root_reads_the_climbing_path(cli, climbing, tmp_path):
    r = cli(*COMMANDS["pretrain"], "--manifest", climbing, "--out", tmp_path / "o",
            "--allow-outside-root")
    assert r.code == 0, r


def test_subset_rows_keep_their_manifest_row_numbers(tmp_path):
    """synth trains on one split: a refused path is named by its row in the file."""
    from fairfoundry._errors import FairfoundryError
    from fairfoundry.synth._images import resolve_paths

    m = pd.DataFrame({"path": ["a.png", "b.png", "../c.png"], "split": ["val", "train", "train"]})
    with pytest.raises(FairfoundryError, match="row 3: path '../c.png'"):
        resolve_paths(m[m["split"] == "train"], tmp_path / "m.csv")
    got = resolve_paths(m, tmp_path / "m.csv", allow_outside_root=True)
    assert got[2] == (tmp_path / ".." / "c.png").resolve()
