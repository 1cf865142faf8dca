"""``audit.html``: the audit as one self-contained page (tables + inline SVG charts)."""

from __future__ import annotations

import functools
import math

from ..report import render_page
from ..report import table_html as _table_html

__all__ = ["audit_html"]


def _fmt_pct(x) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


#: columns that hold numbers (or suppressed counts / formatted shares): right-aligned.
_NUMERIC_COLUMNS = ("n", "n_patients", "positives", "n_unknown", "n_groups", "smallest",
                    "largest", "prevalence", "difference", "ratio", "min_max_ratio",
                    "effective_groups", "effective_groups_simpson", "evenness", *(
                        "share", "share_known", "share_unknown", "reference_share",
                        "share_among_known"))


def table_html(frame, **kwargs) -> str:
    """The report table with numeric-looking columns right-aligned."""
    return _table_html(frame, right=[c for c in frame.columns if c in _NUMERIC_COLUMNS], **kwargs)


#: float columns shown as percentages in the HTML tables (the JSON and CSV keep fractions).
_PCT_COLUMNS = ("share", "share_known", "share_unknown", "prevalence", "reference_share",
                "share_among_known")


def _pretty(frame):
    """A copy of ``frame`` for reading: shares as percentages, share differences in percentage
    points, booleans as yes/no, no empty ``class`` column."""
    import pandas as pd

    out = frame.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = [("—" if v is None else v) for v in out[c]]
        col = out[c]
        if c in _PCT_COLUMNS or str(c).startswith("share_"):
            out[c] = [_fmt_pct(v) if isinstance(v, float) else v for v in col]
        elif c == "difference":
            out[c] = [f"{100 * v:+.1f} pp" if isinstance(v, float) and not math.isnan(v) else v
                      for v in col]
        elif col.dtype == bool:
            out[c] = col.map({True: "yes", False: "no"})
    if "class" in out.columns:
        if out["class"].isna().all() or all(v is None for v in out["class"]):
            out = out.drop(columns="class")
        else:
            out["class"] = out["class"].where(out["class"].notna(), "—")
    return out if isinstance(out, pd.DataFrame) else frame


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _bar_grid(audit):
    """Share of images per group, one panel per attribute (suppressed groups get no bar: its
    length would reveal the count, only a label; red ticks: reference population)."""
    from ._charts import GREY, Bar, bar_panels, render_bars

    attrs = [a for a in audit.attributes if a not in ("region", "income_group")]
    if not attrs:
        return None
    k = audit.min_group_size
    ref = audit.representation
    panels = []
    for a in attrs:
        sub = audit.groups[audit.groups["attribute"] == a].head(15)
        ticks: dict[str, list[float]] = {}
        if ref is not None and len(ref):
            rsub = ref[ref["attribute"] == a]
            for g, r in zip(rsub["group"], rsub["reference_share"], strict=True):
                ticks.setdefault(str(g), []).append(float(r))
        bars = []
        for g, n, share in zip(sub["group"], sub["n"], sub["share"], strict=True):
            small = 0 < n < k
            bars.append(Bar(label=str(g), value=0.0 if small else float(share),
                            text=f"<{k} images" if small else _pct(share),
                            color=GREY if g == "unknown" else "#3a78d8",
                            text_color="#b07d00" if small else "#333",
                            ticks=ticks.get(str(g), [])))
        panels.append((a, bars))
    return render_bars(bar_panels(panels, xlabel="share of images"))


def _missing_fig(audit):
    """Share of images whose attribute is known, one bar per canonical attribute."""
    from ._charts import BLUE, GREY, Bar, bar_panels, render_bars

    m = audit.missingness
    k = audit.min_group_size
    bars = []
    for a, rec, unk, n_unk in zip(m["attribute"], m["recorded"], m["share_unknown"],
                                  m["n_unknown"], strict=True):
        if not rec:
            text = "not recorded"
        elif 0 < n_unk < k:  # the share would reveal a suppressed count
            text = f"<{k} unknown"
        else:
            text = f"{100 * (1 - unk):.1f} % known"
        bars.append(Bar(label=str(a), value=1 - float(unk), text=text,
                        color=BLUE if rec else GREY, text_color="#333" if rec else "#8a8f99"))
    return render_bars(bar_panels([("known values", bars)],
                                  xlabel="share of images with the attribute known", span=260))


