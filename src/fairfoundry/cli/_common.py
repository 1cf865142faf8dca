"""Helpers shared by CLI commands: rich progress bars and key=value parsing."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


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


def parse_key_values(items: list[str] | None, *, option: str, typed: bool = False) -> dict:
    """Repeated ``KEY=VALUE`` options (:func:`fairfoundry._values.parse_key_values`; text
    values unless ``typed``)."""
    from .._values import parse_key_values as parse

    return parse(items, option=option, typed=typed)
