"""Tables of an evaluation for a paper: Markdown and LaTeX (:meth:`Evaluation.to_markdown`,
:meth:`Evaluation.to_latex`, ``fairfoundry evaluate --tables md,tex``).

Two tables: per-group metrics (one row per label, attribute and group: ``n`` with thousand
separators, then ``estimate [low, high]`` per metric) and the gaps between groups (one row per
label and attribute). Cells come from :func:`format_estimate`, the formatting shared with the HTML
report; user text (labels, attributes, group names) is escaped for the target format, so a group
called ``a|b`` or ``50%`` cannot break the table. Suppressed cells read ``suppressed``.
"""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["publication_tables", "markdown_tables", "latex_tables", "format_estimate",
           "TABLE_METRICS", "GAP_METRICS", "latex_escape"]

#: per-group metrics of the publication table (a subset of ``evaluation.csv``)
TABLE_METRICS = ("auc", "tpr", "fpr", "ppv", "ece")
#: summaries of the gaps table
GAP_METRICS = ("auc_gap", "tpr_gap", "fpr_gap", "ppv_gap", "equalized_odds_difference")
_HEAD = {"auc": "AUC", "tpr": "TPR", "fpr": "FPR", "ppv": "PPV", "ece": "ECE", "n": "n",
         "auc_gap": "AUC gap", "tpr_gap": "TPR gap", "fpr_gap": "FPR gap", "ppv_gap": "PPV gap",
         "equalized_odds_difference": "EOdds diff."}


def format_estimate(est, lo=math.nan, hi=math.nan, *, digits: int = 3) -> str:
    """``0.812 [0.790, 0.833]``; ``0.812`` without a CI; an em dash when undefined."""
    if est is None or not math.isfinite(float(est)):
        return "—"
    if lo is not None and hi is not None and math.isfinite(float(lo)) and math.isfinite(float(hi)):
        return f"{est:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    return f"{est:.{digits}f}"


def _labels(ev, labels) -> list[str]:
    have = list(dict.fromkeys(ev.by_group["label"]))
    if labels is None:
        return [lab for lab in have if lab != "any_finding"]
    return [lab for lab in labels if lab in have]


def publication_tables(ev, *, labels=None, metrics=TABLE_METRICS, gaps=GAP_METRICS,
                       digits: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-group and the gaps table of ``ev`` as DataFrames of formatted text."""
    labels = _labels(ev, labels)
    t = ev.by_group[ev.by_group["label"].isin(labels)
                    & ev.by_group["metric"].isin(("n", *metrics))]
    cell = [("suppressed" if str(r).startswith("suppressed") else
             (f"{int(e):,}" if m == "n" and math.isfinite(e) else
              format_estimate(e, lo, hi, digits=digits)))
            for e, lo, hi, r, m in zip(t["estimate"], t["ci_low"], t["ci_high"], t["reason"],
                                       t["metric"], strict=True)]
    per = t.assign(value=cell).pivot_table(index=["label", "attribute", "group"], columns="metric",
                                           values="value", aggfunc="first", sort=False)
    per = per[[m for m in ("n", *metrics) if m in per.columns]].reset_index().fillna("—")
    per = per.rename(columns=_HEAD)
    s = ev.summary_table[ev.summary_table["label"].isin(labels)
                         & ev.summary_table["metric"].isin(gaps)]
    gcell = [format_estimate(e, lo, hi, digits=digits)
             for e, lo, hi in zip(s["estimate"], s["ci_low"], s["ci_high"], strict=True)]
    gap = s.assign(value=gcell).pivot_table(index=["label", "attribute"], columns="metric",
                                            values="value", aggfunc="first", sort=False)
    gap = gap[[m for m in gaps if m in gap.columns]].reset_index().fillna("—").rename(columns=_HEAD)
    return per, gap


def _md_cell(text) -> str:
    from .._io import md_escape

    return md_escape(str(text)) if str(text) != "—" else "—"


def _md(frame: pd.DataFrame) -> str:
    # user text (label, attribute, group) is escaped; the number cells are ours
    cols = list(frame.columns)
    num = [c not in ("label", "attribute", "group") for c in cols]
    out = ["| " + " | ".join(_md_cell(c) for c in cols) + " |",
           "|" + "|".join("---:" if r else "---" for r in num) + "|"]
    for rec in frame.itertuples(index=False):
        out.append("| " + " | ".join(str(v) if r else _md_cell(v)
                                     for v, r in zip(rec, num, strict=True)) + " |")
    return "\n".join(out)


def _caption(ev) -> str:
    conf = float(ev.config.get("confidence", 0.95))
    n_boot = int(ev.config.get("bootstrap", 0))
    split = ev.info.get("report_split")
    where = f"split {split}" if split else "all rows"
    how = (f"{conf:.0%} bootstrap CIs ({n_boot:,} replicates"
           + (f", clustered by {ev.config.get('cluster')}" if ev.config.get("cluster") else "")
           + ")" if n_boot else "point estimates (no bootstrap)")
    return (f"{ev.info.get('n_report_rows', 0):,} rows of {where}; {how}; thresholds: "
            f"{ev.config.get('threshold')}.")


def markdown_tables(ev, **kwargs) -> str:
    """Both tables as GitHub-flavoured Markdown, with a caption line each."""
    per, gap = publication_tables(ev, **kwargs)
    cap = _caption(ev)
    return (f"**Per-group metrics.** {_md_cell(cap)}\n\n{_md(per)}\n\n"
            f"**Gaps between groups** (max - min over groups; 0 = no difference). "
            f"{_md_cell(cap)}\n\n{_md(gap)}\n")


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
          "<": r"\textless{}", ">": r"\textgreater{}", "—": "---"}


def latex_escape(text) -> str:
    """User text for LaTeX: the ten special characters (and ``< > —``) written as commands."""
    return "".join(_LATEX.get(ch, ch) for ch in str(text).replace("\n", " "))


def _tex(frame: pd.DataFrame, caption: str, label: str) -> str:
    cols = list(frame.columns)
    spec = "".join("l" if c in ("label", "attribute", "group") else "r" for c in cols)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(caption)}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(v) for v in rec) + r" \\"
              for rec in frame.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def latex_tables(ev, **kwargs) -> str:
    """Both tables as LaTeX ``table`` floats (``booktabs`` rules: ``\\usepackage{booktabs}``)."""
    per, gap = publication_tables(ev, **kwargs)
    cap = _caption(ev)
    return (f"% fairfoundry evaluation tables; needs \\usepackage{{booktabs}}\n"
            f"{_tex(per, 'Per-group metrics. ' + cap, 'tab:fairness-per-group')}\n\n"
            f"{_tex(gap, 'Gaps between groups (max - min; 0 = no difference). ' + cap, 'tab:fairness-gaps')}\n")
