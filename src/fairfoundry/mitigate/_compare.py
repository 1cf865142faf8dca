"""Side-by-side comparison of fit runs: a table and a utility-vs-fairness plot with the Pareto front."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..adapt._selection import pareto_front

__all__ = ["write_comparison", "comparison_means"]


def comparison_means(table, *, gap_col: str):
    """Mean over seeds per method of ``auc`` and ``gap_col``, with the Pareto front flag."""
    g = table.groupby("method", sort=False)
    means = g[["auc", gap_col]].mean().reset_index()
    means["seeds"] = g.size().to_numpy()
    means["pareto"] = pareto_front(means["auc"].to_numpy(), means[gap_col].to_numpy())
    return means


def write_comparison(path: Path, table, *, sensitive: list[str], config) -> Path:
    """Write ``comparison.html``: per-run table and, per attribute, AUC vs equalized-odds gap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._io import write_text_atomic
    from ..report._html import esc, figure_html, render_page, table_html

    body = [f"<p class='meta'>Head <code>{esc(config.head)}</code>, selection <code>{esc(config.select)}</code> on "
            "validation, test metrics with bootstrap 95% CIs. A method is on the Pareto front when no other has "
            "both higher AUC and a smaller gap (means over seeds).</p>"]
    for attr in sensitive:
        gap = f"{attr}:equalized_odds_difference"
        if "auc" not in table.columns or gap not in table.columns:
            continue
        means = comparison_means(table, gap_col=gap)
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for d in table.to_dict(orient="records"):
            xerr = np.array([[d["auc"] - d["auc_ci_low"]], [d["auc_ci_high"] - d["auc"]]])
            yerr = np.array([[d[gap] - d[gap + "_ci_low"]], [d[gap + "_ci_high"] - d[gap]]])
            ax.errorbar(d["auc"], d[gap], xerr=np.abs(xerr), yerr=np.abs(yerr), fmt="o", alpha=0.35,
                        color=f"C{list(means['method']).index(d['method']) % 10}")
        for j, r in means.iterrows():
            ax.scatter(r["auc"], r[gap], s=90, marker="*" if r["pareto"] else "D", color=f"C{j % 10}",
                       edgecolor="k", zorder=3, label=r["method"] + (" (Pareto)" if r["pareto"] else ""))
        front = means[means["pareto"]].sort_values("auc")
        ax.plot(front["auc"], front[gap], "k--", lw=1)
        ax.set_xlabel("test AUC (higher is better)")
        ax.set_ylabel(f"equalized-odds difference by {attr} (lower is fairer)")
        ax.legend(fontsize=7, loc="best")
        body.append(f"<h2>{esc(attr)}</h2>")
        body.append(figure_html(fig, caption=f"Utility vs fairness by {attr}: points are runs with 95% CIs, "
                                              "large markers are means over seeds."))
        body.append(table_html(means, left=["method"]))
    body.append("<h2>All runs</h2>")
    body.append(table_html(table, left=["method", "stage"]))
    return write_text_atomic(path, render_page("fairfoundry fit: methods compared", "\n".join(body)))
