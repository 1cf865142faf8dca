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


README = DOC.parents[1] / "README.md"
SEG_DOC = DOC.parent / "segmentation.md"


def test_readme_section_commands_run(tmp_path, monkeypatch, cli):
    text = README.read_text()
    section = text[text.index("## Hallucination and segmentation fairness"):]
    section = section[: section.index("\n## ", 5)]
    code = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(_blocks("python")[0], str(DOC), "exec"), {})  # reports.csv
    seg = re.findall(r"```python\n(.*?)```", SEG_DOC.read_text(), re.S)[0]
    exec(compile(seg, str(SEG_DOC), "exec"), {})  # masks.csv
    commands = [c.split("#")[0] for c in code.replace("\\\n", " ").strip().splitlines()]
    assert len(commands) == 2
    for line in commands:
        r = cli(*shlex.split(line)[1:])
        assert r.code == 0, r
    assert (tmp_path / "rep" / "report.html").exists() and (tmp_path / "seg" / "per_sample.csv").exists()
