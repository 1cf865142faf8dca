r"""Ranking methods across datasets: Friedman test, Iman-Davenport correction, Nemenyi CD.

The procedure of Demšar, "Statistical comparisons of classifiers over multiple data sets",
JMLR 7 (2006), section 3.2.2, as MEDFAIR (Zong et al., ICLR 2023) uses it to rank fairness
methods. Written from the paper's formulas; ``autorank`` and ``scikit-posthocs`` serve only as
test oracles.

With :math:`N` datasets (blocks) and :math:`k` methods, :math:`R_j` the average rank of method
:math:`j` (rank 1 is best, ties get their mean rank):

.. math::

    \chi^2_F = \frac{12N}{k(k+1)}\Big[\sum_j R_j^2 - \frac{k(k+1)^2}{4}\Big], \qquad
    F_F = \frac{(N-1)\chi^2_F}{N(k-1) - \chi^2_F}

:math:`\chi^2_F` is referred to :math:`\chi^2_{k-1}` and :math:`F_F` (Iman & Davenport, 1980)
to :math:`F_{k-1,(k-1)(N-1)}`. Two methods differ (Nemenyi) when their average ranks differ by at
least the critical difference

.. math:: \mathrm{CD} = q_\alpha \sqrt{\frac{k(k+1)}{6N}},

with :math:`q_\alpha` the studentized range quantile for :math:`k` means and infinite degrees
of freedom divided by :math:`\sqrt 2` (Demšar's Table 5: 2.569 for k = 4 at alpha = 0.05).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._errors import FairfoundryError

__all__ = ["FriedmanResult", "average_ranks", "friedman_from_ranks", "friedman_test", "nemenyi_cd", "plot_cd_diagram"]


def average_ranks(scores, *, higher_is_better: bool = True) -> np.ndarray:
    """Rank methods within each dataset (rows) and average over datasets.

    Parameters
    ----------
    scores : array of shape (N datasets, k methods)
    higher_is_better : rank 1 goes to the highest score when True, the lowest when False.

    Returns
    -------
    array of shape (k,): mean rank of each method (ties share their mean rank).
    """
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=float)
    if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 2:
        raise FairfoundryError(f"scores must be a (datasets x methods) table with at least two methods, "
                               f"got shape {s.shape}")
    if np.isnan(s).any():
        raise FairfoundryError("scores contain NaN: every method needs a value on every dataset")
    ranks = rankdata(-s if higher_is_better else s, axis=1)
    return ranks.mean(axis=0)


def nemenyi_cd(k: int, n: int, *, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks for ``k`` methods on ``n`` datasets."""
    from scipy.stats import studentized_range

    if k < 2 or n < 1:
        raise FairfoundryError(f"the critical difference needs k >= 2 methods and n >= 1 datasets, got k={k}, n={n}")
    q = studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(k * (k + 1) / (6.0 * n)))


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman / Iman-Davenport test and Nemenyi critical difference of one rank table."""

    methods: tuple[str, ...]
    average_ranks: tuple[float, ...]
    n_datasets: int
    chi2_f: float
    p_chi2: float
    f_f: float
    p_f: float
    cd: float
    alpha: float

    def differs(self, a: str, b: str) -> bool:
        """Whether methods ``a`` and ``b`` differ by at least the critical difference."""
        r = dict(zip(self.methods, self.average_ranks, strict=True))
        return abs(r[a] - r[b]) >= self.cd

    def to_frame(self) -> pd.DataFrame:
        """One row per method, best average rank first."""
        return (pd.DataFrame({"method": self.methods, "average_rank": self.average_ranks})
                .sort_values("average_rank").reset_index(drop=True))

    def sentence(self) -> str:
        """The result in words, with the test and its p-value (no claim without evidence)."""
        best = self.to_frame()
        ff = (f"Iman-Davenport F_F = {self.f_f:.2f} (p = {self.p_f:.3g})" if np.isfinite(self.f_f) else
              f"F_F undefined (identical ranks on every dataset; chi2 p = {self.p_chi2:.3g})")
        head = (f"Friedman test over {self.n_datasets} datasets and {len(self.methods)} methods: "
                f"chi2_F = {self.chi2_f:.2f}, {ff}; Nemenyi CD = {self.cd:.3f} at alpha = {self.alpha:g}.")
        if self.n_datasets < 3:
            return head + " Too few datasets to rank methods: no method is shown better."
        if not (self.p_f < self.alpha):
            return head + " The methods' ranks do not differ significantly: no method is shown better."
        top, rank = best["method"].iloc[0], best["average_rank"].iloc[0]
        beaten = [m for m, r in zip(best["method"], best["average_rank"], strict=True) if r - rank >= self.cd]
        if not beaten:
            return head + (f" {top} ranks best ({rank:.2f}) but differs from no other method by the "
                           "critical difference.")
        return head + f" {top} ranks best ({rank:.2f}) and differs significantly from " + ", ".join(beaten) + "."


def friedman_test(scores, *, methods=None, higher_is_better: bool = True,
                  alpha: float = 0.05) -> FriedmanResult:
    """Friedman test with Iman-Davenport correction and the Nemenyi critical difference.

    Parameters
    ----------
    scores : DataFrame (rows datasets, columns methods) or array of shape (N, k)
    methods : names of the k columns (taken from the DataFrame's columns when omitted)
    higher_is_better : whether a higher score ranks first (AUC: True; a gap: False)
    alpha : significance level of the tests and of the critical difference

    Returns
    -------
    FriedmanResult

    Examples
    --------
    >>> r = friedman_test([[0.9, 0.8, 0.7], [0.85, 0.8, 0.6], [0.95, 0.7, 0.75]], methods=["a", "b", "c"])
    >>> [round(x, 2) for x in r.average_ranks]
    [1.0, 2.33, 2.67]
    """

    if isinstance(scores, pd.DataFrame):
        methods = list(scores.columns) if methods is None else list(methods)
        values = scores.to_numpy(dtype=float)
    else:
        values = np.asarray(scores, dtype=float)
    n, k = values.shape
    methods = [f"m{j}" for j in range(k)] if methods is None else [str(m) for m in methods]
    if len(methods) != k:
        raise FairfoundryError(f"{len(methods)} method names for {k} columns")
    return friedman_from_ranks(average_ranks(values, higher_is_better=higher_is_better), n_datasets=n,
                               methods=methods, alpha=alpha)


def friedman_from_ranks(ranks, *, n_datasets: int, methods=None, alpha: float = 0.05) -> FriedmanResult:
    """The Friedman / Iman-Davenport statistics and the CD from average ranks alone.

    Parameters
    ----------
    ranks : the k methods' average ranks over ``n_datasets`` datasets (rank 1 = best)
    n_datasets : N, the number of datasets the ranks were averaged over
    methods : names of the k methods
    alpha : significance level

    Examples
    --------
    Demšar (2006), section 3.2.4: four C4.5 variants on 14 datasets.

    >>> r = friedman_from_ranks([3.143, 2.000, 2.893, 1.964], n_datasets=14)
    >>> round(r.chi2_f, 2), round(r.f_f, 2), round(r.cd, 3)
    (9.28, 3.69, 1.254)
    """
    from scipy.stats import chi2, f

    r = np.asarray(ranks, dtype=float)
    k, n = len(r), int(n_datasets)
    methods = [f"m{j}" for j in range(k)] if methods is None else [str(m) for m in methods]
    if len(methods) != k:
        raise FairfoundryError(f"{len(methods)} method names for {k} ranks")
    chi2_f = 12.0 * n / (k * (k + 1)) * (float(np.sum(r ** 2)) - k * (k + 1) ** 2 / 4.0)
    denom = n * (k - 1) - chi2_f
    if n > 1 and denom > 0:
        f_f = (n - 1) * chi2_f / denom
        p_f = float(f.sf(f_f, k - 1, (k - 1) * (n - 1)))
    else:  # one dataset, or every dataset ranks the methods identically: F_F is undefined
        f_f, p_f = np.nan, float(chi2.sf(chi2_f, k - 1)) if n > 1 else np.nan
    return FriedmanResult(methods=tuple(methods), average_ranks=tuple(float(x) for x in r), n_datasets=n,
                          chi2_f=float(chi2_f), p_chi2=float(chi2.sf(chi2_f, k - 1)), f_f=float(f_f),
                          p_f=p_f, cd=nemenyi_cd(k, n, alpha=alpha), alpha=alpha)


def plot_cd_diagram(result: FriedmanResult, *, ax=None, title: str | None = None):
    """Draw Demšar's critical-difference diagram: the rank axis, each method at its average rank,
    and a bar joining every maximal group of methods whose ranks are within the CD.

    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    k = len(result.methods)
    order = np.argsort(result.average_ranks)
    ranks = np.asarray(result.average_ranks)[order]
    names = [result.methods[i] for i in order]
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 1.2 + 0.3 * k))
    else:
        fig = ax.figure
    ax.set_xlim(1, k)
    ax.set_ylim(0, 1 + 0.5 * k)
    ax.invert_xaxis()
    ax.yaxis.set_visible(False)
    for side in ("left", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.xaxis.set_ticks_position("top")
    ax.set_xticks(range(1, k + 1))
    for j, (name, rank) in enumerate(zip(names, ranks, strict=True)):
        y = 0.6 + 0.45 * (j if j < (k + 1) // 2 else k - 1 - j)
        left = j < (k + 1) // 2
        ax.plot([rank, rank], [0.5 * k + 1, 0.5 * k + 1 - 0.1 - y * 0.2], color="k", lw=0.8)
        ax.annotate(f"{name} ({rank:.2f})", (rank, 0.5 * k + 0.9 - y * 0.2),
                    xytext=(1.0 if left else k, y), ha="right" if left else "left", va="center",
                    arrowprops={"arrowstyle": "-", "lw": 0.6}, fontsize=8)
    # cliques: maximal runs of consecutive methods within the CD
    cliques, start = [], 0
    for end in range(k):
        while ranks[end] - ranks[start] >= result.cd:
            start += 1
        if end > start and (not cliques or cliques[-1][1] < end):
            cliques.append((start, end))
    for i, (a, b) in enumerate(cliques):
        y = 0.5 * k + 0.75 - 0.12 * i
        ax.plot([ranks[a] - 0.03, ranks[b] + 0.03], [y, y], color="tab:red", lw=2.5)
    ax.plot([1, 1 + result.cd], [0.2, 0.2], color="k", lw=1.5)
    ax.annotate(f"CD = {result.cd:.2f}", (1 + result.cd / 2, 0.28), ha="center", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9, pad=18)
    return fig
