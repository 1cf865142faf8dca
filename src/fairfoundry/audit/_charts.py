"""The charts of ``audit.html`` as inline SVG (``templates/charts.svg.j2``).

Bar charts and one heatmap are all the audit page draws, and drawing them with matplotlib cost a
1M-row ``audit-data`` run about 2 s (the import and four PNG renders). Here Python computes the
geometry and a jinja2 template (autoescaped: labels are user data) writes the SVG.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

__all__ = ["Bar", "bar_panels", "heatmap", "render_bars"]

BLUE, GREY, TEAL = "#3a78d8", "#c0c4cc", "#2a9d8f"
_ROW, _TOP, _BOTTOM = 18, 22, 20


@dataclass
class Bar:
    """One bar: ``value`` in [0, 1] (share); ``text`` is shown after it; ``ticks`` are reference
    marks in the same unit."""

    label: str
    value: float
    text: str
    color: str = BLUE
    text_color: str = "#333"
    ticks: list[float] = field(default_factory=list)


def _short(text: object, n: int) -> str:
    s = str(text)
    return s if len(s) <= n else s[: n - 1] + "…"


def bar_panels(panels: list[tuple[str, list[Bar]]], *, xlabel: str, span: int = 190,
               label_width: int = 120) -> list[dict]:
    """Geometry of horizontal bar panels (one SVG each): ``[(title, bars), ...]``."""
    out = []
    for title, bars in panels:
        top = max([1.0] + [b.value for b in bars if math.isfinite(b.value)]
                  + [t for b in bars for t in b.ticks])
        scale = span / top
        rows = []
        for i, b in enumerate(bars):
            v = b.value if math.isfinite(b.value) else 0.0
            rows.append({"label": _short(b.label, 22), "y": _TOP + i * _ROW,
                         "w": round(max(v, 0.0) * scale, 1), "color": b.color, "text": b.text,
                         "text_color": b.text_color,
                         "ticks": [round(t * scale, 1) for t in b.ticks]})
        out.append({"title": title, "bars": rows, "x0": label_width, "span": span,
                    "width": label_width + span + 70, "xlabel": xlabel,
                    "height": _TOP + len(bars) * _ROW + _BOTTOM})
    return out


def _blue(t: float) -> str:
    """A white-to-blue ramp (``t`` in [0, 1])."""
    lo, hi = (247, 251, 255), (8, 69, 148)
    r, g, b = (round(a + (c - a) * t) for a, c in zip(lo, hi, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(title: str, rows: list[str], cols: list[str], counts, *, k: int, xlabel: str,
            ylabel: str) -> dict:
    """Geometry of a count heatmap (log colour scale; counts in ``1..k-1`` shown as ``<k`` and
    left uncoloured, like every suppressed cell)."""
    cw, ch, x0 = 52, 22, 130
    y0 = 24 + 8 * max([len(_short(c, 14)) for c in cols] + [1])
    shades = [[math.log10(n + 1) for n in row] for row in counts]
    top = max([s for row in shades for s in row] + [1.0])
    out_rows = []
    for i, r in enumerate(rows):
        cells = []
        for j, c in enumerate(cols):
            n = int(counts[i][j])
            small = 0 < n < k
            t = 0.0 if small else shades[i][j] / top
            cells.append({"x": x0 + j * cw, "col": _short(c, 14), "fill": "#eeeeee" if small
                          else _blue(t), "ink": "#fff" if t > 0.6 else "#000",
                          "text": f"<{k}" if small else f"{n:,}"})
        out_rows.append({"label": _short(r, 18), "y": y0 + i * ch, "cells": cells})
    return {"title": title, "x0": x0, "y0": y0, "cw": cw, "ch": ch,
            "cols": [{"label": _short(c, 14), "x": x0 + j * cw + cw // 2 - 4}
                     for j, c in enumerate(cols)],
            "rows": out_rows, "width": x0 + cw * len(cols) + 20,
            "height": y0 + ch * len(rows) + 24, "xlabel": xlabel, "ylabel": ylabel}


@functools.lru_cache(maxsize=1)
def _macros():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("fairfoundry.audit", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template("charts.svg.j2").module


def render_bars(panels: list[dict]) -> str:
    """HTML of bar panels (from :func:`bar_panels`)."""
    return str(_macros().bars(panels))


def render_heatmap(h: dict) -> str:
    """HTML of a heatmap (from :func:`heatmap`)."""
    return str(_macros().heatmap(h))