def _heatmap(audit, inter):
    """Images per cell of a two-attribute intersection (log colour scale)."""
    import pandas as pd

    from ..groups import intersection_attribute, split_intersection
    from ._charts import heatmap, render_heatmap

    name = intersection_attribute(inter)
    sub = audit.groups[audit.groups["attribute"] == name]
    if sub.empty:
        return None
    parts = pd.DataFrame([[v for _, v in split_intersection(g)] for g in sub["group"]])

    def ordered(attr, seen):
        order = audit.groups.loc[audit.groups["attribute"] == attr, "group"].astype(str).tolist()
        rank = {g: i for i, g in enumerate(order)}
        return sorted(dict.fromkeys(seen), key=lambda g: (rank.get(g, len(rank)), g))[:20]

    rows = ordered(inter[0], parts[0])
    cols = ordered(inter[1], parts[1])
    mat = [[0] * len(cols) for _ in rows]
    for r, c, n in zip(parts[0], parts[1], sub["n"], strict=True):
        if r in rows and c in cols:
            mat[rows.index(r)][cols.index(c)] = int(n)
    return render_heatmap(heatmap(f"images per {name}", rows, cols, mat,
                                  k=audit.min_group_size, xlabel=inter[1], ylabel=inter[0]))


def _geo_fig(audit):
    """Share of images by income group, region and country (zero-image groups named)."""
    from ._charts import TEAL, Bar, bar_panels, render_bars

    geo = audit.geography
    levels = [lv for lv in ("income_group", "region", "country") if (geo["level"] == lv).any()]
    if not levels:
        return None
    panels = []
    for lv in levels:
        sub = geo[geo["level"] == lv].head(15)
        panels.append((lv, [Bar(label=str(g), value=float(s), color=TEAL,
                                text="0 images" if n == 0 else _pct(s),
                                text_color="#c0392b" if n == 0 else "#333")
                            for g, n, s in zip(sub["group"], sub["n"], sub["share"], strict=True)]))
    return render_bars(bar_panels(panels, xlabel="share of images"))


def _coverage_section(audit) -> str:
    """This dataset next to every shipped spec: which protected attributes are recorded."""
    import pandas as pd

    from ..data import COVERAGE_ATTRIBUTES, coverage_matrix

    cov = coverage_matrix().reset_index()
    miss = audit.missingness.set_index("attribute")
    groups = audit.groups
    row = {"dataset": f"» {audit.dataset or 'this manifest'}"}
    for a in COVERAGE_ATTRIBUTES:
        known = a in miss.index and miss.loc[a, "recorded"] and miss.loc[a, "share_unknown"] < 1
        n_groups = int(((groups["attribute"] == a) & (groups["group"] != "unknown")).sum())
        row[a] = "-" if not known else ("dataset" if n_groups == 1 else "image")
    row["n_recorded"] = sum(row[a] == "image" for a in COVERAGE_ATTRIBUTES)
    if audit.spec is not None:
        cov = cov[cov["dataset"] != audit.spec.name]
    cov = pd.concat([pd.DataFrame([row]), cov], ignore_index=True)
    return ("<h3>Coverage across datasets</h3><p class=\"meta\">Which protected attributes each "
            "dataset spec shipped with fairfoundry records (image: per image or patient; "
            "dataset: one value for the whole dataset; -: not recorded), with this dataset on "
            "the first row. Compare Table 2 of Jin et al., arXiv 2502.16841.</p>"
            + table_html(cov, left=["dataset", *COVERAGE_ATTRIBUTES]))


def _unit(audit) -> tuple[str | None, str]:
    """What ``n_patients`` counts: ``patients``, ``lesions`` (HAM10000's ids are lesions), or
    None when the dataset has no patient ids (Fitzpatrick17k), with the reason."""
    spec = audit.spec
    if spec is not None:
        col = getattr(spec, "patient_id", None)
        if not col:
            return None, f"{spec.name} records none; each image is counted alone"
        if "lesion" in str(col).lower():
            return "lesions", ""
        return "patients", ""
    if not audit.config.get("patient_ids", True):
        return None, "the manifest has no patient_id column"
    return "patients", ""


def _share_ci(audit, attribute: str, group: str, unit: str | None) -> tuple[float, float, float, int, str, int]:
    """Share of ``group`` among the known values of ``attribute`` with its 95 % Wilson interval.

    The sample size is the number of independent units: patients (or lesions) when the dataset
    has them, since images of one patient are not independent draws, else images. Returns
    (share, low, high, n units, unit word, units in the group)."""
    from ..metrics._bootstrap import proportion_interval

    g = audit.groups[(audit.groups["attribute"] == attribute) & (audit.groups["group"] != "unknown")]
    col = "n_patients" if unit is not None and "n_patients" in g.columns else "n"
    x = g.loc[g["group"] == group, col]
    x = float(x.iloc[0]) if len(x) else 0.0
    n = float(g[col].sum())
    if n <= 0:
        return float("nan"), float("nan"), float("nan"), 0, unit or "images", 0
    lo, hi = proportion_interval(x, n)
    return x / n, lo, hi, int(n), unit or "images", int(x)


