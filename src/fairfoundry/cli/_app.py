"""The ``fairfoundry`` command: one Typer app, one module per command.

Adding a command is one file: create ``cli/_<name>.py`` that does
``from ._app import app`` and decorates a function with ``@app.command("<name>")``
(or ``app.add_typer(sub, name=...)`` for a group), then add the module name to
:data:`COMMAND_MODULES`. Heavy imports (torch, matplotlib, ...) go inside the command
function, never at module level, so ``fairfoundry --help`` stays instant.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys

import typer

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as _cx

from .._errors import FairfoundryError

app = typer.Typer(
    name="fairfoundry",
    help=(
        "Fair foundation models for medical image analysis: audit data, extract embeddings, "
        "adapt and de-bias models, and evaluate fairness with honest error bars."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

#: command modules imported by :func:`main`; keep in CLI order.
COMMAND_MODULES: list[str] = [
    "_evaluate",
    "_data",
    "_models",
    "_pretrain",
    "_adapt",
    "_bench",
    "_quickstart",
    "_reports",
    "_seg",
    "_monitor",
    "_curate",
    "_synth",
]

_STATE = {"debug": False}
log = logging.getLogger("fairfoundry")


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"fairfoundry {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for unexpected errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.",
                                 is_eager=True, callback=_print_version),
) -> None:
    """Fair foundation models for medical image analysis."""
    _STATE["debug"] = debug
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


#: commands costly to import (the study commands import the whole bench package) register
#: themselves through a hook called with the command line; ``None`` means "everything" (help
#: introspection, tests)
ON_DEMAND: list = []


def _load_commands(args: list[str] | None = None) -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
    for hook in ON_DEMAND:
        hook(args)


#: CLI flag of each library parameter whose flag is not ``--`` + the name with dashes
PARAM_FLAGS = {"id_col": "--id", "n_jobs": "--jobs", "n_bootstrap": "--bootstrap",
               "n_permutations": "--permutations", "headline_metrics": "--headline-metric",
               "headline_labels": "--headline-label"}


_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")

#: per command (``"fit"``, ``"experiment baseline-audit"``), the flag that plays the role a shared
#: library hint names: the model zoo says ``--model X --weights F`` (embed's words), ``fit`` calls
#: them ``--encoder`` / ``--encoder-weights``; filled by the command modules with flag_aliases()
FLAG_ALIASES: dict[str, dict[str, str]] = {}


def flag_aliases(command: str, aliases: dict[str, str]) -> None:
    """Declare that ``command`` spells library hint flags differently (``{"--model": "--encoder"}``)."""
    FLAG_ALIASES.setdefault(command, {}).update(aliases)


def _with_command_flags(text: str | None, aliases: dict[str, str]) -> str | None:
    """``text`` with each library flag replaced by the running command's spelling."""
    if not text or not aliases:
        return text
    return _FLAG.sub(lambda m: aliases.get(m.group(0), m.group(0)), text)


def _command_path(args: list[str]) -> str:
    """The sub-command words of ``args`` (``"experiment baseline-audit"``), options skipped."""
    try:
        import typer.main

        cmd, words = typer.main.get_command(app), []
        for a in args:
            sub = getattr(cmd, "commands", {}).get(a) if not a.startswith("-") else None
            if sub is None:
                if not a.startswith("-"):
                    break
                continue
            words.append(a)
            cmd = sub
        return " ".join(words)
    except Exception:  # pragma: no cover - introspection is best effort
        return ""


def _without_foreign_flags(text: str | None, known: set[str] | None) -> str | None:
    """``text`` without the clauses (``; ...``, ``, or ...``, ``(...)``) that suggest a flag
    the running command does not have (library hints are shared by several commands)."""
    if not text or known is None:
        return text

    def ok(part: str) -> bool:
        return all(f in known for f in _FLAG.findall(part))

    text = re.sub(r"\s*\(([^()]*)\)", lambda m: m.group(0) if ok(m.group(1)) else "", text)
    out = []
    for clause in text.split("; "):
        pieces = [p for p in re.split(r"(, or |, )", clause)]
        kept: list[str] = []
        for i in range(0, len(pieces), 2):
            if ok(pieces[i]):
                if kept:
                    kept.append(pieces[i - 1])
                kept.append(pieces[i])
        if kept:
            out.append("".join(kept))
    return "; ".join(out) if out else None


def _command_flags(args: list[str]) -> set[str] | None:
    """The long flags of the command ``args`` runs (None when it cannot be told)."""
    try:
        import typer.main

        cmd = typer.main.get_command(app)
        for a in args:
            if a.startswith("-"):
                continue
            sub = getattr(cmd, "commands", {}).get(a)
            if sub is None:
                break
            cmd = sub
        if getattr(cmd, "commands", None):
            return None
        return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    except Exception:  # pragma: no cover - introspection is best effort
        return None


def error_exit(err: FairfoundryError, *, flags: set[str] | None = None,
               command: str = "") -> int:
    """Print a :class:`FairfoundryError` as ``error: ...`` (+ hint) on stderr; return 2.

    A library error naming a parameter (``sensitive='sexe': ...``) is shown with the flag
    (``--sensitive 'sexe': ...``)."""
    err = err.for_cli(PARAM_FLAGS)
    aliases = FLAG_ALIASES.get(command, {})
    err = FairfoundryError(_with_command_flags(err.message, aliases),
                           hint=_with_command_flags(err.hint, aliases))
    err = FairfoundryError(_without_foreign_flags(err.message, flags) or err.message,
                           hint=_without_foreign_flags(err.hint, flags))
    msg = f"error: {err.message}"
    if err.hint:
        msg += f"\n  hint: {err.hint}"
    print(msg, file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fairfoundry`` console script.

    Exit codes: 0 success, 2 bad input or usage (one clear message, no traceback),
    1 an unexpected error (a bug: one line, ``--debug`` shows the traceback).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    _load_commands(args)
    _STATE["debug"] = "--debug" in args
    try:
        app(args=args, prog_name="fairfoundry", standalone_mode=False)
    except FairfoundryError as err:
        return error_exit(err, flags=_command_flags(args), command=_command_path(args))
    except (typer.Exit, getattr(_cx, "Exit", typer.Exit)) as exc:
        return int(exc.exit_code or 0)
    except (typer.Abort, getattr(_cx, "Abort", typer.Abort)):
        print("aborted", file=sys.stderr)
        return 130
    except _cx.ClickException as exc:
        exc.show(file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last-resort handler
        if _STATE["debug"]:
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1
    return 0
