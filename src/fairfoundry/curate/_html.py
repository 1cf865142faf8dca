"""The HTML page of every ``curate`` command: one jinja2 template (autoescaped), plain data in."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["render_page", "table", "fmt", "cluster_size_figure", "composition_table", "thumbnails"]


def fmt(v) -> str:
    """One number format for HTML cells: NaN as an em dash, floats to 4 significant digits."""
    if v is None:
        return "—"
    if isinstance(v, (float, np.floating)):
        return "—" if not math.isfinite(float(v)) else f"{float(v):.4g}"
    return str(v)


def table(frame, *, caption: str = "", max_rows: int = 200) -> dict:
    """A DataFrame as a template table (first ``max_rows`` rows, formatted)."""
    rows = [[fmt(v) for v in r] for r in frame.head(max_rows).itertuples(index=False)]
    return {"caption": caption, "columns": [str(c) for c in frame.columns], "rows": rows,
            "more": max(0, len(frame) - max_rows)}


def render_page(*, title: str, summary: Sequence[str], sections: Sequence[dict], seed: int | None) -> str:
    import jinja2

    from .. import __version__

    env = jinja2.Environment(loader=jinja2.PackageLoader("fairfoundry.curate", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    from datetime import datetime, timezone

    return env.get_template("curate.html.j2").render(
        title=title, summary=list(summary), sections=list(sections), seed=seed, version=__version__,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def cluster_size_figure(before: np.ndarray, after: np.ndarray, *, what: str = "cluster") -> dict:
    """Bar chart of cluster sizes before and after curation (clusters sorted by size before)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..report import figure_to_data_uri

    order = np.argsort(-np.asarray(before), kind="stable")
    fig, ax = plt.subplots(figsize=(8, 3))
    x = np.arange(len(order))
    ax.bar(x, np.asarray(before)[order], color="#c9cfdb", label="before")
    ax.bar(x, np.asarray(after)[order], color="#3a78d8", label="after")
    ax.set_yscale("log")
    ax.set_xlabel(f"{what} (sorted by size before)")
    ax.set_ylabel("rows")
    ax.legend()
    fig.tight_layout()
    src = figure_to_data_uri(fig)
    plt.close(fig)
    return {"src": src, "caption": f"{what} sizes before (grey) and after (blue) curation, log scale"}


def composition_table(manifest, keep: np.ndarray, columns: Sequence[str], *, bins: dict | None = None):
    """Group composition before and after (counts and shares) for each recorded attribute."""
    import pandas as pd

    from ._proxies import attribute_codes

    rows = []
    for col in columns:
        if col not in manifest.columns:
            continue
        codes, names = attribute_codes(manifest, col, bins=(bins or {}).get(col))
        nb = np.bincount(codes, minlength=len(names))
        na = np.bincount(codes[keep], minlength=len(names))
        for g, name in enumerate(names):
            rows.append({"attribute": col, "group": name, "n_before": int(nb[g]),
                         "share_before": nb[g] / max(nb.sum(), 1), "n_after": int(na[g]),
                         "share_after": na[g] / max(na.sum(), 1)})
    return pd.DataFrame(rows, columns=["attribute", "group", "n_before", "share_before", "n_after", "share_after"])


def thumbnails(manifest, groups: dict[str, np.ndarray], *, per_group: int = 8, max_groups: int = 12) -> list[dict]:
    """Small PNG thumbnails (data URIs) of some rows of each group; empty without a ``path`` column."""
    import base64

    from PIL import Image

    from .._errors import FairfoundryError
    from ._inputs import image_paths, load_gray

    if "path" not in manifest.columns:
        return []
    paths = image_paths(manifest)
    out = []
    for label, rows in list(groups.items())[:max_groups]:
        imgs = []
        for i in list(rows)[:per_group]:
            try:
                im = load_gray(paths[int(i)], manifest=manifest, row=int(i))
            except FairfoundryError:
                continue
            im.thumbnail((72, 72), Image.BILINEAR)
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            imgs.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
        out.append({"label": label, "images": imgs})
    return out
