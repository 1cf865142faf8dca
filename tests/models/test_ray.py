"""The Ray executor on a local 2-CPU instance gives the same embeddings as the local executor."""

from __future__ import annotations

import numpy as np
import pytest

from fairfoundry.models import extract_embeddings, read_embeddings

pytest.importorskip("ray")


def test_ray_executor_matches_local_executor(tmp_path, tiny_encoder_file, nih_manifest, small_manifest):
    man = small_manifest(nih_manifest, 30)
    kw = {"shard_size": 10, "batch_size": 5}
    local = extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "local",
                               cache_dir=tmp_path / "c1", **kw)
    ray_res = extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "ray",
                                 cache_dir=tmp_path / "c2", executor="ray", ray_num_cpus=2, **kw)
    assert ray_res.shards_computed == local.shards_computed == 3
    ids_l, a, _ = read_embeddings(tmp_path / "local")
    ids_r, b, meta = read_embeddings(tmp_path / "ray")
    assert list(ids_l) == list(ids_r)
    np.testing.assert_array_equal(a, b)
    assert meta["config"]["executor"] == "ray"
    import ray

    assert not ray.is_initialized()  # the instance it started is shut down
