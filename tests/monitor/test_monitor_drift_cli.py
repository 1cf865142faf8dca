"""``fairfoundry monitor drift`` / ``evaluate --embeddings``: per-group embedding drift from the
command line, with its interval; bad embeddings exit 2 naming the problem; progress lines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def _setup(tmp_path, n=1200, shift_from=800):
    rng = np.random.default_rng(11)
    grp = np.where(np.arange(n) % 2, "A", "B")
    stream = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "time": np.arange(n),
                           "patient_id": [f"p{i}" for i in range(n)], "grp": grp,
                           "score_E": rng.uniform(size=n)})
    stream.to_csv(tmp_path / "stream.csv", index=False)
    emb = rng.normal(size=(n, 6))
    emb[(np.arange(n) >= shift_from) & (grp == "B"), 0] += 1.0  # group B's images change
    np.save(tmp_path / "emb.npy", emb)
    (tmp_path / "c.yaml").write_text(
        "windows: {size: 400}\nalerts:\n  - {name: img, metric: embedding_drift, op: '>', "
        "threshold: 0.5, attribute: grp, min_n: 100}\n")
    return tmp_path / "stream.csv", tmp_path / "emb.npy", tmp_path / "c.yaml"


def test_drift_command_flags_the_shifted_group_only(tmp_path, cli):
    stream, emb, cfg = _setup(tmp_path)
    db = tmp_path / "m.db"
    assert cli("monitor", "replay", stream, "--store", db).code == 0
    res = cli("monitor", "drift", "--store", db, "--embeddings", emb, "--config", cfg,
              "--out", tmp_path / "d")
    assert res.code == 0, res
    line = [ln for ln in res.out.splitlines() if ln.strip().startswith("window 2:")]
    assert line and "images: grp=B AUC" in line[0] and "grp=A" not in line[0], res.out
    assert not [ln for ln in res.out.splitlines() if ln.strip().startswith("window 1:")
                and "images" in ln], res.out
    table = pd.read_csv(tmp_path / "d" / "drift.csv")
    e = table[(table["metric"] == "embedding_auc") & (table["attribute"] == "grp")]
    b2 = e[(e["window"] == 2) & (e["group"] == "B")].iloc[0]
    assert b2["estimate"] > 0.7 and 0.5 < b2["ci_low"] < b2["estimate"] < b2["ci_high"]
    a2 = e[(e["window"] == 2) & (e["group"] == "A")].iloc[0]
    assert a2["ci_low"] < 0.55  # no evidence of drift in group A
    assert (tmp_path / "d" / "drift.json").exists()
    assert set(table["kind"]) == {"drift", "mix"}
    # again without --overwrite: refused, nothing changed
    again = cli("monitor", "drift", "--store", db, "--embeddings", emb, "--out", tmp_path / "d")
    assert again.code == 2 and "--overwrite" in again.err
    # evaluate --embeddings stores the rows: the alert rule on embedding drift fires for B only
    ev = cli("monitor", "evaluate", "--store", db, "--config", cfg, "--embeddings", emb)
    assert ev.code == 0 and "1 alert(s)" in ev.out and "grp=B" in ev.out, ev
    rep = cli("monitor", "report", "--store", db, "--out", tmp_path / "r")
    assert rep.code == 0, rep
    html = (tmp_path / "r" / "report.html").read_text()
    assert "images (embedding drift, all labels)" in html and "embedding_auc by grp" in html


@pytest.mark.parametrize("bad, message", [
    ("short", "1199 rows for 1200 predictions"), ("nan", "prediction 5 (sample_id 's5')"),
    ("missing", "not found"), ("txt", "not a directory or a .npy"),
])
def test_bad_embeddings_exit_2_naming_the_problem(tmp_path, cli, bad, message):
    stream, emb, _ = _setup(tmp_path)
    db = tmp_path / "m.db"
    assert cli("monitor", "replay", stream, "--store", db).code == 0
    arr = np.load(emb)
    if bad == "short":
        np.save(emb, arr[:-1])
    elif bad == "nan":
        arr[5, 2] = np.nan
        np.save(emb, arr)
    elif bad == "missing":
        emb = tmp_path / "nope.npy"
    else:
        emb = tmp_path / "emb.txt"
        emb.write_text("1 2 3\n")
    res = cli("monitor", "drift", "--store", db, "--embeddings", emb, "--out", tmp_path / "o")
    assert res.code == 2 and message in res.err and "Traceback" not in res.err, res
    assert not (tmp_path / "o").exists()


def test_embeddings_directory_aligned_by_sample_id(tmp_path):
    from fairfoundry._errors import FairfoundryError
    from fairfoundry.monitor import read_store_embeddings

    d = tmp_path / "embed"
    d.mkdir()
    arr = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(d / "embeddings.npy", arr)
    (d / "sample_ids.txt").write_text("a\nb\nc\nd\n")
    (d / "embeddings.json").write_text('{"n": 4}')
    out = read_store_embeddings(d, ["c", "a"])
    assert out.tolist() == [arr[2].tolist(), arr[0].tolist()]
    with pytest.raises(FairfoundryError, match="1 prediction\\(s\\) have no embedding, first "
                                               "prediction 1 \\(sample_id 'z'\\)"):
        read_store_embeddings(d, ["a", "z"])


def test_long_replay_prints_plain_progress_lines_while_waiting(tmp_path, cli, monkeypatch):
    # stderr is not a terminal under the test runner: plain lines (step, rate, ETA); a slow
    # --speed replay reports while it sleeps between events, not only after each batch
    monkeypatch.setenv("FAIRFOUNDRY_PROGRESS_INTERVAL", "0.2")
    frame = pd.DataFrame({"sample_id": ["a", "b", "c"], "time": [0.0, 0.1, 1.2],
                          "grp": ["A", "B", "A"], "score_E": [0.2, 0.4, 0.6]})
    frame.to_csv(tmp_path / "s.csv", index=False)
    res = cli("monitor", "replay", tmp_path / "s.csv", "--store", tmp_path / "m.db",
              "--speed", "1", "--batch", "1")
    assert res.code == 0, res
    lines = [ln for ln in res.err.splitlines() if ln.startswith("replaying:")]
    assert len(lines) >= 3, res.err  # ~1.1 s of waiting: several lines, not one at the end
    assert "/3 (" in lines[0] and "/s" in lines[0] and "ETA" in lines[0]
    monkeypatch.setenv("FAIRFOUNDRY_PROGRESS_INTERVAL", "0")
    (tmp_path / "c.yaml").write_text("windows: {size: 1}\n")
    ev = cli("monitor", "evaluate", "--store", tmp_path / "m.db", "--config", tmp_path / "c.yaml")
    assert ev.code == 0, ev
    steps = [ln for ln in ev.err.splitlines() if ln.startswith("evaluating windows:")]
    assert steps and steps[0].startswith("evaluating windows: 1/3 (33%)"), ev.err


def test_docs_drift_example_runs_as_written(tmp_path, monkeypatch, cli):
    import re
    import shlex
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "monitor.md").read_text()
    py = re.findall(r"```python\n(.*?)```", doc, re.S)
    sh = re.findall(r"```shell\n(.*?)```", doc, re.S)
    block = next(b for b in py if "drift_stream.csv" in b)
    lines = next(b for b in sh if "monitor drift" in b).strip().splitlines()
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/monitor.md", "exec"), {})
    outs = []
    for line in lines:
        args = shlex.split(line)
        assert args[0] == "fairfoundry"
        res = cli(*args[1:])
        assert res.code == 0, res
        outs.append(res.out)
    w = {ln.split(":")[0].strip(): ln for ln in outs[-1].splitlines() if "window" in ln}
    assert w["window 2"].strip() == "window 2: images: grp=B AUC 0.75 [0.70, 0.80]", outs[-1]
    assert "`window 2: images: grp=B AUC 0.75 [0.70, 0.80]`" in doc
    assert "grp=A" not in w["window 2"] and "window 1" not in w
    assert (tmp_path / "drift-out" / "drift.csv").exists()
