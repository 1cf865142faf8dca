"""Ray executor: one Ray task per missing shard; the driver writes each shard as it arrives.

Workers rebuild the encoder from ``load_encoder`` arguments (cached per worker process), so the
weights must be readable on every node (a shared filesystem, or the same path on each node).
Results stream back with ``ray.wait``: a driver killed mid-run keeps every shard finished so far.
"""

from __future__ import annotations

import json
import logging

__all__ = ["run_ray", "compute_shard"]

log = logging.getLogger(__name__)
_ENCODERS: dict[str, object] = {}


def compute_shard(load_args: dict, paths: list[str], batch_size: int, device: str, amp: bool,
                  num_threads: int | None = None):
    """Embed one shard's images (runs inside a Ray worker, or anywhere)."""
    import torch

    from ._loader import compute_rows
    from ._registry import load_encoder

    if num_threads:
        torch.set_num_threads(int(num_threads))
    key = json.dumps([load_args, device], sort_keys=True)
    if key not in _ENCODERS:
        _ENCODERS[key] = load_encoder(device=device, **load_args)
    return compute_rows(_ENCODERS[key], paths, batch_size=batch_size, amp=amp)


def run_ray(load_args, paths, bounds, todo, finish, *, batch_size, device, amp, address=None,
            num_cpus=None, progress=None, max_in_flight: int | None = None):
    """Compute shards ``todo`` on Ray; call ``finish(shard, emb, ok, errors)`` as each completes."""
    from .._errors import FairfoundryError
    from .._ray import ray_session

    with ray_session(address=address, num_cpus=num_cpus) as ray:
        gpus = 1 if str(device).startswith("cuda") else 0
        remote = ray.remote(num_cpus=1, num_gpus=gpus)(compute_shard)
        limit = max_in_flight or max(2, int(ray.cluster_resources().get("CPU", 2)) * 2)
        pending: dict = {}
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < limit:
                s = queue.pop(0)
                a, b = bounds[s]
                ref = remote.remote(load_args, paths[a:b], batch_size, device, amp, 1)
                pending[ref] = s
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                s = pending.pop(ref)
                try:
                    emb, ok, errs = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, FairfoundryError):
                        raise cause from None
                    raise
                finish(s, emb, ok, errs)
                if progress:
                    progress(bounds[s][1] - bounds[s][0])
