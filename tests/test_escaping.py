"""Outputs escape what users supply: Markdown (datasheet) and CSV cells (formula injection)."""

import pandas as pd

from fairfoundry._io import md_escape, neutralise_formulas, write_table_atomic


def test_markdown_escaping_and_csv_formula_neutralising(tmp_path):
    assert md_escape("a *b* [c](d) <i>|</i>\nnext") == "a \\*b\\* \\[c\\](d) \\<i\\>\\|\\</i\\> next"
    frame = pd.DataFrame({"group": ["=HYPERLINK(\"x\")", "+1+1", "-0.5", "@SUM(A1)", "female"],
                          "n": [1, 2, 3, 4, 5]})
    out = neutralise_formulas(frame)
    assert out["group"].tolist() == ["'=HYPERLINK(\"x\")", "'+1+1", "-0.5", "'@SUM(A1)", "female"]
    write_table_atomic(tmp_path / "r.csv", frame, report=True)
    assert "'=HYPERLINK" in (tmp_path / "r.csv").read_text()
    write_table_atomic(tmp_path / "data.csv", frame)  # data files round-trip unchanged
    assert pd.read_csv(tmp_path / "data.csv")["group"].tolist() == frame["group"].tolist()


def test_the_datasheet_and_groups_csv_escape_user_values(cli, tmp_path):
    n = 40
    m = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)],
                      "site": ["=cmd|' /C calc'!A0", "*bold* [link](x)"] * (n // 2), "sex": ["female", "male"] * (n // 2)})
    m.to_csv(tmp_path / "m.csv", index=False)
    r = cli("audit-data", "--manifest", tmp_path / "m.csv", "--sensitive", "site,sex", "--out", tmp_path / "o")
    assert r.code == 0, r
    sheet = (tmp_path / "o" / "datasheet.md").read_text()
    assert "\\*bold\\* \\[link\\](x)" in sheet and "[link](x)" not in sheet.replace("\\[link\\](x)", "")
    groups = (tmp_path / "o" / "groups.csv").read_text()
    assert "'=cmd|" in groups and "\n=cmd" not in groups and ",=cmd" not in groups
