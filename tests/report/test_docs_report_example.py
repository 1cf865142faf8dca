"""The report and tables examples of docs/evaluate.md and the README run as written."""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "evaluate.md"
SECTION = "## Reports, figures and tables for a paper"


def _section(path: Path, heading: str) -> str:
    text = path.read_text()
    part = text[text.index(heading):]
    return part[: part.index("\n## ", 5)]


def test_docs_report_examples_run(tmp_path, monkeypatch, cli, capsys):
    section = _section(DOC, SECTION)
    monkeypatch.chdir(tmp_path)
    line = re.search(r"```bash\n(.*?)```", section, re.S).group(1).strip()
    args = shlex.split(line)
    assert args[0] == "fairfoundry"
    r = cli(*args[1:])
    assert r.code == 0, r
    out = tmp_path / "nih-tables"
    md = (out / "tables.md").read_text()
    assert "| Effusion | sex | female | 7,074 |" in md and "| Cardiomegaly | view | PA |" in md
    assert r"\toprule" in (out / "tables.tex").read_text()
    assert (out / "figures" / "02_view_calibration.svg").exists()
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    ns: dict = {}
    exec(compile(code, str(DOC), "exec"), ns)
    assert "| label | attribute | group | n | AUC |" in capsys.readouterr().out
    assert (tmp_path / "tables.tex").read_text() == ns["ev"].to_latex()
    assert {"tables.md", "tables.tex", "figures", "report.html"} <= {
        p.name for p in (tmp_path / "nih-eval").iterdir()}
    assert "Findings, in words" in ns["html"]


def test_readme_report_command_is_the_tested_one():
    """The README's command is the docs command that test_docs_report_examples_run executes."""
    readme = _section(ROOT / "README.md", "## Reports you can publish")
    docs = _section(DOC, SECTION)
    line = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip()
    assert line == re.search(r"```bash\n(.*?)```", docs, re.S).group(1).strip()
    assert "docs/evaluate.md#reports-figures-and-tables-for-a-paper" in readme
