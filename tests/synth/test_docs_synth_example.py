"""The shell examples of docs/synth.md run as written (the long ones with shrinking flags appended)."""

from __future__ import annotations

import re
import runpy
import shlex
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from fairfoundry.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "synth.md"


def _block(heading: str) -> list[str]:
    text = DOC.read_text()
    section = text[text.index(heading):]
    code = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in code.splitlines() if line.strip()]


def test_docs_toy_cli_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = _block("## Command line, on the toy data")
    assert len(lines) == 4
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "fairfoundry"
        assert main(argv[1:]) == 0, line
    s = pd.read_csv(tmp_path / "S" / "manifest.csv")
    assert len(s) == 16 and (s["synthetic"] == 1).all()
    q = pd.read_csv(tmp_path / "Q" / "qc.csv")
    assert set(q["group"]) == {"shape=ring & brightness=bright", "shape=square & brightness=dark"}
    assert (tmp_path / "Q" / "qc.html").exists()


@pytest.mark.slow
def test_docs_toy_script_and_pilot_commands_run(tmp_path, monkeypatch, capsys):
    """The documented long commands, shrunk by appended options (the full runs are in BENCHMARKS.md)."""
    monkeypatch.chdir(tmp_path)
    (script,) = _block("## The known-answer check")
    argv = shlex.split(script)
    assert argv[:3] == ["PYTHONPATH=src", "python", "scripts/synth_toy.py"]
    monkeypatch.setattr(sys, "argv", [str(ROOT / argv[2]), *argv[3:], "--steps", "2", "--per-cell", "3"])
    runpy.run_path(str(ROOT / argv[2]), run_name="__main__")
    assert "attribute_pass_rate" in capsys.readouterr().out
    assert (tmp_path / "runs" / "synth-toy" / "Q" / "qc.html").exists()
    (pilot,) = _block("## The synthetic-augmentation pilot")
    argv = shlex.split(pilot)
    assert argv[:3] == ["fairfoundry", "experiment", "synthetic-pilot"]
    rc = main([*argv[1:], "--seeds", "2", "--generator-steps", "2", "--image-size", "16", "--probe-epochs", "3",
               "--bootstrap", "10"])
    assert rc == 0
    out = tmp_path / "runs" / "pilot"
    arms = pd.read_csv(out / "arms.csv")
    assert set(arms["arm"]) == {"real-only", "oversampling", "reweighing", "synthetic"} and len(arms) == 8
    delta = pd.read_csv(out / "delta.csv")
    assert {"change_vs_real_only", "ci_low", "ci_high"} <= set(delta.columns)
    html = (out / "pilot.html").read_text()
    assert "Too few to judge" in html  # 6-7 test positives per sex: the pilot says so


def test_readme_synth_commands_are_the_tested_docs_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Synthetic data for under-represented groups"):]
    code = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [ln for ln in code.splitlines() if ln.strip()]
    tested = _block("## Command line, on the toy data") + _block("## The synthetic-augmentation pilot")
    assert lines and all(ln in tested for ln in lines)


@pytest.mark.slow
def test_docs_toy_selection_commands_run(tmp_path, monkeypatch, capsys):
    """The adaptive-group-norm toy run of docs/synth.md, shrunk: train, extend a copy with --resume,
    pick the generator and guidance on validation samples, score fresh test samples."""
    import json
    import shutil

    monkeypatch.chdir(tmp_path)
    lines = _block("### Adaptive group-norm conditioning and Min-SNR weighting")
    shrink = {"scripts/synth_toy.py": ["--steps", "2"], "scripts/synth_toy_select.py":
              ["--grid", "1", "--val-per-cell", "2", "--test-per-cell", "2", "--sample-steps", "2"]}
    for line in lines:
        argv = shlex.split(line)
        if argv[0] == "cp":
            assert argv[1] == "-r"
            shutil.copytree(argv[2], argv[3])
            continue
        assert argv[:2] == ["PYTHONPATH=src", "python"] and argv[2] in shrink, line
        extra = list(shrink[argv[2]])
        if "--resume" in argv:
            extra = ["--steps", "4"]
        monkeypatch.setattr(sys, "argv", [str(ROOT / argv[2]), *argv[3:], *extra])
        runpy.run_path(str(ROOT / argv[2]), run_name="__main__")
    sel = json.loads(next(tmp_path.glob("runs/*select*/selection.json")).read_text())
    assert sel["val_seed"] != sel["test_seed"] and {c["steps"] for c in sel["candidates"]} == {2, 4}
    test = pd.read_csv(next(tmp_path.glob("runs/*select*/test.csv")))
    assert len(test) == 4 and (test["n"] == 2).all()
    assert ((test["wilson_low"] <= test["rate"]) & (test["rate"] <= test["wilson_high"])).all()
    assert "chosen on validation" in capsys.readouterr().out
