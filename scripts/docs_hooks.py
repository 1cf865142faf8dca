"""mkdocs hooks of the fairfoundry site: pages generated from the code at build time.

- ``api/<package>.md``: one API page per public package of :mod:`fairfoundry`, rendered from the
  numpydoc docstrings by mkdocstrings (every name in the package's ``__all__``);
- ``reference/*.md``: tables read from the registries (metrics and summaries, mitigations,
  pre-training objectives, encoder presets, dataset specs) and the CLI's own ``--help`` text, so the
  docs cannot drift from the code.

The packages are discovered, not listed: a new package under ``src/fairfoundry/`` gets its API
page on the next build.
"""

from __future__ import annotations

import html
import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
#: packages that are not a user-facing API (the CLI is documented from its --help text)
_SKIP = {"cli"}


def _packages() -> list[str]:
    import fairfoundry

    names = ["fairfoundry"]
    for info in sorted(pkgutil.iter_modules(fairfoundry.__path__), key=lambda m: m.name):
        if info.ispkg and not info.name.startswith("_") and info.name not in _SKIP:
            names.append(f"fairfoundry.{info.name}")
    return names


def _first_line(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def _cell(text) -> str:
    return html.escape(str(text)).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def _api_index(packages: list[str]) -> str:
    lines = ["# API reference", "",
             "Generated from the numpydoc docstrings of every public package (each page lists the "
             "names in the package's `__all__`).", ""]
    for name in packages:
        mod = importlib.import_module(name)
        lines.append(f"- [`{name}`]({name}.md): {_first_line(mod)}")
    return "\n".join(lines) + "\n"


def _api_page(name: str) -> str:
    return f"# `{name}`\n\n::: {name}\n    options:\n      show_root_heading: false\n"


_BETTER = {1: "higher", -1: "lower", 0: "descriptive", "one": "closer to 1", "zero": "closer to 0"}


def metric_table() -> str:
    """The per-group metric table, one row per record of ``fairfoundry.metrics.PER_GROUP``."""
    from fairfoundry import metrics

    rows = [[f"`{r.name}`", _BETTER[r.direction], r.formula, r.summary, r.kernel, r.source]
            for r in metrics.PER_GROUP.values()]
    return _table(["metric", "better", "formula", "definition", "computed from", "source"], rows)


def _metrics_page() -> str:
    from fairfoundry import metrics

    summaries = [[f"`{s.name}`", s.extreme, s.doc] for s in metrics.SUMMARIES.values()]
    return ("# Metric glossary\n\nGenerated from `fairfoundry.metrics` (the per-group metric "
            "records `PER_GROUP`, each declared once with its kernel, direction, formula and "
            "source, and `SUMMARIES`); see the [API page](../api/fairfoundry.metrics.md) and the "
            "[metrics guide](../metrics.md).\n\n"
            "## Per-group metrics\n\n" + metric_table()
            + "\n## Named summaries\n\n" + _table(["summary", "extreme", "definition"], summaries))


def _methods_page() -> str:
    from fairfoundry.mitigate import list_mitigations

    rows = [[f"`{m['name']}`", m["stage"], m["summary"]] for m in list_mitigations()]
    return ("# Mitigation methods\n\nGenerated from the mitigation registry "
            "(`fairfoundry.mitigate.list_mitigations()`, the same list as "
            "`fairfoundry fit --list-methods`). See the [adaptation guide](../adapt.md).\n\n"
            + _table(["method", "stage", "summary"], rows))


def _objectives_page() -> str:
    from fairfoundry.pretrain import OBJECTIVES

    rows = [[f"`{name}`", _first_line(cls)] for name, cls in sorted(OBJECTIVES.items())]
    return ("# Pre-training objectives\n\nGenerated from `fairfoundry.pretrain.OBJECTIVES`. See "
            "the [pre-training guide](../pretrain.md).\n\n" + _table(["objective", "summary"], rows))


def _encoders_page() -> str:
    from fairfoundry.models import list_presets

    rows = [[f"`{p.name}`", p.backend, p.modality, p.licence, p.source]
            for p in list_presets()]
    return ("# Encoder presets\n\nGenerated from the encoder registry (`fairfoundry models "
            "list`). See the [models guide](../models.md).\n\n"
            + _table(["preset", "backend", "modality", "weights licence", "source"], rows))


def _datasets_page() -> str:
    from fairfoundry.data import get_spec, list_specs

    rows = []
    for name in list_specs():
        spec = get_spec(name)
        rows.append([f"`{name}`", spec.title, spec.modality, spec.access, spec.licence])
    return ("# Dataset specs\n\nGenerated from the bundled YAML specs (`fairfoundry datasets "
            "list`). See the [data guide](../data.md).\n\n"
            + _table(["spec", "dataset", "modality", "access", "licence"], rows))


def _cli_page() -> str:
    import click
    import typer
    from typer.testing import CliRunner

    from fairfoundry.cli import _app

    _app._load_commands()
    root = typer.main.get_command(_app.app)
    runner = CliRunner()
    parts = ["# Command line\n", "Generated from `fairfoundry <command> --help`.\n"]

    def walk(cmd, path):
        if getattr(cmd, "hidden", False):
            return
        result = runner.invoke(_app.app, [*path[1:], "--help"], env={"COLUMNS": "100"})
        text = "\n".join(line.rstrip() for line in result.output.splitlines())
        parts.append(f"## `{' '.join(path)}`\n\n```text\n{text.strip()}\n```\n")
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd, info_name=path[-1])
            for sub in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, sub), [*path, sub])

    walk(root, ["fairfoundry"])
    return "\n".join(parts)


