"""Rough edges of pretrain: a bad config value is exit 2; identical runs give identical bytes;
a killed run's staging folder is removed by the next run into the same --out."""

import hashlib

import yaml


def _args(manifest, out, tiny_vit, *extra):
    return ["pretrain", "--manifest", manifest, "--model", f"timm:{tiny_vit['model']}",
            "--image-size", "32", "--patch-size", "8", "--embed-dim", "32", "--depth", "2",
            "--num-heads", "2", "--batch-size", "8", "--out", out, *extra]


def test_config_with_a_non_number_is_exit_2(cli, tiny_manifest, tmp_path):
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({"manifest": str(tiny_manifest), "objective": "mae",
                                                       "steps": "many"}))
    res = cli("pretrain", tmp_path / "cfg.yaml", "--out", tmp_path / "o")
    assert res.code == 2, res
    assert "steps" in res.err and "'many'" in res.err and "internal error" not in res.err
    (tmp_path / "evil.yaml").write_text("steps: !!python/object/apply:os.system ['echo hi']\n")
    res = cli("pretrain", tmp_path / "evil.yaml", "--out", tmp_path / "o2")
    assert res.code == 2 and "not valid YAML" in res.err and "!!python" in res.err


def test_identical_runs_write_identical_encoder_bytes_and_clear_stale_staging(cli, tiny_manifest,
                                                                               tmp_path, tiny_vit):
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        if name == "b":  # what kill -9 leaves behind: a staging folder of a dead process
            stale = tmp_path / ".b.staging-999999-abc"
            stale.mkdir()
            (stale / "encoder.safetensors").write_bytes(b"partial")
        res = cli(*_args(tiny_manifest, out, tiny_vit, "--objective", "mae", "--steps", "2",
                         "--option", "decoder_dim=16", "--option", "decoder_depth=1"))
        assert res.code == 0, res
        digests.append(hashlib.sha256((out / "encoder.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    assert not list(tmp_path.glob(".b.staging-*"))
