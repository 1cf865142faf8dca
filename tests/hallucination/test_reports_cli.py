"""``fairfoundry evaluate-reports``: outputs, escaping, reference labels and bad input (exit 2)."""

import json
import re

import numpy as np
import pandas as pd
import pytest


def _reports(n=80, seed=0):
    rng = np.random.default_rng(seed)
    gen, ref = [], []
    for i in range(n):
        ref.append("No pleural effusion. No pneumothorax.")
        gen.append("Pleural effusion. No pneumothorax." if i % 4 == 0 else
                   "No effusion or pneumothorax.")
    return pd.DataFrame({"study_id": [f"st{i}" for i in range(n)],
                         "patient_id": [f"p{i // 2}" for i in range(n)],
                         "sex": rng.choice(["female", "male"], n),
                         "age": rng.integers(20, 90, n), "generated": gen, "reference": ref})


@pytest.fixture
def reports(tmp_path):
    path = tmp_path / "reports.csv"
    _reports().to_csv(path, index=False)
    return path


def _run(cli, path, out, *extra):
    return cli("evaluate-reports", path, "--generated", "generated", "--reference", "reference",
               "--sensitive", "sex", "--out", out, *extra)


def test_writes_csv_json_per_sample_and_html(cli, reports, tmp_path):
    out = tmp_path / "rep"
    r = _run(cli, reports, out, "--sensitive", "age", "--bins", "age=60", "--intersect",
             "sex,age", "--cluster", "patient_id", "--bootstrap", "100", "--permutations", "50")
    assert r.code == 0, r
    assert "25.0% hallucinate" in r.out
    table = pd.read_csv(out / "evaluation.csv")
    assert list(table.columns) == ["label", "attribute", "group", "metric", "estimate",
                                   "ci_low", "ci_high", "n", "reason"]
    assert set(table["attribute"]) == {"sex", "age", "sex&age"}
    h = table.query("metric == 'hallucination' and group == 'overall'")
    assert (h["estimate"] == 0.25).all()
    assert (table.query("metric == 'n_contradicted' and group == 'overall'")["estimate"]
            == 0.25).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["cluster"] == "patient_id" and summary["seed"] == 0
    assert any(s["metric"] == "hallucination_gap" for s in summary["summaries"])
    per = pd.read_csv(out / "per_sample.csv")
    assert per["study_id"].tolist()[:2] == ["st0", "st1"]
    assert per["gen:Pleural Effusion"][0] == 1 and per["ref:Pleural Effusion"][0] == 0
    html = (out / "report.html").read_text()
    assert "Hallucination in generated reports" in html and "hallucination_gap" in html


def test_user_text_is_escaped_in_html_and_csv(cli, tmp_path):
    df = _reports(n=8)
    df["sex"] = ["<script>alert(1)</script>"] * 4 + ["=HYPERLINK(1)"] * 4
    df.to_csv(tmp_path / "r.csv", index=False)
    out = tmp_path / "rep"
    assert _run(cli, tmp_path / "r.csv", out).code == 0
    html = (out / "report.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "'=HYPERLINK(1)" in (out / "evaluation.csv").read_text()


def test_reference_labels_instead_of_reference_reports(cli, tmp_path):
    df = _reports(n=8)
    from fairfoundry.hallucination import FINDINGS

    for f in FINDINGS:
        df[f"ref_{f}"] = np.nan
    df["ref_Pleural Effusion"] = 0
    df.to_csv(tmp_path / "r.csv", index=False)
    out = tmp_path / "rep"
    r = cli("evaluate-reports", tmp_path / "r.csv", "--generated", "generated", "--reference",
            "ref_", "--reference-labels", "--sensitive", "sex", "--out", out)
    assert r.code == 0, r
    t = pd.read_csv(out / "evaluation.csv")
    assert t.query("metric == 'n_contradicted' and group == 'overall'")["estimate"].iloc[0] == 0.25


@pytest.mark.parametrize("change, message", [
    (lambda d: d.assign(generated=d["generated"].where(d.index != 2, "")),
     r"generated report column 'generated': row 3 \(study_id 'st2'\) is empty"),
    (lambda d: d.assign(generated=d["generated"].where(d.index != 2, "12345")),
     r"row 3 \(study_id 'st2'\) is not text \('12345'\)"),
    (lambda d: d.assign(reference=d["reference"].where(d.index != 4, None)),
     r"reference report column 'reference': row 5 \(study_id 'st4'\) has no reference"),
    (lambda d: d.rename(columns={"reference": "ref"}), r"--reference column 'reference' not found"),
    (lambda d: d.rename(columns={"sex": "gender"}), r"sensitive column 'sex' not found"),
])
def test_bad_input_exits_2_naming_the_row_and_writes_nothing(cli, tmp_path, change, message):
    df = change(_reports(n=10))
    df.to_csv(tmp_path / "bad.csv", index=False)
    out = tmp_path / "rep"
    r = _run(cli, tmp_path / "bad.csv", out)
    assert r.code == 2, r
    assert re.search(message, r.err), r.err
    assert "Traceback" not in r.err
    assert not out.exists()


def test_refuses_to_overwrite_without_the_flag(cli, reports, tmp_path):
    out = tmp_path / "rep"
    assert _run(cli, reports, out).code == 0
    before = (out / "evaluation.csv").read_text()
    r = _run(cli, reports, out, "--bootstrap", "10")
    assert r.code == 2 and "--overwrite" in r.err
    assert (out / "evaluation.csv").read_text() == before
    assert _run(cli, reports, out, "--overwrite").code == 0


def test_help_shows_examples_for_both_commands(cli):
    for cmd, example in (("evaluate-reports", "fairfoundry evaluate-reports reports.csv"),
                         ("evaluate-seg", "fairfoundry evaluate-seg masks.csv")):
        r = cli(cmd, "--help")
        assert r.code == 0 and example in " ".join(r.out.split()), r


@pytest.mark.parametrize("extra, message", [
    (["--severity", "Pneumothorax=high"], "--severity Pneumothorax=high: the weight must be a number"),
    (["--severity", "Pneumothrax=2"], "unknown finding 'Pneumothrax'"),
    (["--finding", "Effusion"], "unknown finding 'Effusion'"),
    (["--reference-group", "sex=other"], "--reference-group sex=other: no such group"),
    (["--bins", "age=abc"], "--bins"),
])
def test_bad_options_exit_2(cli, reports, tmp_path, extra, message):
    out = tmp_path / "rep"
    r = _run(cli, reports, out, *extra)
    assert r.code == 2 and message in r.err, r
    assert not out.exists()


def test_reference_group_sets_vs_reference(cli, reports, tmp_path):
    out = tmp_path / "rep"
    assert _run(cli, reports, out, "--reference-group", "sex=female").code == 0
    s = json.loads((out / "summary.json").read_text())["summaries"]
    row = next(x for x in s if x["metric"] == "hallucination_vs_reference")
    assert row["detail"] == "male vs female"
