"""Rough edges a new user hits (issue 9, item 7): each is exit 2 with one message, or a warning."""

import json
import logging

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def manifest(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    m = pd.DataFrame({"sample_id": [f"s{i:03d}" for i in range(n)],
                      "patient_id": [f"p{i // 2}" for i in range(n)],
                      "sex": rng.choice(["female", "male"], n), "age": rng.uniform(20, 90, n).round(),
                      "country": rng.choice(["USA", "BRA"], n), "label": rng.integers(0, 2, n)})
    m.to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv"


def _audit(cli, manifest, out, *extra):
    return cli("audit-data", "--manifest", manifest, "--out", out, *extra)


@pytest.mark.parametrize("name, content, message", [
    ("ref.csv", "attribute,group,share\nsex,female,half\nsex,male,0.5\n", "share 'half' is not a number"),
    ("ref.json", '{"sex": {"female": 0.5, "male": }}', "is not valid JSON"),
    ("ref.yaml", "sex: !!python/object/apply:os.system ['echo hi']\n", "is not valid YAML"),
    ("ref.yaml", "sex: {female: lots, male: 0.5}\n", "share 'lots' is not a number"),
])
def test_bad_reference_population_is_exit_2_naming_the_file(cli, manifest, tmp_path, name, content,
                                                            message):
    (tmp_path / name).write_text(content)
    r = _audit(cli, manifest, tmp_path / "o", "--reference", tmp_path / name)
    assert r.code == 2, r
    assert message in r.err and name in r.err and "internal error" not in r.err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_reference_shares_not_summing_to_one_warn(cli, manifest, tmp_path):
    (tmp_path / "ref.csv").write_text("attribute,group,share\nsex,female,51\nsex,male,49\n")
    r = _audit(cli, manifest, tmp_path / "o", "--reference", tmp_path / "ref.csv")
    assert r.code == 0, r
    audit = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert any("sum to 100, not 1: rescaled" in w for w in audit["warnings"])


def test_a_header_naming_a_column_twice_is_an_error(cli, tmp_path):
    (tmp_path / "dup.csv").write_text("sample_id,sex,sex\na,female,male\nb,male,male\n")
    r = _audit(cli, tmp_path / "dup.csv", tmp_path / "o")
    assert r.code == 2 and "names column 'sex' twice (columns 2 and 3)" in r.err, r
    (tmp_path / "p.csv").write_text("y,p,p\n0,0.1,0.2\n1,0.9,0.8\n")
    r = cli("evaluate", tmp_path / "p.csv", "--label", "y", "--sensitive", "p", "--out", tmp_path / "e")
    assert r.code == 2 and "names column 'p' twice" in r.err, r


def test_implausible_ages_and_country_names_warn(cli, manifest, tmp_path, caplog):
    m = pd.read_csv(manifest)
    m.loc[0, "age"] = 150
    m.loc[1, "age"] = -3
    m.loc[2, "country"] = "US"
    m.loc[3, "country"] = "Atlantis"
    m.to_csv(tmp_path / "odd.csv", index=False)
    with caplog.at_level(logging.WARNING):
        r = _audit(cli, tmp_path / "odd.csv", tmp_path / "o")
    assert r.code == 0, r
    text = caplog.text
    assert "2 age(s) outside 0-120 years (first at row 1: 150) are treated as unknown" in text
    assert "'US' -> USA" in text and "'Atlantis'" in text
    audit = json.loads((tmp_path / "o" / "audit.json").read_text())
    geo = {(g["level"], g["group"]): g["n"] for g in audit["geography"]}
    assert ("country", "US") not in geo and ("country", "Atlantis") in geo
    miss = {x["attribute"]: x for x in audit["missingness"]}
    assert miss["age"]["n_unknown"] in (2, "<10")


def test_fit_names_rows_1_based_and_a_text_npy_is_not_pickle(cli, tmp_path):
    n = 40
    m = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "y": np.arange(n) % 2,
                      "sex": ["F", "M"] * (n // 2), "split": ["train"] * 20 + ["val"] * 10 + ["test"] * 10})
    m.loc[5, "y"] = 3  # data row 6
    m.to_csv(tmp_path / "m.csv", index=False)
    np.save(tmp_path / "e.npy", np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32))
    r = cli("fit", "--embeddings", tmp_path / "e.npy", "--manifest", tmp_path / "m.csv", "--label", "y",
            "--sensitive", "sex", "--out", tmp_path / "o")
    assert r.code == 2 and "value 3 in row 6" in r.err and "np." not in r.err, r
    m.loc[5, "y"] = 1
    m.to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "text.npy").write_text("0.1,0.2\n0.3,0.4\n")
    r = cli("fit", "--embeddings", tmp_path / "text.npy", "--manifest", tmp_path / "m.csv", "--label", "y",
            "--sensitive", "sex", "--out", tmp_path / "o2")
    assert r.code == 2 and "is not a NumPy .npy array file" in r.err and "pickle" not in r.err, r


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(cli, manifest, tmp_path):
    stale = tmp_path / ".o.staging-999999-xyz"  # pid 999999 is not running
    stale.mkdir()
    (stale / "audit.json").write_text("partial")
    r = _audit(cli, manifest, tmp_path / "o")
    assert r.code == 0 and not stale.exists(), r


