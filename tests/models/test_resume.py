"""kill -9 during extraction: the re-run resumes from finished shards and matches a clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np

from fairfoundry.models import extract_embeddings, read_embeddings

SCRIPT = """
import sys, time
from fairfoundry.models import extract_embeddings
manifest, model, out, cache = sys.argv[1:5]
extract_embeddings(manifest, model, out=out, cache_dir=cache, shard_size=10, batch_size=5,
                   progress=lambda n: time.sleep(0.15))
"""


def test_sigkill_mid_run_then_resume_recomputes_no_finished_shard(tmp_path, tiny_encoder_file,
                                                                   nih_manifest, small_manifest):
    man = small_manifest(nih_manifest, 60)  # 6 shards of 10
    cache, out = tmp_path / "cache", tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(man), str(tiny_encoder_file), str(out),
                             str(cache)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    shards: list = []
    try:
        while time.time() < deadline and proc.poll() is None:
            shards = sorted(cache.glob("*/*.npz"))
            if len(shards) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"extraction ended before it could be killed: {proc.stderr.read()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    done = sorted(cache.glob("*/*.npz"))
    assert 2 <= len(done) < 6
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in done}
    for p in done:  # every shard on disk is whole
        with np.load(p) as z:
            assert z["emb"].shape == (10, 32) and z["ok"].all()
    assert not (out / "embeddings.json").exists()  # no output claims to be complete

    res = extract_embeddings(man, str(tiny_encoder_file), out=out, cache_dir=cache, shard_size=10,
                             batch_size=5)
    assert res.shards_reused == len(done) and res.shards_computed == 6 - len(done)
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in done} == before
    assert not list(cache.glob("*/.*.tmp"))  # the killed run's temp file was cleaned up

    clean = extract_embeddings(man, str(tiny_encoder_file), out=tmp_path / "clean",
                               cache_dir=tmp_path / "cache2", shard_size=10, batch_size=5)
    assert clean.shards_computed == 6
    ids_a, a, _ = read_embeddings(out)
    ids_b, b, _ = read_embeddings(tmp_path / "clean")
    assert list(ids_a) == list(ids_b)
    np.testing.assert_array_equal(a, b)
