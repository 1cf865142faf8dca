"""Every example of docs/studies.md runs as written (study commands with fast settings appended)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("duckdb")

from fairfoundry.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "studies.md"
#: appended to each documented study command so the suite stays fast (later options win)
FAST = ["--seeds", "2", "--bootstrap", "20", "--epochs", "5", "--fine-tune-epochs", "1", "--overwrite"]


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)


def _commands(prefix: str) -> list[list[str]]:
    out = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(prefix):
                out.append(shlex.split(line)[1:])
    return out


def test_grid_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "grid.yaml").write_text(_blocks("yaml")[0])
    commands = _commands("fairfoundry bench")
    assert commands and commands[0][:2] == ["bench", "run"]
    for argv in commands:
        assert main(argv) == 0, argv
    assert (tmp_path / "sex_gap.csv").is_file()
    assert "reweigh" in capsys.readouterr().out


def test_python_example_prints_the_worked_example():
    (code,) = [b for b in _blocks("python") if "friedman_from_ranks" in b]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, str(DOC), "exec"), {})
    assert buf.getvalue().startswith("9.28 3.69 1.254")


@pytest.mark.slow
def test_study_commands_run(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)  # the documented commands use repository paths (tests/data/...)
    commands = _commands("fairfoundry experiment")
    assert {c[1] for c in commands} >= {"label-scarcity", "cross-site", "zoo-benchmark", "peft-vs-full"}
    for argv in commands:
        argv = [a if not a.startswith("runs/") else str(tmp_path / a) for a in argv]
        extra = list(FAST)
        if argv[1] == "label-scarcity":
            extra += ["--fraction", "0.5", "--fraction", "1.0"]
        if argv[1] == "peft-vs-full":
            continue  # fine-tuning cells: covered by tests/bench/test_grid.py on a tiny encoder
        assert main([*argv, *extra]) == 0, argv
        out = Path(argv[argv.index("--out") + 1])
        assert (out / "report.html").is_file() and (out / "study.json").is_file()
