"""The Python examples of the foundations docs run as written (README, data.md, metrics.md)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _block(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _run(code: str, path: Path) -> dict:
    ns: dict = {}
    exec(compile(code, str(path), "exec"), ns)
    return ns


def test_readme_groups_example(capsys):
    ns = _run(_block(ROOT / "README.md", "## Groups, validation and the pipeline layer"), ROOT / "README.md")
    assert "['female', 'male', 'overall', 'unknown']" in capsys.readouterr().out
    assert ns["res"].estimate("n", "unknown") == 2


def test_data_md_groups_example(capsys):
    ns = _run(_block(ROOT / "docs" / "data.md", "## Protected groups: one group model"), ROOT / "docs" / "data.md")
    assert ns["names"][0] == "sex=female & age=<40" and "sex=unknown & age=40-59" in ns["names"]
    assert "['<40', '40-59', '80+', 'unknown']" in capsys.readouterr().out


def test_metrics_md_first_example_with_an_intersection_reference():
    """metrics.md's opening example (reference "sex=male & age=40-59") runs on real predictions."""
    ns = _run(_block(ROOT / "docs" / "metrics.md", "# Metrics"), ROOT / "docs" / "metrics.md")
    res = ns["res"]
    assert ns["names"][:2] == ["sex=female & age=<40", "sex=female & age=40-59"]
    ref = res.summary.set_index("metric").loc["tpr_vs_reference"]
    assert "sex=male & age=40-59" in str(ref["detail"]) or ref["estimate"] == ref["estimate"]
    assert set(res.per_group["group"]) >= {"sex=male & age=80+", "overall"}
