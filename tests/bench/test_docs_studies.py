"""Every example of docs/studies.md runs as written (study commands with fast settings appended)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import pandas as pd
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


def _check_label_scarcity(out: Path) -> None:
    study = json.loads((out / "study.json").read_text())
    assert study["cells"] == 3 * 2
    spread = pd.read_csv(out / "tables" / "auc_gap_spread_sex.csv")
    assert 1.0 in set(spread["label_fraction"])
    # 1 % of ~155 training patients is one or two patients: one class only, recorded, never a crash
    assert any("could not be fitted" in f for f in study["findings"])
    assert any("too few to judge" in f for f in study["findings"])


def _check_cross_site(out: Path) -> None:
    study = json.loads((out / "study.json").read_text())
    assert study["cells"] == 4 * 2 and not study["failed"]
    assert any("trained in AUS: AUC in AUT minus AUC on held-out AUS" in f for f in study["findings"])
    gen = pd.read_csv(out / "tables" / "generalisation_gap.csv")
    assert set(zip(gen["train"], gen["test"], strict=True)) == {("AUS", "AUT"), ("AUT", "AUS")}
    man = pd.read_csv(out / "inputs" / "train_AUS_test_AUT.csv")  # the country is in every manifest
    assert set(man.loc[man["split"] == "test", "country"]) == {"AUT"}
    assert set(man.loc[man["split"] == "train", "country"]) == {"AUS"}


def _check_zoo(out: Path) -> None:
    auc = pd.read_csv(out / "tables" / "auc.csv")
    assert set(auc["encoder"]) == {"fairfoundry-tiny", "fairfoundry-tiny@random"}
    assert set(auc["dataset"]) == {"nih-xray", "ham10000"}
    study = json.loads((out / "study.json").read_text())
    assert any("too few datasets to rank" in f for f in study["findings"])


def _check_peft(out: Path) -> None:
    study = json.loads((out / "study.json").read_text())
    kinds = {"linear-probe", "lora-r4", "lora-r16", "frozen", "partial-last2", "full"}
    assert study["cells"] == len(kinds) * 2 and not study["failed"]
    auc = pd.read_csv(out / "tables" / "auc.csv")
    assert set(auc["adaptation"]) == kinds
    import duckdb

    with duckdb.connect(str(out / "grid" / "results.duckdb"), read_only=True) as con:
        ids = dict(con.execute("SELECT adaptation, cell_id FROM cells WHERE seed = 0").fetchall())
    heads = {a: json.loads(next((out / "grid" / "cells" / ids[a]).rglob("head.json")).read_text())
             for a in ("frozen", "partial-last2", "full")}
    assert heads["partial-last2"]["adaptation"] == "partial" and heads["partial-last2"]["partial_blocks"] == 2
    share = {a: h["trainable_share"] for a, h in heads.items()}
    assert share["frozen"] < 0.01 < 0.4 < share["partial-last2"] < 0.6 < share["full"]  # 2 of 4 blocks + norm


CHECKS = {"label-scarcity": _check_label_scarcity, "cross-site": _check_cross_site, "zoo-benchmark": _check_zoo,
          "peft-vs-full": _check_peft}


def test_every_study_has_a_documented_command():
    assert {c[1] for c in _commands("fairfoundry experiment")} == {"label-scarcity", "cross-site",
                                                                   "zoo-benchmark", "peft-vs-full"}


_EXPERIMENTS = _commands("fairfoundry experiment")


@pytest.mark.slow
@pytest.mark.parametrize("argv", _EXPERIMENTS, ids=[f"{c[1]}-{i}" for i, c in enumerate(_EXPERIMENTS)])
def test_documented_study_command_runs(argv, tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)  # the documented commands use repository paths (tests/data/...)
    study = argv[1]
    argv = [a if not a.startswith("runs/") else str(tmp_path / a) for a in argv]
    extra = list(FAST)
    if study == "label-scarcity":
        extra += ["--fraction", "0.01", "--fraction", "0.5", "--fraction", "1.0"]
    assert main([*argv, *extra]) == 0, argv
    out = Path(argv[argv.index("--out") + 1])
    assert (out / "report.html").is_file() and "What the data shows" in (out / "report.html").read_text()
    CHECKS[study](out)
