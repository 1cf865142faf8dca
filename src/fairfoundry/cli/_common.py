"""Helpers shared by CLI commands: rich progress bars and key=value parsing."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from .._errors import FairfoundryError


@contextlib.contextmanager
def rich_progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Show a rich progress bar on stderr; yield ``advance(n)``.

    Library functions take a ``progress`` callable and call it with the number of finished
    units; they never print. The bar is hidden when stderr is not a terminal.
    """
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
                  TimeRemainingColumn(), console=console, transient=True,
                  disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def parse_key_values(items: list[str] | None, *, option: str) -> dict[str, str]:
    """Parse repeated ``key=value`` options into a dict, with a clear error naming the option."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise FairfoundryError(f"{option} expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        if not key.strip():
            raise FairfoundryError(f"{option} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out
