"""The ``fairfoundry`` command-line interface (see :mod:`fairfoundry.cli._app`)."""

from ._app import COMMAND_MODULES, app, main

__all__ = ["COMMAND_MODULES", "app", "main"]
