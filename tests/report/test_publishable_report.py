"""The evaluation report at many groups, its files, and the tables for a paper.

Small synthetic data (fast); the real-data report is tested in test_evaluation_report.py.
"""

import base64
import html as html_lib
import re

import numpy as np
import pandas as pd
import pytest

import fairfoundry
from fairfoundry.report import evaluation_report_html
from fairfoundry.report._evaluation import TOP_CURVE_GROUPS, TOP_GROUPS

_IMG = re.compile(r'<img[^>]*src="([^"]*)"')


def _frame(n=3000, sites=60, seed=0):
    rng = np.random.default_rng(seed)
    site = np.r_[np.arange(sites), rng.integers(0, sites, n - sites)]
    y = (rng.random(n) < 0.35).astype(int)
    p = 1 / (1 + np.exp(-(1.5 * y - 0.8 + rng.normal(0, 1, n))))
    y2 = (rng.random(n) < 0.3).astype(int)
    p2 = 1 / (1 + np.exp(-(1.2 * y2 - 0.9 + rng.normal(0, 1, n))))
    return pd.DataFrame({
        "sample_id": [f"s{i}" for i in range(n)], "y": y, "p": p.round(4), "z": y2,
        "pz": p2.round(4), "site": [f"site{k:02d}" for k in site],
        "sex": rng.choice(["female", "male"], n), "split": rng.choice(["val", "test"], n,
                                                                       p=[0.3, 0.7])})


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """One label, 60 sites (more than TOP_GROUPS), saved with the Markdown and LaTeX tables."""
    df = _frame()
    df.loc[df["site"] == "site07", "site"] = "<b>x</b> & =SUM(A1)"
    df = df[df["split"] == "test"].reset_index(drop=True)
    ev = fairfoundry.evaluate(df, label="y", score="p", sensitive=["site"], threshold=0.5,
                              split_col=None, headline_permutations=0)
    out = ev.save(tmp_path_factory.mktemp("ev") / "out", tables=("md", "tex"))
    return ev, out


def test_many_groups_are_capped_in_figures_and_complete_in_tables(many):
    ev, out = many
    html = (out / "report.html").read_text()
    text = html_lib.unescape(html)
    assert f"The {TOP_GROUPS:,} largest of 60 groups are drawn" in text
    assert f"The {TOP_CURVE_GROUPS:,} largest of 60 groups are drawn" in text
    # every group is in the per-group table, with a thousand-separated overall count
    assert all(f">site{k:02d}<" in html for k in range(60) if k != 7)
    assert f">{ev.info['n_report_rows']:,}<" in html and "," in f"{ev.info['n_report_rows']:,}"


def test_user_text_is_escaped_in_html_and_neutralised_in_csv(many):
    ev, out = many
    html = (out / "report.html").read_text()
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt; &amp; =SUM(A1)" in html
    csv = pd.read_csv(out / "evaluation.csv")
    assert "'<b>x</b> & =SUM(A1)" not in set(csv["group"])  # starts with '<', not a formula
    df = _frame(n=400, sites=3)
    df.loc[df["site"] == "site01", "site"] = "=HYPERLINK(\"http://x\")"
    ev2 = fairfoundry.evaluate(df, label="y", score="p", sensitive="site", threshold=0.5,
                               split_col=None, headline_permutations=0)
    path = ev2.to_csv(out.parent / "e2.csv")
    groups = set(pd.read_csv(path)["group"])
    assert "'=HYPERLINK(\"http://x\")" in groups and "=HYPERLINK(\"http://x\")" not in groups


def test_figures_are_written_as_png_and_svg_and_named_in_the_report(many):
    _, out = many
    figs = sorted((out / "figures").iterdir())
    stems = {p.stem for p in figs}
    assert {"01_site_metrics", "01_site_gaps", "01_site_roc", "01_site_calibration"} <= stems
    for stem in stems:
        png = (out / "figures" / f"{stem}.png").read_bytes()
        svg = (out / "figures" / f"{stem}.svg").read_text()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in svg[:2000]
    html = (out / "report.html").read_text()
    assert "figures/01_site_metrics.svg" in html
    # the embedded image is the PNG written to disk
    first = base64.b64decode(_IMG.findall(html)[0].split(",", 1)[1])
    assert first == (out / "figures" / "01_site_metrics.png").read_bytes()