GENERATED = {
    "reference/metrics.md": _metrics_page,
    "reference/methods.md": _methods_page,
    "reference/objectives.md": _objectives_page,
    "reference/encoders.md": _encoders_page,
    "reference/datasets.md": _datasets_page,
    "reference/cli.md": _cli_page,
}


def on_config(config):
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    pages = _packages()
    nav = config["nav"] or []
    for i, entry in enumerate(nav):
        if isinstance(entry, dict) and "API" in entry:
            nav[i] = {"API": ["api/index.md", *(f"api/{p}.md" for p in pages)]}
    config["nav"] = nav
    return config


#: files outside ``docs/`` that pages link to (``../BENCHMARKS.md``): published as site pages
_OUTSIDE = {"../BENCHMARKS.md": "benchmarks.md"}
_REPO_LINK = re.compile(r"\]\((\.\./)+(?P<path>(benchmarks|scripts|src|tests)/[^)#\s]+)\)")


def _benchmarks_page() -> str:
    return _relink((ROOT / "BENCHMARKS.md").read_text(encoding="utf-8"), depth=0)


def _relink(markdown: str, *, depth: int = 1) -> str:
    """Point links at repository files outside ``docs/`` to their site page or show them as code."""
    for outside, page in _OUTSIDE.items():
        markdown = markdown.replace(f"]({outside}", f"]({'../' * (depth - 1)}{page}")
    markdown = _REPO_LINK.sub(lambda m: f"] (`{m.group('path')}`)", markdown)
    return re.sub(r"\]\((?P<path>(benchmarks|scripts|src|tests)/[^)#\s]+)\)",
                  lambda m: f"] (`{m.group('path')}`)", markdown) if depth == 0 else markdown


_RUN_BLOCK = re.compile(r"^```(?P<lang>python|bash) run\n(?P<code>.*?)^```\n", re.S | re.M)


def _run_commands(code: str, *, where: str) -> str:
    """Run the ``fairfoundry ...`` commands of a ```` ```bash run ```` block through the CLI.

    Lines ending in ``\\`` continue; blank lines and ``#`` comments are skipped. Every command
    must be a ``fairfoundry`` command (run in-process, in the page's directory); a non-zero exit
    fails the build. Returns what the commands printed (stdout and stderr).
    """
    import contextlib
    import io
    import os
    import shlex

    from fairfoundry.cli import main

    printed = io.StringIO()
    for command in re.sub(r"\\\n", " ", code).splitlines():
        args = shlex.split(command, comments=True)
        if not args:
            continue
        if args[0] != "fairfoundry":
            raise RuntimeError(f"docs example {where}: a bash run block runs fairfoundry "
                               f"commands only, got {command!r}")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            rc = main(args[1:])
        if rc:
            raise RuntimeError(f"docs example {where} failed (exit {rc}): {command}\n"
                               f"{buf.getvalue()}")
        printed.write(buf.getvalue().replace(os.getcwd() + os.sep, ""))
    return printed.getvalue()


def _run_examples(markdown: str, *, where: str) -> str:
    """Execute every ```` ```python run ```` block of a page and embed its output and figures.

    ```` ```bash run ```` blocks hold ``fairfoundry`` commands, run through the CLI in the same
    directory (see :func:`_run_commands`), so a page can run a command and read its outputs in
    the next Python block; ``REPO`` (the checkout's root, a :class:`~pathlib.Path`) is defined
    for pages that read files of the repository.

    The blocks of one page share a namespace and run in a fresh temporary directory, in order; the
    page shows each block's code, then what it printed, then every matplotlib figure it left open
    (embedded as PNG, then closed). An exception fails the build and names the page and block, so a
    broken tutorial cannot be published.
    """
    if "```python run" not in markdown and "```bash run" not in markdown:
        return markdown
    import base64
    import contextlib
    import io
    import tempfile
    import traceback

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict = {"__name__": "__docs__", "REPO": ROOT}
    out: list[str] = []
    pos = 0
    with tempfile.TemporaryDirectory(prefix="ff-docs-") as tmp, contextlib.chdir(tmp):
        for n, match in enumerate(_RUN_BLOCK.finditer(markdown), start=1):
            code = match.group("code")
            out.append(markdown[pos:match.start()])
            pos = match.end()
            buf = io.StringIO()
            if match.group("lang") == "bash":
                buf.write(_run_commands(code, where=f"{where} block {n}"))
            else:
                try:
                    with contextlib.redirect_stdout(buf):
                        exec(compile(code, f"{where} block {n}", "exec"), namespace)
                except Exception as exc:
                    raise RuntimeError(f"docs example {where} block {n} failed:\n"
                                       f"{traceback.format_exc()}") from exc
            out.append(f"```{match.group('lang')}\n{code}```\n")
            printed = buf.getvalue().rstrip()
            if printed:
                out.append(f"\n```text\n{printed}\n```\n")
            for num in plt.get_fignums():
                png = io.BytesIO()
                plt.figure(num).savefig(png, format="png", dpi=110, bbox_inches="tight")
                data = base64.b64encode(png.getvalue()).decode("ascii")
                out.append(f"\n![figure {num} of block {n}](data:image/png;base64,{data})\n")
            plt.close("all")
    out.append(markdown[pos:])
    return "".join(out)


def on_page_markdown(markdown, page, config, files):
    depth = page.file.src_uri.count("/") + 1
    markdown = _run_examples(markdown, where=page.file.src_uri)
    return _relink(markdown, depth=depth)


def on_files(files, config):
    pages = _packages()
    content = {"api/index.md": _api_index(pages), "benchmarks.md": _benchmarks_page()}
    content.update({f"api/{p}.md": _api_page(p) for p in pages})
    content.update({uri: make() for uri, make in GENERATED.items()})
    for uri, text in content.items():
        files.append(File.generated(config, uri, content=text))
    return files