def _pct_ci(share: float, lo: float, hi: float) -> str:
    return f"{100 * share:.1f}% [95% CI {100 * lo:.1f}-{100 * hi:.1f}%]"


def headline(audit) -> list[str]:
    """The audit in words: who is missing, and the largest imbalance, each backed by counts and,
    for shares, a 95 % Wilson interval over the independent units (patients or lesions where the
    dataset has them, else images). "Under-represented" is said only when the whole interval of
    the share is below 0.8 of the reference share (the four-fifths rule of thumb); a point
    estimate below it with an interval that is not is "too few to judge"."""
    k = audit.min_group_size
    unit, _ = _unit(audit)
    out = []
    s = audit.summary()
    if s["attributes_missing"]:
        out.append(f"Not recorded: {', '.join(s['attributes_missing'])}, so fairness by them "
                   "cannot be checked on this data.")
    miss = audit.missingness
    partly = miss[miss["recorded"] & (miss["share_unknown"] >= 0.05) & (miss["share_unknown"] < 1)]
    if len(partly):
        worst = partly.sort_values("share_unknown").iloc[-1]
        out.append(f"Most often unknown: {worst['attribute']} ({int(worst['n_unknown']):,} of "
                   f"{s['n_samples']:,} images, {100 * worst['share_unknown']:.1f}%).")
    geo = audit.geography
    absent = geo[(geo["level"].isin(["region", "income_group"])) & (geo["n"] == 0)]
    if len(absent):
        out.append("No images from " + ", ".join(absent["group"].astype(str)) + ".")
    rep = audit.representation
    if len(rep):
        low = rep[rep["ratio"] < 0.8].sort_values("ratio")  # the four-fifths rule of thumb
        unsure = []
        said = 0
        for r in low.itertuples(index=False):
            share, lo, hi, n, what, _ = _share_ci(audit, r.attribute, r.group, unit)
            if not (hi / r.reference_share < 0.8):
                unsure.append(f"{r.attribute}={r.group}")
                continue
            if said < 3:
                out.append(f"{r.attribute}={r.group} is under-represented: {_pct_ci(share, lo, hi)} of "
                           f"{n:,} {what} with a known value vs {100 * r.reference_share:.1f}% in the "
                           f"reference (ratio {share / r.reference_share:.2f}; the whole interval is under "
                           "0.8 of the reference).")
                said += 1
        if unsure:
            out.append("Below 0.8 of the reference on the point estimate but too few to judge (the 95% "
                       "interval reaches 0.8): " + ", ".join(unsure) + ".")
    imb = audit.imbalance
    imb = imb[(imb["n_groups"] >= 2) & imb["attribute"].isin(audit.attributes)]
    if len(imb):
        worst = imb.sort_values("min_max_ratio").iloc[0]
        g = audit.groups[(audit.groups["attribute"] == worst["attribute"])
                         & (audit.groups["group"] != "unknown")]
        small = g.sort_values("n").iloc[0]
        large = g.sort_values("n").iloc[-1]

        def count(n):
            return f"<{k}" if 0 < n < k else f"{int(n):,}"

        detail = ""
        if small["n"] >= k:
            share, lo, hi, n, what, x = _share_ci(audit, worst["attribute"], small["group"], unit)
            units = f"{x:,} {what}, " if unit is not None else ""
            detail = (f" ({worst['min_max_ratio']:.2g} of the largest; {units}{_pct_ci(share, lo, hi)} of "
                      f"{n:,} {what} with a known {worst['attribute']})")
        out.append(f"Largest imbalance: {worst['attribute']}, where {small['group']} has "
                   f"{count(small['n'])} images{detail} and {large['group']} {count(large['n'])}.")
    return out


@functools.lru_cache(maxsize=1)
def _templates():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("fairfoundry.audit", "templates"),
                              autoescape=True, trim_blocks=True, lstrip_blocks=True)