def test_markdown_and_latex_tables(many):
    ev, out = many
    md = (out / "tables.md").read_text()
    assert md == ev.to_markdown()
    assert "| label | attribute | group | n | AUC | TPR | FPR | PPV | ECE |" in md
    assert re.search(r"\| y \| site \| site00 \| \d+ \| 0\.\d{3} \|", md)
    assert r"\<b\>x\</b\> & =SUM(A1)" in md  # user text escaped for Markdown
    assert "| y | site | AUC gap" not in md and "AUC gap" in md
    tex = (out / "tables.tex").read_text()
    assert tex == ev.to_latex()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\begin{tabular}{lllrrrrrr}" in tex
    assert r"\textless{}b\textgreater{}x\textless{}/b\textgreater{} \& =SUM(A1)" in tex
    lines = [x for x in tex.splitlines() if x.startswith("y & site & site00 &")]
    assert len(lines) == 1 and lines[0].count("&") == 8


def test_cli_writes_tables_and_refuses_an_unknown_format(tmp_path, cli):
    df = _frame(n=1500, sites=4)
    df.to_csv(tmp_path / "preds.csv", index=False)
    r = cli("evaluate", tmp_path / "preds.csv", "--label", "y", "--score", "p", "--sensitive",
            "sex", "--threshold", "0.5", "--tables", "md,tex", "--out", tmp_path / "o")
    assert r.code == 0, r
    assert (tmp_path / "o" / "tables.md").exists() and (tmp_path / "o" / "tables.tex").exists()
    assert (tmp_path / "o" / "figures" / "01_sex_metrics.svg").exists()
    r = cli("evaluate", tmp_path / "preds.csv", "--label", "y", "--score", "p", "--sensitive",
            "sex", "--threshold", "0.5", "--tables", "docx", "--out", tmp_path / "o2")
    assert r.code == 2 and "--tables 'docx': unknown table format" in r.err
    assert not (tmp_path / "o2").exists()


@pytest.fixture(scope="module")
def multi():
    df = _frame(n=2400, sites=3)
    return fairfoundry.evaluate(df, label=["y", "z"], score=["p", "pz"], sensitive=["sex", "site"],
                                intersect=[["sex", "site"]], bootstrap=20, seed=1,
                                headline_permutations=0)


def test_per_label_tables_and_notebook_view(multi):
    html = html_lib.unescape(evaluation_report_html(multi))
    for lab in ("macro", "y", "z"):
        assert f"<summary>Label {lab}" in html
    assert "<details open><summary>Label macro (mean over labels)</summary>" in html
    nb = multi._repr_html_()
    assert "Findings, in words" in nb and "Summary of gaps" in nb and "<img" not in nb
    assert "Per-group metrics, label macro" in nb


def test_a_ci_that_excludes_its_estimate_is_warned_for_every_metric(multi):
    warned = " ".join(multi.warnings)
    for table in (multi.by_group, multi.summary_table):
        t = table[np.isfinite(table["estimate"]) & np.isfinite(table["ci_low"])]
        off = t[(t["estimate"] < t["ci_low"] - 0) | (t["estimate"] > t["ci_high"])]
        assert len(off) > 0 or table is multi.by_group
        for metric in set(off["metric"]):
            assert re.search(rf"(^|[ (:]){re.escape(metric)}[ :(]", warned), metric


def test_reliability_diagram_shows_the_bin_counts(multi):
    from fairfoundry.report._evaluation import _curve_panels

    fig = _curve_panels(multi, "sex", "calibration", ["female", "male"])
    twin = [ax for ax in fig.axes if ax.get_ylabel().startswith("rows per bin")]
    assert len(twin) == 2  # one per label panel
    heights = [int(b.get_height()) for b in twin[0].patches]
    s = multi.curves["s::y"].to_numpy()
    assert heights == np.bincount(np.clip((s * 10).astype(int), 0, 9), minlength=10).tolist()
    assert {t.get_text() for t in twin[0].texts} >= {str(h) for h in heights if 0 < h < 1000}


def test_undefined_auc_warnings_are_one_line_per_attribute_above_ten_groups():
    df = _frame(n=800, sites=300, seed=4)
    ev = fairfoundry.evaluate(df, label="y", score="p", sensitive="site", threshold=0.5,
                              split_col=None, headline_permutations=0)
    lines = [w for w in ev.warnings if w.startswith("AUC undefined")]
    assert len(lines) == 1 and re.match(r"AUC undefined for [\d,]+ groups of site \(group has no",
                                        lines[0])
