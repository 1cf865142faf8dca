"""Benchmark grids: cells through the fit pipeline, content-addressed resume, DuckDB store, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("duckdb")

from fairfoundry._errors import FairfoundryError
from fairfoundry.bench import (
    ResultsStore,
    grid_cells,
    leaderboard,
    load_grid,
    paired_differences,
    run_grid,
)
from fairfoundry.cli import main


def _data(tmp: Path, n: int = 480, d: int = 8, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    patients = np.arange(n // 2).repeat(2)
    sex = np.where(rng.random(n // 2) < 0.5, "female", "male").repeat(2)
    age = rng.uniform(20, 90, n // 2).repeat(2)
    X = rng.normal(size=(n, d)).astype("float32")
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.8, size=n) > 0).astype(int)
    u = rng.random(n // 2).repeat(2)
    split = np.where(u < 0.5, "train", np.where(u < 0.75, "val", "test"))
    man = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "patient_id": patients.astype(str),
                        "split": split, "y": y, "sex": sex, "age": age})
    man.to_csv(tmp / "manifest.csv", index=False)
    np.save(tmp / "emb.npy", X)
    return tmp / "manifest.csv", tmp / "emb.npy"


def _grid(tmp: Path, **extra) -> Path:
    man, emb = _data(tmp)
    grid = {"name": "toy", "datasets": [{"name": "toy", "manifest": man.name, "label": "y",
                                         "sensitive": ["sex", "age"], "bins": {"age": [40, 60]},
                                         "embeddings": {"precomputed": emb.name}}],
            "encoders": ["precomputed"], "adaptations": ["probe"], "mitigations": ["erm", "reweigh"],
            "label_fractions": [1.0, 0.5], "seeds": [0, 1], "fit": {"epochs": 5, "bootstrap": 20}}
    grid.update(extra)
    path = tmp / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def test_grid_runs_every_cell_and_resume_skips_them(tmp_path):
    path = _grid(tmp_path)
    spec = load_grid(path)
    cells = grid_cells(spec)
    assert len(cells) == 2 * 2 * 2 and len({c.cell_id for c in cells}) == 8
    summary = run_grid(spec, tmp_path / "out")
    assert summary["done"] == 8 and not summary["failed"]
    with ResultsStore(tmp_path / "out" / "results.duckdb", read_only=True) as store:
        first = store.results()
        st = store.cells()
    assert set(st["status"]) == {"done"}
    assert set(first["mitigation"]) == {"erm", "reweigh"} and set(first["label_fraction"]) == {0.5, 1.0}
    # the half-label cells trained on fewer rows: their run's predictions mark the rest unused
    half = next(c for c in cells if c.label_fraction == 0.5)
    preds = pd.read_parquet(tmp_path / "out" / "cells" / half.cell_id / "run" / "predictions.parquet")
    assert (preds["split"] == "unused").sum() > 0
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "cells").glob("*/rows.parquet")}
    again = run_grid(spec, tmp_path / "out", resume=True)
    assert again["skipped"] == 8 and again["done"] == 0
    assert mtimes == {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "cells").glob("*/rows.parquet")}
    with ResultsStore(tmp_path / "out" / "results.duckdb", read_only=True) as store:
        pd.testing.assert_frame_equal(store.results(), first)
    board = leaderboard(first, metric="auc")
    assert len(board) == 4 and (board["n_seeds"] == 2).all() and (board["ci_low"] <= board["estimate"]).all()
    diffs = paired_differences(first, metric="auc")
    assert set(diffs["mitigation"]) == {"reweigh"} and (diffs["n_pairs"] == 2).all()
    with pytest.raises(FairfoundryError, match="not empty"):
        run_grid(spec, tmp_path / "out")


def test_changed_input_makes_new_cells(tmp_path):
    path = _grid(tmp_path, mitigations=["erm"], label_fractions=[1.0], seeds=[0])
    before = {c.cell_id for c in grid_cells(load_grid(path))}
    man = pd.read_csv(tmp_path / "manifest.csv")
    man.loc[0, "y"] = 1 - man.loc[0, "y"]
    man.to_csv(tmp_path / "manifest.csv", index=False)
    assert before.isdisjoint({c.cell_id for c in grid_cells(load_grid(path))})


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path):
    path = _grid(tmp_path, mitigations=["erm", {"name": "groupdro", "args": {"no_such_arg": 1}}],
                 label_fractions=[1.0], seeds=[0])
    summary = run_grid(load_grid(path), tmp_path / "out")
    assert summary["done"] == 1 and len(summary["failed"]) == 1
    assert "no_such_arg" in summary["failed"][0]["error"]
    with ResultsStore(tmp_path / "out" / "results.duckdb", read_only=True) as store:
        st = store.cells()
        assert sorted(st["status"]) == ["done", "failed"]
        assert store.query("SELECT count(*) AS n FROM results WHERE mitigation LIKE 'groupdro%'")["n"][0] == 0


@pytest.mark.parametrize(("change", "match"), [
    ({"seeds": []}, "at least one value"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"mitigations": ["no-such-method"]}, "unknown mitigation"),
    ({"fit": {"epochz": 3}}, "epochz"),
    ({"label_fractions": [0.0]}, r"\(0, 1\]"),
])
def test_bad_grids_exit_2_with_one_message(tmp_path, capsys, change, match):
    path = _grid(tmp_path, **change)
    assert main(["bench", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) <= 2
    assert pd.Series([err]).str.contains(match).iloc[0], err
    assert not (tmp_path / "out").exists()


def test_cli_run_and_results(tmp_path, capsys):
    path = _grid(tmp_path, label_fractions=[1.0], seeds=[0, 1])
    assert main(["bench", "run", str(path), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert main(["bench", "results", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "reweigh" in out and "paired difference to ERM" in out
    assert main(["bench", "results", str(tmp_path / "out"), "--metric", "auc_gap", "--sensitive", "sex",
                 "--summary", "--export", str(tmp_path / "gap.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "gap.csv")) == 2
    assert main(["bench", "results", str(tmp_path / "out"), "--sql",
                 "SELECT mitigation, count(*) AS n FROM cells GROUP BY mitigation ORDER BY mitigation"]) == 0
    assert "erm" in capsys.readouterr().out
    assert main(["bench", "results", str(tmp_path / "out"), "--sql", "SELEKT 1"]) == 2


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_store(tmp_path):
    grid = _grid(tmp_path, mitigations=["erm", "reweigh", "groupdro"], label_fractions=[1.0, 0.5], seeds=[0, 1])
    assert len(grid_cells(load_grid(grid))) == 12
    run_grid(load_grid(grid), tmp_path / "ref")
    with ResultsStore(tmp_path / "ref" / "results.duckdb", read_only=True) as store:
        reference = store.results().drop(columns=[])
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from fairfoundry.cli import main; sys.exit(main(sys.argv[1:]))",
                             "bench", "run", str(grid), "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(out.glob("cells/*/rows.parquet"))) < 4:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/rows.parquet")}
    assert 4 <= len(finished) < 12
    assert main(["bench", "run", str(grid), "--out", str(out), "--resume"]) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # no finished cell recomputed
    assert not list(out.glob("cells/*/.staging-cell-*"))
    with ResultsStore(out / "results.duckdb", read_only=True) as store:
        pd.testing.assert_frame_equal(store.results(), reference)


def test_ray_executor_gives_the_local_store(tmp_path):
    pytest.importorskip("ray")
    grid = _grid(tmp_path, mitigations=["erm", "reweigh"], label_fractions=[1.0], seeds=[0, 1])
    run_grid(load_grid(grid), tmp_path / "local")
    summary = run_grid(load_grid(grid), tmp_path / "ray", executor="ray", num_cpus=2)
    assert summary["done"] == 4 and not summary["failed"]
    t = summary["timing"]
    assert t["executor"] == "ray" and t["startup_s"] > 0 and t["cells_s"] > 0
    # 4 cells on 2 CPU slots: Ray started workers once and reused them (no process per cell); each
    # cell held to the one CPU its task was granted, at the driver's priority (not Ray's niceness 15)
    assert 1 <= t["workers"] <= 2 and t["threads_per_cell"] == [1] and t["worker_niceness"] == [os.nice(0)]
    assert json.loads((tmp_path / "ray" / "summary.json").read_text())["timing"]["workers"] == t["workers"]
    with ResultsStore(tmp_path / "local" / "results.duckdb", read_only=True) as a, \
            ResultsStore(tmp_path / "ray" / "results.duckdb", read_only=True) as b:
        pd.testing.assert_frame_equal(a.results(), b.results())


def test_fine_tuning_adaptations_run_as_cells(tmp_path):
    """LoRA and full fine-tuning of a tiny random ViT on real NIH X-rays, as grid cells."""
    from fairfoundry.datasets import nih_images

    mp = nih_images()
    m = pd.read_csv(mp).head(48)
    m["path"] = [str(mp.parent / p) for p in m["path"]]
    m["split"] = np.array(["train", "val", "test"])[np.arange(48) % 3]
    m.to_csv(tmp_path / "m.csv", index=False)
    grid = {"datasets": [{"name": "nih48", "manifest": str(tmp_path / "m.csv"), "label": "No_Finding",
                          "sensitive": ["sex"]}],
            "encoders": ["timm:vit_tiny_patch16_224"],
            "adaptations": [{"kind": "lora", "lora_r": 2}, "full"], "seeds": [0],
            "fit": {"encoder_weights": "random", "encoder_kwargs": {"img_size": 32}, "epochs": 1, "batch_size": 16,
                    "bootstrap": 0, "lr": 1e-3, "probe_every": 1, "probe_bootstrap": 0}}
    summary = run_grid(grid, tmp_path / "out")
    assert summary["done"] == 2 and not summary["failed"], summary
    with ResultsStore(tmp_path / "out" / "results.duckdb", read_only=True) as store:
        cells = store.cells()
        curves = store.query("SELECT adaptation, step, metric FROM probe WHERE metric = 'worst_group_auc' "
                             "ORDER BY adaptation, step")
    assert sorted(cells["adaptation"]) == ["full", "lora-r2"]
    # the fairness probe's curve of each fine-tuning cell: the checkpoint step is a store axis
    assert set(curves["adaptation"]) == {"full", "lora-r2"}
    assert (curves.groupby("adaptation")["step"].nunique() >= 2).all(), curves
    lora = next(p for p in (tmp_path / "out" / "cells").glob("*/run") if (p / "adapter.safetensors").is_file())
    assert json.loads((lora / "head.json").read_text())["adaptation"] == "lora"
    # a LoRA cell is reproducible: its adapters' initialisation draws from the cell's seed, not from
    # whatever state the process's global RNG is in (another grid run, another cell before it)
    # (the bundled fairfoundry-tiny: its weights are loaded, nothing seeds the global RNG on the way)
    import torch

    tiny = {**grid, "encoders": ["fairfoundry-tiny"], "adaptations": [{"kind": "lora", "lora_r": 2}],
            "fit": {"epochs": 1, "batch_size": 16, "bootstrap": 0, "lr": 1e-3}}
    rows = []
    for i, seed in enumerate((1, 2)):
        torch.manual_seed(seed)
        assert run_grid(tiny, tmp_path / f"tiny{i}")["done"] == 1
        rows.append(pd.read_parquet(next((tmp_path / f"tiny{i}" / "cells").glob("*/rows.parquet"))))
    pd.testing.assert_frame_equal(rows[0], rows[1])


def test_cells_go_to_ray_longest_first_and_the_count_reads_no_input(tmp_path):
    from fairfoundry.bench._grid import _cell_cost

    path = _grid(tmp_path, adaptations=["probe", {"kind": "lora", "lora_r": 2}, "frozen", "full"],
                 mitigations=["erm"], label_fractions=[1.0, 0.5], seeds=[0])
    spec = load_grid(path)
    cells = grid_cells(spec)
    assert spec.n_cells == len(cells) == 8
    order = [(c.adaptation, c.label_fraction) for c in sorted(cells, key=_cell_cost, reverse=True)]
    assert order[:2] == [("lora-r2", 1.0), ("full", 1.0)]  # fine-tuning from images first, grid order among equals
    assert order[-2:] == [("linear-probe", 1.0), ("linear-probe", 0.5)]  # probes on cached embeddings last
    assert order.index(("frozen", 1.0)) < order.index(("full", 0.5))


def test_a_pinned_cell_runs_on_the_threads_it_was_granted(tmp_path):
    import torch

    from fairfoundry.bench._grid import _pinned_cell

    cell = grid_cells(load_grid(_grid(tmp_path, mitigations=["erm"], label_fractions=[1.0], seeds=[0])))[0]
    before = torch.get_num_threads()
    try:
        status = _pinned_cell(cell, str(tmp_path / "out"), 1)
    finally:
        torch.set_num_threads(before)
    assert status["status"] == "done" and status["threads"] == 1 and status["pid"] == os.getpid()
    assert (tmp_path / "out" / "cells" / cell.cell_id / "rows.parquet").is_file()


def test_a_worker_importing_the_grid_module_imports_nothing_else_of_bench():
    """A Ray worker unpickles the cell function from fairfoundry.bench._grid: the package's other
    modules (studies, statistics, the DuckDB store) stay unimported until used."""
    code = ("import sys, fairfoundry.bench._grid; "
            "print(sorted(m for m in sys.modules if m.startswith('fairfoundry.bench') or m == 'duckdb'))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['fairfoundry.bench', 'fairfoundry.bench._grid']"
    import fairfoundry.bench as bench

    assert {"run_grid", "STUDIES", "friedman_test", "ResultsStore"} <= set(dir(bench))
    assert all(getattr(bench, name) is not None for name in bench.__all__)
