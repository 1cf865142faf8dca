"""The fairness-probe examples of docs/pretrain.md (and the README's command) run as written on the
bundled NIH X-rays."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "pretrain.md"
HEADING = "## Fairness probe during training"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    return text[start:text.index("\n## ", start + 1)]


def _commands(section: str) -> list[str]:
    """The command lines of the section's bash blocks, except blocks opted out of running
    (``<!-- example: not run: ... -->`` on the line before: tests/docs/test_examples.py)."""
    blocks = [m.group(1) for m in re.finditer(r"```bash\n(.*?)```", section, re.S)
              if not section[:m.start()].rstrip().splitlines()[-1].startswith("<!-- example: not run")]
    return [line.split("  #")[0].strip() for b in blocks for line in b.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_docs_probe_examples_run_as_written(cli, tmp_path, monkeypatch, capsys):
    from fairfoundry.datasets import nih_images

    section = _section(DOC.read_text(), HEADING)
    readme = _section((ROOT / "README.md").read_text(), "## Fairness probes during pre-training")
    cmds = _commands(section)
    assert cmds and set(_commands(readme)) <= set(cmds)  # the README's lines are the docs' lines
    py = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(py) == 2
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(py[0], str(DOC), "exec"), ns)  # writes train.csv
    env = {"NIH": None}
    for cmd in cmds:
        if cmd.startswith("NIH="):
            inner = re.match(r'NIH=\$\(python -c "(.*)"\)', cmd).group(1)
            got = subprocess.run([sys.executable, "-c", inner], capture_output=True, text=True, check=True,
                                 env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
            env["NIH"] = got.stdout.strip()
            assert Path(env["NIH"]) == Path(nih_images())
            continue
        r = cli(*shlex.split(cmd.replace("$NIH", env["NIH"]))[1:])
        assert r.code == 0, (cmd, r)
    out = tmp_path / "runs" / "mae-probed"
    probe = pd.read_csv(out / "probe.csv")
    assert sorted(probe["step"].unique()) == [0, 3, 6]
    assert (probe.loc[probe["attribute"] == "overall", "n"] == 75).all()  # the 75 split=val rows
    sel = json.loads((out / "run.json").read_text())["summary"]["probe"]["selected"]
    wg = probe[probe["metric"] == "worst_group_auc"].set_index("step")["estimate"]
    assert sel["step"] == int(wg.idxmax()) and (out / "encoder_selected.safetensors").exists()
    assert "data:image/png;base64," in (out / "report.html").read_text()
    exec(compile(py[1], str(DOC), "exec"), ns)  # the Python API, reading the curves back
    printed = capsys.readouterr().out
    assert "female" in printed and "'criterion': 'overall_auc'" in printed
    assert ns["summary"]["probe"]["probes"] == 3