def test_long_jobs_report_progress_off_a_terminal(capsys, monkeypatch):
    from fairfoundry.cli._common import rich_progress

    monkeypatch.setenv("FAIRFOUNDRY_PROGRESS_INTERVAL", "0")
    with rich_progress("embedding", 4) as advance:
        advance(1)
        advance(3)
    err = capsys.readouterr().err
    assert "embedding: 1/4 (25%)" in err and "/s, ETA" in err and "embedding: 4/4 (100%)" in err
    monkeypatch.setenv("FAIRFOUNDRY_PROGRESS_INTERVAL", "30")
    with rich_progress("quick", 2) as advance:
        advance(2)
    assert capsys.readouterr().err == ""  # short jobs stay quiet


def test_every_long_command_reports_through_the_one_progress_helper():
    """No CLI module draws its own bar: all go through rich_progress, which also prints plain
    lines off a terminal (pretrain, distill, fit, embed, curate, monitor, synth, ...)."""
    from pathlib import Path

    import fairfoundry.cli as cli_pkg

    folder = Path(cli_pkg.__file__).parent
    users = []
    for f in sorted(folder.glob("_*.py")):
        text = f.read_text()
        if f.name != "_common.py":
            assert "rich.progress" not in text and "Progress(" not in text, f.name
        if "rich_progress(" in text:
            users.append(f.name)
    for name in ("_adapt.py", "_models.py", "_pretrain.py", "_curate.py", "_monitor.py",
                 "_synth.py", "_data.py"):
        assert name in users, name


def test_monitor_replay_prints_a_plain_progress_line_off_a_terminal(cli, tmp_path, monkeypatch):
    n = 40
    pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "time": range(n),
                  "patient_id": [f"p{i // 2}" for i in range(n)], "sex": ["F", "M"] * (n // 2),
                  "score_E": [0.1 + 0.02 * i for i in range(n)], "y_E": [i % 2 for i in range(n)],
                  "label_time": [i + 5 for i in range(n)]}).to_csv(tmp_path / "s.csv", index=False)
    monkeypatch.setenv("FAIRFOUNDRY_PROGRESS_INTERVAL", "0")
    r = cli("monitor", "replay", tmp_path / "s.csv", "--store", tmp_path / "m.db", "--batch", "10")
    assert r.code == 0, r
    lines = [ln for ln in r.err.splitlines() if ln.startswith("replaying: ")]
    assert lines and "/s" in lines[-1] and "elapsed" in lines[-1], r.err
