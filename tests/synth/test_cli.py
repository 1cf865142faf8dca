"""`fairfoundry synth train|sample|qc` end to end on the toy fixture, and bad input: exit 2, nothing written."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from fairfoundry.cli import main
from fairfoundry.synth import write_toy_manifest

TINY = ["--image-size", "16", "--channel-mult", "1,2", "--base-channels", "8", "--batch-size", "8"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    cells = {("square", "dark"): 6, ("square", "bright"): 6, ("ring", "dark"): 6}  # ring x bright absent
    manifest = write_toy_manifest(tmp / "toy", size=16, n_per_cell=cells, seed=0, val_fraction=0.3)
    rc = main(["synth", "train", "--manifest", str(manifest), "--condition", "shape,brightness", "--out",
               str(tmp / "G"), "--steps", "3", *TINY])
    assert rc == 0
    return tmp, manifest


def test_train_sample_qc(trained):
    tmp, manifest = trained
    info = json.loads((tmp / "G" / "generator.json").read_text())
    assert info["kind"] == "fairfoundry.synth.generator" and info["train"]["steps"] == 3
    assert info["conditions"]["columns"] == ["shape", "brightness"] and info["seed"] == 0
    rc = main(["synth", "sample", str(tmp / "G"), "--cells", "shape=ring,brightness=dark:4", "--cells",
               "shape=square,brightness=bright:3", "--out", str(tmp / "S"), "--sample-steps", "2"])
    assert rc == 0
    s = pd.read_csv(tmp / "S" / "manifest.csv")
    assert len(s) == 7 and (s["synthetic"] == 1).all() and set(s["shape"]) == {"ring", "square"}
    assert all((tmp / "S" / p).exists() for p in s["path"])
    rc = main(["synth", "qc", "--real", str(manifest), "--synthetic", str(tmp / "S"), "--generator", str(tmp / "G"),
               "--out", str(tmp / "Q"), "--k", "2"])
    assert rc == 0
    q = pd.read_csv(tmp / "Q" / "qc.csv")
    assert len(q) == 2 and {"FD_fairfoundry-tiny", "KID_fairfoundry-tiny", "coverage", "copy_rate",
                            "attribute_pass_rate", "qc_pass_rate"} <= set(q.columns)
    per = pd.read_csv(tmp / "Q" / "per_sample.csv")
    rej = pd.read_csv(tmp / "Q" / "rejected.csv")
    acc = pd.read_csv(tmp / "Q" / "accepted.csv")
    assert len(rej) + len(acc) == len(per) == 7 and (rej["reason"].str.len() > 0).all()
    html = (tmp / "Q" / "qc.html").read_text()
    assert "<script" not in html and "shape=ring &amp; brightness=dark" in html  # autoescaped


def _bad(argv, capsys, out, match):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert match in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_bad_input_exits_2_and_writes_nothing(trained, tmp_path, capsys):
    tmp, manifest = trained
    # a cell with no training images
    _bad(["synth", "sample", str(tmp / "G"), "--cells", "shape=ring,brightness=bright:4", "--out",
          str(tmp_path / "S1")], capsys, tmp_path / "S1", "has no training images")
    # an absent condition column
    _bad(["synth", "train", "--manifest", str(manifest), "--condition", "shape,sex", "--out", str(tmp_path / "G1"),
          *TINY], capsys, tmp_path / "G1", "condition column 'sex' not found")
    # resuming a checkpoint with another config
    rc = main(["synth", "train", "--manifest", str(manifest), "--condition", "shape,brightness", "--out",
               str(tmp / "G"), "--steps", "3", "--resume", "--image-size", "16", "--channel-mult", "1,2"])
    err = capsys.readouterr().err
    assert rc == 2 and "comes from another config" in err and "base_channels" in err
    # weights of another config dropped into a generator directory
    g2 = tmp_path / "G2"
    assert main(["synth", "train", "--manifest", str(manifest), "--condition", "shape,brightness", "--out", str(g2),
                 "--steps", "1", "--image-size", "16", "--channel-mult", "1,2", "--batch-size", "8"]) == 0
    (g2 / "weights.safetensors").write_bytes((tmp / "G" / "weights.safetensors").read_bytes())
    _bad(["synth", "sample", str(g2), "--cells", "shape=ring,brightness=dark:2", "--out", str(tmp_path / "S2")],
         capsys, tmp_path / "S2", "written for another config")
    # QC with no real images of a group
    real = pd.read_csv(manifest)
    real = real[real["shape"] != "ring"].assign(path=lambda d: [str(manifest.parent / p) for p in d["path"]])
    real.to_csv(tmp_path / "real_no_ring.csv", index=False)
    assert main(["synth", "sample", str(tmp / "G"), "--cells", "shape=ring,brightness=dark:2", "--out",
                 str(tmp_path / "S3"), "--sample-steps", "1"]) == 0
    _bad(["synth", "qc", "--real", str(tmp_path / "real_no_ring.csv"), "--synthetic", str(tmp_path / "S3"), "--out",
          str(tmp_path / "Q1")], capsys, tmp_path / "Q1", "no real images of group")
    # an existing output is never overwritten without --overwrite
    _ = capsys.readouterr()
    rc = main(["synth", "sample", str(tmp / "G"), "--cells", "shape=ring,brightness=dark:2", "--out",
               str(tmp_path / "S3")])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err


def test_balance_and_joint_embedding_flags_reach_the_generator(trained, tmp_path, capsys):
    _, manifest = trained
    out = tmp_path / "GB"
    assert main(["synth", "train", "--manifest", str(manifest), "--condition", "shape,brightness", "--out",
                 str(out), "--steps", "1", "--balance", "cells", "--joint-embedding", *TINY]) == 0
    config = json.loads((out / "generator.json").read_text())["config"]
    assert config["balance"] == "cells" and config["joint_embedding"] is True
    _bad(["synth", "train", "--manifest", str(manifest), "--condition", "shape,brightness", "--out",
          str(tmp_path / "GX"), "--steps", "1", "--balance", "groups", *TINY], capsys, tmp_path / "GX",
         "unknown balance")
