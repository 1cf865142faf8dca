"""HTML pages of the synth package, rendered from jinja2 templates (autoescaped)."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

__all__ = ["render_qc_html", "render_pilot_html", "fmt"]


def fmt(v, digits: int = 3) -> str:
    """One number format for every page: NaN as an em dash, floats with ``digits`` significant digits."""
    if v is None:
        return "—"
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        return f"{v:.{digits}g}"
    return str(v)


def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("fairfoundry.synth", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = fmt
    return env


def _thumb(path: str) -> str:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if im.mode in ("L", "I", "I;16") else "RGB")
        buf = io.BytesIO()
        im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _records(frame) -> tuple[list[str], list[list[str]]]:
    cols = [str(c) for c in frame.columns]
    return cols, [[fmt(v) for v in row] for row in frame.itertuples(index=False)]


def render_qc_html(path, *, table, per_sample, classifiers, encoder: str, copy_threshold: float, real: str,
                   synthetic: str, per_cell_images: int = 24) -> Path:
    """Write the QC page: image grids per cell (accepted and rejected marked), the QC table, the classifiers."""
    from .._io import write_text_atomic

    grids = []
    for group, sub in per_sample.groupby("group", sort=True):
        items = [{"src": _thumb(r.path), "ok": bool(r.qc_pass), "title": f"{r.sample_id}: {r.reason or 'pass'}"}
                 for r in sub.head(per_cell_images).itertuples(index=False)]
        grids.append({"group": str(group), "items": items, "n": len(sub), "n_pass": int(sub["qc_pass"].sum())})
    cols, rows = _records(table)
    ccols, crows = _records(classifiers)
    rej = per_sample[per_sample["qc_pass"] == 0][["sample_id", "group", "nn_ratio", "reason"]]
    rcols, rrows = _records(rej)
    html = _env().get_template("qc.html.j2").render(
        encoder=encoder, copy_threshold=copy_threshold, real=real, synthetic=synthetic, grids=grids,
        cols=cols, rows=rows, ccols=ccols, crows=crows, rcols=rcols, rrows=rrows, n_rejected=len(rej))
    return write_text_atomic(Path(path), html)


def render_pilot_html(path, *, context: dict) -> Path:
    """Write the synthetic-pilot report (``context``: plain, already formatted data)."""
    from .._io import write_text_atomic

    ctx = dict(context)
    for key in ("arms", "delta", "qc"):
        ctx[key + "_cols"], ctx[key + "_rows"] = _records(ctx.pop(key))
    return write_text_atomic(Path(path), _env().get_template("pilot.html.j2").render(**ctx))
