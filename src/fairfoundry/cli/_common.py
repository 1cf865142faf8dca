"""Helpers shared by CLI commands: rich progress bars and key=value parsing."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

#: seconds between plain progress lines when stderr is not a terminal (batch jobs, CI logs)
PROGRESS_INTERVAL_S = 30.0


class _PlainProgress:
    """``advance(n)`` that prints ``description: done/total (pct), rate/s, ETA`` to stderr at
    most every ``interval`` seconds (and once at the end), so logs are never silent."""

    def __init__(self, description: str, total: int | None, interval: float):
        import time

        self.description, self.total, self.interval = description, total, interval
        self.done = 0
        self.t0 = self.last = time.monotonic()

    def line(self, now: float) -> str:
        rate = self.done / max(now - self.t0, 1e-9)
        text = f"{self.description}: {self.done}"
        if self.total:
            text += f"/{self.total} ({100 * self.done / self.total:.0f}%)"
        text += f", {rate:.3g}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ETA {_duration((self.total - self.done) / rate)}"
        return text + f", elapsed {_duration(now - self.t0)}"

    def __call__(self, n: int = 1) -> None:
        import time

        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            print(self.line(now), file=sys.stderr, flush=True)

    def finish(self) -> None:
        """A last line, for jobs that ran longer than one interval (short ones stay quiet)."""
        import time

        now = time.monotonic()
        if self.done and now - self.t0 >= self.interval:
            print(self.line(now), file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


@contextlib.contextmanager
def rich_progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Show a rich progress bar on stderr; yield ``advance(n)``.

    Library functions take a ``progress`` callable and call it with the number of finished
    units; they never print. When stderr is not a terminal (a batch job, CI), a plain line
    (step, done/total, rate, ETA) is printed at least every :data:`PROGRESS_INTERVAL_S`
    seconds (``FAIRFOUNDRY_PROGRESS_INTERVAL`` overrides it), and at the end of such a job.
    """
    import os

    if not sys.stderr.isatty():
        interval = float(os.environ.get("FAIRFOUNDRY_PROGRESS_INTERVAL", PROGRESS_INTERVAL_S))
        plain = _PlainProgress(description, total, interval)
        yield plain
        plain.finish()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def parse_key_values(items: list[str] | None, *, option: str, typed: bool = False) -> dict:
    """Repeated ``KEY=VALUE`` options (:func:`fairfoundry._values.parse_key_values`; text
    values unless ``typed``)."""
    from .._values import parse_key_values as parse

    return parse(items, option=option, typed=typed)
