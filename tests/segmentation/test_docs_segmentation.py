"""The worked examples of docs/segmentation.md run as written (shell line and Python blocks)."""

import json
import re
import shlex
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "segmentation.md"


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)


def test_docs_examples_run(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    python = _blocks("python")
    exec(compile(python[0], str(DOC), "exec"), {})  # writes masks/ and masks.csv
    for line in _blocks("bash")[0].strip().splitlines():
        args = shlex.split(line)
        assert args[0] == "fairfoundry"
        r = cli(*args[1:])
        assert r.code == 0, r
    summary = json.loads((tmp_path / "seg" / "summary.json").read_text())
    es = {s["metric"]: s for s in summary["summaries"] if s["metric"].startswith("es_dice")}
    assert set(es) == {"es_dice_fairmedfm", "es_dice_fairseg"}
    assert all(s["ci_low"] <= s["estimate"] <= s["ci_high"] for s in es.values())
    assert any(h.startswith("dice differs by sex: female - male") for h in summary["headlines"])
    ns: dict = {}
    exec(compile(python[1], str(DOC), "exec"), ns)  # the Python API example
    assert round(ns["es_dice_fairmedfm"](ns["scores"], groups=ns["groups"]), 6) == 0.636628
    assert round(ns["es_dice_fairseg"](ns["scores"], groups=ns["groups"]), 6) == 0.508571
    d = ns["ev"].get("dice", attribute="sex").set_index("group")
    assert d.loc["male", "estimate"] < d.loc["female", "estimate"]
