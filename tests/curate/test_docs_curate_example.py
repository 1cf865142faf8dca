"""The shell examples of docs/curate.md run as written on the bundled NIH X-rays, and reproduce
the numbers the page quotes; the README's curate commands are among them."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "curate.md"


def _commands(text: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip().startswith("fairfoundry ")]


def test_readme_curate_commands_are_documented_and_run_here():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Curate data")
    section = readme[start:readme.index("\n## ", start + 1)]
    documented = set(_commands(DOC.read_text()))
    assert _commands(section) and set(_commands(section)) <= documented


@pytest.mark.slow
def test_docs_curate_examples(cli, tmp_path, monkeypatch):
    from fairfoundry.datasets import nih_images

    monkeypatch.setenv("FAIRFOUNDRY_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    cmds = _commands(DOC.read_text())
    assert [c.split()[1] for c in cmds] == ["embed", "curate", "curate", "curate", "experiment", "curate"]
    for cmd in cmds:
        args = shlex.split(cmd.replace("$NIH", str(nih_images())))[1:]
        r = cli(*args)
        assert r.code == 0, (cmd, r)
    ag = pd.read_csv("curated/proxies/agreement.csv").set_index("attribute")
    assert round(ag.loc["sex", "ami"], 3) == 0.019 and round(ag.loc["sex", "ami_p_value"], 3) == 0.005
    pairs = pd.read_csv("curated/dedup/pairs.csv")
    assert set(pairs["kind"]) == {"semantic"} and len(pairs) == 14 and pairs["cross_patient"].all()
    bal = pd.read_csv("curated/balanced/manifest.csv")
    assert len(bal) == 150
    summary = pd.read_csv("runs/curation/summary.csv").set_index("arm")
    assert summary["seeds"].eq(5).all() and list(summary["n_train"]) == [179, 175, 89, 89]
    assert round(summary.loc["balanced", "auc"], 3) == 0.542
    html = Path("runs/curation/report.html").read_text()
    assert "No detectable effect of curation here" in html
    sl = pd.read_csv("curated/slices/slices.csv")
    assert sl.loc[0, "n"] == 63 and sl.loc[0, "positives"] == 63
