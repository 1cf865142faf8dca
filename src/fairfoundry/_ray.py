"""One way to get a Ray cluster for the ``--executor ray`` paths (embedding shards, grid cells)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from ._errors import FairfoundryError

__all__ = ["ray_session"]


@contextlib.contextmanager
def ray_session(*, address: str | None = None, num_cpus: int | None = None) -> Iterator:
    """Yield the ``ray`` module with a cluster connected: the one already initialised, the one at
    ``address``, or a new local one with ``num_cpus`` CPUs (shut down on exit if started here)."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is in the `scale` extra
        raise FairfoundryError("--executor ray needs Ray", hint="pip install 'fairfoundry[scale]'") from exc
    started = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        if address:
            kwargs["address"] = address
        elif num_cpus:
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
