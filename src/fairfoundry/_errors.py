"""User-facing errors.

Library code raises :class:`FairfoundryError` for problems with the user's input or
environment; only the CLI turns it into ``error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["FairfoundryError", "closest", "did_you_mean"]


class FairfoundryError(Exception):
    """A problem with the user's input or environment; the CLI prints it and exits 2.

    Parameters
    ----------
    message : str
        One sentence naming the file, column or row at fault.
    hint : str, optional
        What the user can do about it (closest column names, how to get weights, ...).
    param : str, optional
        The library parameter at fault (``sensitive``); library messages name it as
        ``sensitive=...``, and the CLI rewrites that to its flag (``--sensitive ...``) with
        :meth:`for_cli`.
    """

    def __init__(self, message: str, *, hint: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.param = param

    def for_cli(self, flags: dict[str, str] | None = None) -> FairfoundryError:
        """This error in CLI words: ``param=`` at the start of the message becomes the flag
        (``flags[param]``, default ``--`` + the name with dashes)."""
        if not self.param:
            return self
        flag = (flags or {}).get(self.param) or "--" + self.param.replace("_", "-")
        msg = self.message
        for prefix in (f"{self.param}=", f"{self.param}:"):
            if msg.startswith(prefix):
                sep = " " if prefix.endswith("=") else ":"
                msg = flag + sep + msg[len(prefix):]
                break
        return FairfoundryError(msg, hint=self.hint, param=None)

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message if not self.hint else f"{self.message} ({self.hint})"


def closest(name: str, choices: Iterable[str], *, n: int = 3) -> list[str]:
    """Return up to ``n`` entries of ``choices`` closest to ``name`` (case-insensitive)."""
    choices = [str(c) for c in choices]
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(str(name).lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def did_you_mean(name: str, choices: Iterable[str], *, what: str = "choices") -> str:
    """Build a hint string: ``did you mean 'x'? <what> are: a, b, c``."""
    choices = [str(c) for c in choices]
    near = closest(name, choices)
    listing = ", ".join(choices[:40]) + (", ..." if len(choices) > 40 else "")
    if near:
        return f"did you mean {' or '.join(repr(c) for c in near)}? {what} are: {listing}"
    return f"{what} are: {listing}"
