r"""Tabular slice discovery over metadata columns: SliceLine, with a multiplicity-adjusted test.

SliceLine (Sagadeeva & Boehm, "SliceLine: Fast, linear-algebra-based slice finding for ML model
debugging", SIGMOD 2021), re-implemented from the paper (no code copied). A *slice* is a
conjunction of predicates ``column = value``, at most one per column (``sex=female & view=AP``);
numeric columns are binned first (the group model: age by :data:`fairfoundry.groups.DEFAULT_AGE_EDGES`),
missing values are the group ``unknown``. With per-row errors :math:`e_i` (here 0/1
misclassification at the threshold), mean error :math:`\bar e`, a slice :math:`S` of
:math:`|S|` rows and error sum :math:`se(S)` scores

.. math:: sc(S) = \alpha \left(\frac{se(S) / |S|}{\bar e} - 1\right)
          - (1 - \alpha) \left(\frac{n}{|S|} - 1\right),

positive when its error rate is enough above average to outweigh its smallness (``alpha``
trades the two). The search walks the lattice level by level (slices of 1, 2, ...
``max_level`` predicates): level :math:`l + 1` candidates join two level-:math:`l` slices that
share :math:`l - 1` predicates, are kept only when every one of their :math:`l` parents was kept
(size :math:`\ge` the minimum support :math:`\sigma`, errors > 0), and are pruned by the upper
bound of their score: with :math:`\overline{ss}`, :math:`\overline{se}`, :math:`\overline{sm}` the
smallest parent size, error sum and maximum error, a child has
:math:`|S| \in [\sigma, \overline{ss}]` and :math:`se \le \min(\overline{se}, |S|\,\overline{sm})`,
and because the score is monotone in :math:`se` and piecewise monotone in :math:`|S|` its bound
is the largest score at :math:`|S| \in \{\sigma, \overline{se}/\overline{sm}, \overline{ss}\}`.
Candidates whose bound is not above the current k-th best score (and 0) are dropped. Slice
sizes and errors are sparse matrix products of the one-hot data with the candidates.

Evidence: SliceLine ranks; it does not test. Every reported slice also gets its error rate with a
Wilson 95 % interval, the one-sided exact test of "the errors are exchangeable between rows"
(hypergeometric: :math:`P(X \ge se(S))`, :math:`X \sim \mathrm{Hypergeom}(n, \sum e, |S|)`,
i.e. Fisher's exact test of the slice against the rest), and that p-value multiplied by the
number of slices the lattice holds up to ``max_level`` (Bonferroni over every slice that *could*
have been reported, so the search's own selection is covered). A slice is flagged
``underperforms`` when the adjusted p-value is below ``fwer`` and it has at least
``min_errors`` errors; under random labels the chance that any slice is flagged is at most
``fwer`` (null simulation in ``tests/curate/test_sliceline.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._errors import FairfoundryError

__all__ = ["TabularSlices", "sliceline_slices", "sliceline_score"]


def sliceline_score(size, errors, *, n: int, mean_error: float, alpha: float):
    """SliceLine's score of slices of ``size`` rows with error sum ``errors`` (vectorised; -inf
    for empty slices)."""
    s = np.asarray(size, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = alpha * ((e / s) / mean_error - 1) - (1 - alpha) * (n / s - 1)
    return np.where(s > 0, sc, -np.inf)


def _score_bound(ss, se, sm, *, sigma: float, n: int, mean_error: float, alpha: float):
    """Upper bound of a child's score from its parents' smallest size, error sum and max error."""
    best = np.full(len(ss), -np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        mid = np.where(sm > 0, se / sm, ss)
    for s in (np.full(len(ss), float(sigma)), np.clip(mid, sigma, ss), ss):
        e = np.minimum(se, s * sm)
        ok = s >= sigma
        sc = sliceline_score(s, e, n=n, mean_error=mean_error, alpha=alpha)
        best = np.where(ok, np.maximum(best, sc), best)
    return best


def _lattice_size(counts: list[int], max_level: int) -> int:
    """Slices with 1..max_level predicates over columns with ``counts`` values (at most one
    predicate per column): the elementary symmetric polynomials of the counts."""
    e = [1] + [0] * max_level
    for c in counts:
        for lv in range(max_level, 0, -1):
            e[lv] += e[lv - 1] * c
    return int(sum(e[1:]))


@dataclass
class TabularSlices:
    """Slices found by :func:`sliceline_slices`.

    Attributes
    ----------
    table : DataFrame, one row per slice ranked by score: ``rank``, ``slice`` (its name, the
        group model's ``col=value & col=value``), ``level``, ``n``, ``errors``, ``error_rate``,
        ``ci_low``, ``ci_high`` (Wilson 95 %), ``score``, ``p_value``, ``p_adjusted``,
        ``verdict`` (``underperforms``, ``not significant`` or ``too few to judge``)
    members : bool array (n, slices): row ``i`` is in slice ``j`` (slices overlap)
    config : the settings used, the overall error rate and the number of slices tested
    """

    table: object
    members: np.ndarray
    config: dict


def sliceline_slices(frame, columns, errors, *, k: int = 10, alpha: float = 0.95,
                     max_level: int = 3, min_support: int | None = None, bins: dict | None = None,
                     fwer: float = 0.05, min_errors: int = 5) -> TabularSlices:
    """Top-``k`` SliceLine slices of ``frame`` over ``columns`` for per-row 0/1 ``errors``.

    Parameters
    ----------
    frame : DataFrame holding ``columns`` (any values; numeric columns with more than 10
        distinct values are binned by ``bins`` or the default age edges; missing is
        ``unknown``)
    columns : list of str
    errors : (n,) 0/1 errors (e.g. ``(score >= threshold) != label``)
    k : slices reported (the best by score with a positive score)
    alpha : SliceLine's weight of the error term against the size term, in (0, 1]
    max_level : most predicates per slice
    min_support : smallest slice size :math:`\\sigma` (default ``max(32, ceil(n / 100))``)
    fwer : family-wise error rate of the ``underperforms`` verdict
    min_errors : fewer errors in a slice: ``too few to judge``

    Returns
    -------
    TabularSlices

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"site": ["a", "b"] * 100, "sex": ["F"] * 100 + ["M"] * 100})
    >>> err = ((df["site"] == "b") & (df["sex"] == "M")).astype(int).to_numpy()
    >>> res = sliceline_slices(df, ["site", "sex"], err, k=3, min_support=20)
    >>> top = res.table.iloc[0]
    >>> top["slice"], int(top["n"]), float(top["error_rate"]), top["verdict"]
    ('site=b & sex=M', 50, 1.0, 'underperforms')
    """
    import pandas as pd
    from scipy import sparse
    from scipy.stats import hypergeom

    from ..groups import auto_bin_columns, intersect_groups, intersection_name
    from ._slices import wilson_interval

    columns = list(columns)
    if not columns:
        raise FairfoundryError("tabular slices need at least one metadata column")
    e = np.asarray(errors, dtype=np.float64)
    n = len(frame)
    if e.shape != (n,):
        raise FairfoundryError(f"errors ({e.shape}) and the table ({n} rows) differ in length")
    if not np.isin(e, (0, 1)).all():
        raise FairfoundryError("errors must be 0/1")
    if not 0 < alpha <= 1:
        raise FairfoundryError(f"alpha={alpha} must be in (0, 1]")
    if k < 1 or max_level < 1:
        raise FairfoundryError("k and max_level must be at least 1")
    sigma = int(min_support) if min_support is not None else max(32, math.ceil(n / 100))
    if sigma < 1:
        raise FairfoundryError(f"min_support={min_support} must be at least 1")
    edges = auto_bin_columns(frame, columns, bins)
    feats, pred_names, pred_feat = [], [], []
    for f, c in enumerate(columns):
        codes, names = intersect_groups(frame, [c], bins=edges)
        feats.append((np.asarray(codes), names))
        pred_names.extend(names)
        pred_feat.extend([f] * len(names))
    pred_feat = np.asarray(pred_feat)
    offsets = np.cumsum([0] + [len(nm) for _, nm in feats])
    m = int(offsets[-1])
    rows = np.repeat(np.arange(n), len(columns))
    cols = np.concatenate([c[:, None] + offsets[f] for f, (c, _) in enumerate(feats)],
                          axis=1).ravel() if n else np.zeros(0, int)
    X = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, m))
    n_tested = _lattice_size([len(nm) for _, nm in feats], max_level)
    total = float(e.sum())
    mean_e = total / n if n else float("nan")
    config = {"columns": columns, "k": k, "alpha": alpha, "max_level": max_level,
              "min_support": sigma, "fwer": fwer, "min_errors": min_errors,
              "bins": {c: list(v) for c, v in edges.items()}, "n": n,
              "overall_error_rate": mean_e, "slices_in_lattice": n_tested}
    found: list[tuple[tuple[int, ...], float, float, float]] = []  # (preds, size, errors, score)

    def kth() -> float:
        if len(found) < k:
            return 0.0
        return max(0.0, sorted((f[3] for f in found), reverse=True)[k - 1])

    def evaluate(cands: list[tuple[int, ...]]):
        lv = len(cands[0])
        size, se, sm = np.zeros(len(cands)), np.zeros(len(cands)), np.zeros(len(cands))
        step = max(1, int(2e7 // max(n, 1)))
        for b0 in range(0, len(cands), step):
            block = cands[b0:b0 + step]
            C = sparse.csr_matrix((np.ones(lv * len(block)),
                                   (np.concatenate(block), np.repeat(np.arange(len(block)), lv))),
                                  shape=(m, len(block)))
            inside = (X @ C).toarray() == lv
            size[b0:b0 + len(block)] = inside.sum(0)
            se[b0:b0 + len(block)] = e @ inside
            sm[b0:b0 + len(block)] = (inside * e[:, None]).max(0) if n else 0
        return size, se, sm

    if n and total > 0:
        level = [(j,) for j in range(m)]
        size, se, sm = evaluate(level)
        stats = {}
        for lv in range(1, max_level + 1):
            sc = sliceline_score(size, se, n=n, mean_error=mean_e, alpha=alpha)
            keep = (size >= sigma) & (se > 0)
            for i in np.flatnonzero(keep & (sc > 0)):
                found.append((level[i], float(size[i]), float(se[i]), float(sc[i])))
            stats = {level[i]: (size[i], se[i], sm[i]) for i in np.flatnonzero(keep)}
            if lv == max_level or len(stats) < 2:
                break
            # join parents sharing their first lv - 1 predicates (apriori), one per column
            parents = sorted(stats)
            by_prefix: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
            for p in parents:
                by_prefix.setdefault(p[:-1], []).append(p)
            cands, bounds_in = [], []
            for group in by_prefix.values():
                for a in range(len(group)):
                    for b in range(a + 1, len(group)):
                        x, y = group[a], group[b]
                        if pred_feat[x[-1]] == pred_feat[y[-1]] or pred_feat[y[-1]] in \
                                pred_feat[list(x[:-1])]:
                            continue
                        child = (*x, y[-1])
                        subs = [child[:i] + child[i + 1:] for i in range(len(child))]
                        if not all(s in stats for s in subs):
                            continue
                        ps = np.array([stats[s] for s in subs])
                        cands.append(child)
                        bounds_in.append(ps.min(0))
            if not cands:
                break
            bi = np.array(bounds_in)
            ub = _score_bound(bi[:, 0], bi[:, 1], bi[:, 2], sigma=sigma, n=n, mean_error=mean_e,
                              alpha=alpha)
            sel = np.flatnonzero(ub > kth())
            if not len(sel):
                break
            level = [cands[i] for i in sel]
            size, se, sm = evaluate(level)
    found.sort(key=lambda f: (-f[3], -f[1], f[0]))
    found = found[:k]
    out_rows, members = [], np.zeros((n, len(found)), dtype=bool)
    for j, (preds, s, err, sc) in enumerate(found):
        inside = np.ones(n, dtype=bool)
        parts = []
        for pidx in preds:
            f = int(pred_feat[pidx])
            inside &= feats[f][0] == pidx - offsets[f]
            parts.append((columns[f], pred_names[pidx]))
        members[:, j] = inside
        name = intersection_name([c for c, _ in parts], [v for _, v in parts]) if len(parts) > 1 \
            else f"{parts[0][0]}={parts[0][1]}"
        lo, hi = wilson_interval(int(err), int(s))
        p = float(hypergeom.sf(int(err) - 1, n, int(total), int(s)))
        p_adj = min(1.0, p * n_tested)
        verdict = ("too few to judge" if err < min_errors else
                   "underperforms" if p_adj < fwer else "not significant")
        out_rows.append({"rank": j + 1, "slice": name, "level": len(preds), "n": int(s),
                         "errors": int(err), "error_rate": err / s, "ci_low": lo, "ci_high": hi,
                         "score": sc, "p_value": p, "p_adjusted": p_adj, "verdict": verdict})
    table = pd.DataFrame(out_rows, columns=["rank", "slice", "level", "n", "errors", "error_rate",
                                            "ci_low", "ci_high", "score", "p_value", "p_adjusted",
                                            "verdict"])
    return TabularSlices(table=table, members=members, config=config)
