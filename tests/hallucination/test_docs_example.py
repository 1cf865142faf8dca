"""The worked examples of docs/hallucination.md run as written (shell lines and Python blocks)."""

import json
import re
import shlex
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "hallucination.md"


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)


def test_docs_examples_run(tmp_path, monkeypatch, cli, capsys):
    monkeypatch.chdir(tmp_path)
    python = _blocks("python")
    exec(compile(python[0], str(DOC), "exec"), {})  # writes reports.csv
    for line in _blocks("bash")[0].strip().splitlines():
        args = shlex.split(line)
        assert args[0] == "fairfoundry"
        r = cli(*args[1:])
        assert r.code == 0, r
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert any(h.startswith("hallucination differs by sex") for h in summary["headlines"])
    assert {p.name for p in (tmp_path / "rep").iterdir()} == {
        "evaluation.csv", "summary.json", "per_sample.csv", "report.html"}
    ns: dict = {}
    exec(compile(python[1], str(DOC), "exec"), ns)  # the Python API example
    assert ns["labels"].loc[0, "Atelectasis"] == -1.0
    assert ns["flip"].loc[0, "n_hallucinated"] == 1
    h = ns["ev"].get("hallucination", attribute="sex").set_index("group")
    assert h.loc["female", "estimate"] < h.loc["male", "estimate"]
    assert "confident_false_positive_any" in set(ns["zs"].per_group["metric"])
