"""One way to get a Ray cluster for the ``--executor ray`` paths (embedding shards, grid cells)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from ._errors import FairfoundryError

__all__ = ["ray_session"]


@contextlib.contextmanager
def ray_session(*, address: str | None = None, num_cpus: int | None = None) -> Iterator:
    """Yield the ``ray`` module with a cluster connected: the one already initialised, the one at
    ``address``, or a new local one with ``num_cpus`` CPUs (shut down on exit if started here).

    A local cluster started here runs its workers at this process's niceness. Ray's default
    lowers workers to niceness 15 (to keep its own daemons responsive), so on a machine shared
    with other work a Ray worker gets a fraction of the CPU time the same cell gets from the
    local executor, which runs at the user's priority; with the same priority the two executors
    compete for the machine on equal terms. No dashboard is started and workers' output is not
    forwarded (it stays in Ray's session logs)."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is in the `scale` extra
        raise FairfoundryError("--executor ray needs Ray", hint="pip install 'fairfoundry[scale]'") from exc
    started = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        if address:
            kwargs["address"] = address
        else:
            kwargs["_system_config"] = {"worker_niceness": os.nice(0)}  # Ray's default is 15
            if num_cpus:
                kwargs["num_cpus"] = int(num_cpus)
        try:
            ray.init(**kwargs)
        except Exception as exc:
            raise FairfoundryError(f"cannot start or reach Ray ({address or 'local'}): {exc}".splitlines()[0],
                                   hint="check --ray-address, or use --executor local") from exc
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
