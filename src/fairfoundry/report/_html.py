"""Self-contained HTML pages: figures embedded as base64 PNG, CSS inline, no network.

Every report fairfoundry writes (evaluation, data audit, model card) goes through
:func:`render_page`, so they look alike and open offline. The markup comes from jinja2 templates
(``templates/*.html.j2``, package data) with autoescape: user text (column names, group values,
file names) is escaped wherever it appears, and only already-rendered fragments travel as
:class:`markupsafe.Markup`.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable
from datetime import datetime, timezone
from functools import lru_cache

__all__ = ["figure_to_data_uri", "figure_html", "render_page", "table_html", "esc", "templates",
           "format_cell"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0;
color:#1d2330;background:#fff;line-height:1.45}
main{max-width:1150px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:1.7em;margin:.2em 0 .1em}h2{font-size:1.3em;margin-top:1.8em;border-bottom:1px solid #dde;
padding-bottom:.2em}h3{font-size:1.05em;margin-top:1.3em}
.meta{color:#5b6475;font-size:.9em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0;max-width:100%;display:block;overflow-x:auto}
th,td{border:1px solid #d9dde6;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f2f4f8;text-align:center}td.l,th.l{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eef}
figcaption{color:#5b6475;font-size:.85em}
.warn{background:#fff6e0;border-left:4px solid #e0a100;padding:.5em .8em;margin:.6em 0}
.note{background:#eef5ff;border-left:4px solid #3a78d8;padding:.5em .8em;margin:.6em 0}
ul.reading li{margin:.3em 0}
code{background:#f2f4f8;padding:0 3px;border-radius:3px}
details{margin:.4em 0}summary{cursor:pointer;font-weight:600}
"""

@lru_cache(maxsize=1)
def templates():
    """The jinja2 environment of ``fairfoundry/report/templates`` (autoescape on, undefined
    variables are errors)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("fairfoundry.report", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def esc(text: object) -> str:
    """HTML-escape any value."""
    return html.escape(str(text))


def figure_to_data_uri(fig, *, dpi: int = 110) -> str:
    """Render a matplotlib figure to a ``data:image/png;base64,...`` URI and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def figure_html(fig, *, caption: str = "", alt: str = "figure", uri: str | None = None,
                files: Iterable[str] = ()) -> str:
    """A ``<figure>`` element with the embedded PNG of ``fig`` (or a ready ``uri``), an optional
    caption and the names of the files the figure was also written to."""
    if uri is None:
        uri = figure_to_data_uri(fig)
    return templates().get_template("figure.html.j2").render(alt=alt, uri=uri, caption=caption,
                                                              files=list(files))


def format_cell(value, *, float_format: str = "{:.4g}", thousands: bool = False) -> str:
    """The text of one table cell: NaN as an em dash, floats through ``float_format``,
    integers with thousand separators when ``thousands``."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return "—" if math.isnan(v) else float_format.format(v)
    if thousands and isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return str(value)


def table_html(frame, *, float_format: str = "{:.4g}", max_rows: int = 500, left: Iterable[str] = (),
               right: Iterable[str] = (), thousands: bool = False) -> str:
    """Render a DataFrame as a compact HTML table (NaN shown as an em dash).

    Columns in ``left`` are left-aligned; columns in ``right`` are right-aligned even where a
    cell holds text (a suppressed count ``<10``, a formatted ``45.5%``); other cells are
    right-aligned when numeric. ``thousands`` writes integers as ``12,345``. Rows beyond
    ``max_rows`` are left out with a note (the CSV has them). Every cell is escaped by the
    template."""
    left = set(left)
    right = set(right)
    cols = list(frame.columns)
    head = [(str(c), "l" if c in left else "") for c in cols]
    rows = []
    for rec in frame.head(max_rows).itertuples(index=False):
        cells = []
        for c, v in zip(cols, rec, strict=True):
            txt = format_cell(v, float_format=float_format, thousands=thousands)
            is_left = c in left or (c not in right and not isinstance(v, (int, float)))
            cells.append((txt, "l" if is_left else ""))
        rows.append(cells)
    more = (f"{len(frame) - max_rows:,} more rows in the CSV." if len(frame) > max_rows else "")
    return templates().get_template("table.html.j2").render(head=head, rows=rows, more=more)


def render_page(title: str, body: str, *, subtitle: str = "") -> str:
    """A complete, self-contained HTML document (inline CSS, no external resources).

    ``body`` is already-rendered HTML (from templates); ``title`` and ``subtitle`` are text."""
    from markupsafe import Markup

    from .. import __version__

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return templates().get_template("page.html.j2").render(
        title=title, subtitle=subtitle, css=Markup(_CSS), body=Markup(body),
        version=__version__, stamp=stamp) + "\n"