def audit_html(audit, *, title: str | None = None) -> str:
    """Render an :class:`~fairfoundry.audit.Audit` as a self-contained HTML page (the body is
    the jinja2 template ``templates/audit.html.j2``, autoescaped)."""
    from markupsafe import Markup, escape

    s = audit.summary()
    name = audit.dataset or "manifest"
    title = title or f"Data audit: {name}"
    k = audit.min_group_size
    unit, no_unit = _unit(audit)

    def tab(frame, **kw):
        shown = _pretty(frame)
        if "n_patients" in shown.columns:
            shown = (shown.drop(columns="n_patients") if unit is None
                     else shown.rename(columns={"n_patients": f"n_{unit}"}))
        return Markup(table_html(shown, **kw))

    def fig(svg, caption):
        if svg is None:
            return ""
        return Markup("<figure>") + Markup(svg) + Markup("<figcaption>{}</figcaption></figure>").format(
            caption)

    sections = [
        {"title": "Missingness of protected attributes", "parts": [
            fig(_missing_fig(audit), "Share of images whose attribute is known."),
            tab(audit.suppressed_missingness(), left=["attribute"]),
            Markup(_coverage_section(audit))]},
        {"title": "Who is in the data", "parts": [
            fig(_bar_grid(audit), f"Share of images per group (groups with fewer than {k} images "
                "are labelled, not drawn; grey: unknown; red ticks: reference population)."),
            tab(audit.suppressed(audit.groups[audit.groups["attribute"].isin(audit.attributes)]),
                left=["attribute", "group"])]},
        {"title": "Imbalance", "meta": "min/max ratio = smallest / largest known group (1 is "
         "balanced); effective groups = exp(Shannon entropy) of the group shares (equals the "
         "number of groups when balanced).",
         "parts": [tab(audit.suppressed_imbalance(), left=["attribute"], float_format="{:.3g}")]},
    ]
    if audit.intersections:
        first = audit.intersections[0]
        inter = audit.groups[~audit.groups["attribute"].isin(audit.attributes)]
        sections.append({"title": "Intersections", "parts": [
            fig(_heatmap(audit, first) if len(first) == 2 else None,
                f"Images per {' × '.join(first)}."),
            tab(audit.suppressed(inter), left=["attribute", "group"], max_rows=300)]})
    if len(audit.representation):
        sections.append({"title": "Representation vs reference population", "meta": "ratio = "
                         "share among known values / reference share (1 = represented as in "
                         "the reference, <1 under-represented).", "parts": [
                             tab(audit.suppressed(audit.representation),
                                 left=["attribute", "group"], float_format="{:.3g}")]})
    if len(audit.geography):
        sections.append({"title": "Geography", "parts": [
            fig(_geo_fig(audit), "Images by World Bank income group (FY2025), UN M49 region "
                "and country."),
            tab(audit.suppressed(audit.geography), left=["level", "group"])]})
    if len(audit.prevalence):
        single_prev = audit.prevalence[audit.prevalence["attribute"].isin(audit.attributes)]
        sections.append({"title": "Label prevalence by group", "parts": [
            tab(audit.suppressed(single_prev), left=["attribute", "group", "label", "class"],
                max_rows=400)]})
    if len(audit.small_groups):
        sections.append({"title": f"Small groups (< {k} images)", "parts": [
            tab(audit.suppressed(audit.small_groups), left=["attribute", "group"])]})
    leak = []
    one = {"patients": "patient", "lesions": "lesion"}.get(unit or "", "patient")
    if audit.leakage is None:
        leak.append(Markup("<p>No split or patient column: leakage not checked.</p>"))
    elif unit is None:
        leak.append(Markup(f"<p>No patient ids ({escape(no_unit)}): leakage of a patient across splits "
                           "cannot be checked; near-duplicate images can still leak (see "
                           "<code>fairfoundry curate</code>).</p>"))
    elif len(audit.leakage) == 0:
        extra = (" (lesion ids: several lesions of one patient can still straddle splits)"
                 if unit == "lesions" else "")
        leak.append(Markup(f"<p>No {one} appears in more than one split{extra}.</p>"))
    else:
        leak.append(Markup(table_html(audit.leakage.rename(columns={"patient_id": f"{one}_id"}),
                                      left=[f"{one}_id", "splits"])))
    if audit.duplicates is None:
        leak.append(Markup("<p>Exact duplicates not checked (use <code>--duplicates</code>).</p>"))
    elif len(audit.duplicates) == 0:
        leak.append(Markup("<p>No byte-identical image files.</p>"))
    else:
        leak.append(Markup(table_html(audit.duplicates, left=["sample_id", "path", "sha256"])))
    sections.append({"title": "Leakage and duplicates", "parts": leak})
    if audit.problems is not None and len(audit.problems):
        sections.append({"title": "Unreadable files", "parts": [
            Markup(table_html(audit.problems, left=["path", "error"]))]})
    body = _templates().get_template("audit.html.j2").render(
        spec=audit.spec, s=s, k=k, unit=unit, no_unit_reason=no_unit, headline=headline(audit),
        warnings=audit.warnings, notes=audit.notes, sections=sections)
    subtitle = f"{s['n_samples']:,} images" + (f", {s['n_patients']:,} {unit}" if unit else "")
    return render_page(title, body, subtitle=subtitle)
