"""Attribute-leakage probe: how well can protected attributes be predicted from embeddings?

If a linear model recovers sex, age group or race from an encoder's embeddings far above chance,
the features encode the attribute, and a downstream classifier can use it as a shortcut
(Glocker et al., "Risk of bias in chest radiography deep learning foundation models",
Radiology: AI 2023; Gichoya et al., "AI recognition of patient race in medical imaging",
Lancet Digital Health 2022). The probe is a diagnostic, not a verdict: medical signal can be
legitimately correlated with age or sex.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._errors import FairfoundryError, did_you_mean
from ..groups import DEFAULT_AGE_EDGES

__all__ = ["probe_attributes", "ProbeResult", "leakage_permutation_test"]

_MISSING = {"", "unknown", "nan", "none", "na", "n/a"}


@dataclass
class ProbeResult:
    """Output of :func:`probe_attributes`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per attribute: ``attribute, n, n_groups, groups, auc, ci_low, ci_high,
        chance_auc, balanced_accuracy, majority_rate, dropped_groups, n_missing, folds,
        grouped_by, perm_auc, p_value, n_perm, verdict`` (the permutation test's statistic,
        p-value and verdict, :func:`leakage_permutation_test`).
    predictions : pandas.DataFrame
        Out-of-fold probabilities, long format: one row per (sample, attribute, group) with
        ``sample_id, attribute, y_true, group, proba, y_pred``.
    """

    table: object
    predictions: object


def _labels(values, *, attribute: str, age_bins: Sequence[float]):
    """Group labels (None where missing) and their order, by :mod:`fairfoundry.groups`."""
    import numpy as np
    import pandas as pd

    from ..groups import MISSING, attribute_groups

    s = pd.Series(values)
    edges = age_bins if pd.api.types.is_numeric_dtype(s) and s.nunique(dropna=True) > 10 else None
    if edges is None:  # common spellings of "not recorded" are missing, not a group
        s = s.where(~s.astype(str).str.strip().str.lower().isin(_MISSING))
    cat = attribute_groups(s, edges=edges, name=f"attribute {attribute!r}")
    lab = pd.Series(np.asarray(cat, dtype=object))
    lab = lab.where(lab != MISSING, None)
    return lab, [str(c) for c in cat.categories if c != MISSING]


def _auc(y, proba, classes):
    from sklearn.metrics import roc_auc_score

    if len(classes) == 2:
        return float(roc_auc_score(y == classes[1], proba[:, 1]))
    order = sorted(range(len(classes)), key=lambda j: classes[j])  # sklearn wants sorted labels
    return float(roc_auc_score(y, proba[:, order], multi_class="ovr", average="macro",
                               labels=[classes[j] for j in order]))


def probe_attributes(embeddings, frame, *, sensitive: Sequence[str] | None = None,
                     folds: int = 5, seed: int = 0, n_boot: int = 200, ci: float = 0.95,
                     age_bins: Sequence[float] = DEFAULT_AGE_EDGES, group_col: str | None = "patient_id",
                     min_group: int | None = None, C: float = 1.0,
                     attributes: Sequence[str] | None = None, n_perm: int = 199,
                     alpha: float = 0.05) -> ProbeResult:
    r"""Cross-validated linear probes predicting each attribute from the embeddings.

    For each attribute: samples with a missing value are left out; numeric attributes with more
    than 10 distinct values (age) are binned with ``age_bins`` (left-closed, see
    :func:`fairfoundry.data.bin_values`); groups with fewer than ``min_group`` (default
    ``folds``) samples are dropped and reported. A standardised L2 logistic regression is fitted
    in ``folds``-fold stratified cross-validation (folds grouped by ``group_col``, the patient,
    when present, so one patient's images never sit on both sides). The score is the AUC of the
    out-of-fold probabilities: binary AUC, or macro one-vs-rest AUC for more than two groups,

    .. math:: \mathrm{AUC}_{macro} = \frac{1}{K} \sum_{k=1}^{K} \mathrm{AUC}(y = k \text{ vs rest})

    with a percentile bootstrap CI over samples (``n_boot`` resamples). Chance is 0.5. That CI
    holds the fitted probes fixed (it ignores the variance of the cross-validated fits, and
    out-of-fold AUC sits below 0.5 on null data), so it is descriptive, not a test: on null
    data it excludes chance in about 12 % of runs at a nominal 5 %.

    The verdict comes from :func:`leakage_permutation_test` (``n_perm`` permutations of the
    attribute across patients, the cross-validated probe refitted for each; exact p-value):
    ``verdict`` is ``leakage`` when ``p_value < alpha``, ``no evidence of leakage`` otherwise,
    and ``too few permutations to judge`` when ``n_perm < 1 / alpha - 1`` (the p-value cannot
    fall below ``alpha``).

    Parameters
    ----------
    embeddings : array of shape (n, d)
    frame : pandas.DataFrame of n rows aligned to ``embeddings`` with the attribute columns
    sensitive : protected attribute columns (e.g. ``["sex", "age", "race"]``); ``attributes``
        is the old spelling
    folds, seed, n_boot, ci, age_bins, group_col, min_group, C : see above (C: inverse L2 strength)
    n_perm, alpha : permutations of the leakage test (0: no test) and its level

    Returns
    -------
    ProbeResult

    Raises
    ------
    FairfoundryError
        Unknown attribute column (closest names), fewer than two usable groups, too few samples.
    """
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    attributes = list(sensitive or []) + list(attributes or [])  # attributes: old spelling
    X = np.asarray(embeddings, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != len(frame):
        raise FairfoundryError(f"embeddings shape {X.shape} does not match {len(frame)} manifest rows")
    if not attributes:
        raise FairfoundryError("no attributes to probe", hint="pass e.g. sensitive=[\"sex\", \"age\"] (--sensitive sex,age)")
    for a in attributes:
        if a not in frame.columns:
            raise FairfoundryError(f"attribute column {a!r} not found in the manifest",
                                   hint=did_you_mean(a, frame.columns, what="its columns"))
    folds = int(folds)
    if folds < 2:
        raise FairfoundryError(f"folds must be >= 2, got {folds}")
    min_group = folds if min_group is None else int(min_group)
    rng = np.random.default_rng(seed)
    sample_ids = frame["sample_id"].astype(str).to_numpy() if "sample_id" in frame else np.arange(len(frame)).astype(str)
    rows, preds = [], []
    for attr in attributes:
        lab, order = _labels(frame[attr].to_numpy(), attribute=attr, age_bins=age_bins)
        present = lab.notna().to_numpy()
        counts = lab[present].value_counts()
        dropped = sorted(counts[counts < min_group].index.tolist())
        keep = present & ~lab.isin(dropped).to_numpy()
        classes = sorted(counts[counts >= min_group].index.tolist(),
                         key=lambda c: (order.index(c) if order and c in order else 0, c))
        if len(classes) < 2:
            raise FairfoundryError(
                f"attribute {attr!r} has fewer than two groups with at least {min_group} samples "
                f"(counts: {counts.to_dict()})", hint="probe another attribute or use fewer --folds")
        idx = np.flatnonzero(keep)
        y = lab.to_numpy()[idx].astype(str)
        Xa = X[idx]
        finite = np.isfinite(Xa).all(1)
        if not finite.all():
            raise FairfoundryError(f"embeddings have non-finite values in {int((~finite).sum())} rows")
        groups = None
        if group_col and group_col in frame.columns:
            groups = frame[group_col].astype(str).to_numpy()[idx]
            if len(np.unique(groups)) < folds:
                groups = None
        splitter = (StratifiedGroupKFold(folds, shuffle=True, random_state=seed) if groups is not None
                    else StratifiedKFold(folds, shuffle=True, random_state=seed))
        proba = np.zeros((len(idx), len(classes)))
        for tr, te in splitter.split(Xa, y, groups):
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
            clf.fit(Xa[tr], y[tr])
            cols = [list(clf.classes_).index(c) if c in clf.classes_ else None for c in classes]
            p = clf.predict_proba(Xa[te])
            for j, c in enumerate(cols):
                proba[te, j] = p[:, c] if c is not None else 0.0
        auc = _auc(y, proba, classes)
        boots = []
        for _ in range(int(n_boot)):
            b = rng.integers(0, len(y), len(y))
            if len(np.unique(y[b])) < len(classes):
                continue
            boots.append(_auc(y[b], proba[b], classes))
        alpha = (1 - ci) / 2
        lo, hi = (np.quantile(boots, [alpha, 1 - alpha]).tolist() if boots else (np.nan, np.nan))
        yhat = np.asarray(classes)[proba.argmax(1)]
        perm_auc, p_value = leakage_permutation_test(Xa, y, classes=classes, cluster=groups, folds=folds,
                                                     n_perm=n_perm, C=C, seed=seed)
        if int(n_perm) <= 0 or int(n_perm) < 1 / alpha - 1:
            verdict = "too few permutations to judge"
        else:
            verdict = "leakage" if p_value < alpha else "no evidence of leakage"
        rows.append({
            "attribute": attr, "n": int(len(idx)), "n_groups": len(classes),
            "groups": "|".join(classes), "auc": auc, "ci_low": lo, "ci_high": hi, "chance_auc": 0.5,
            "balanced_accuracy": float(balanced_accuracy_score(y, yhat)),
            "majority_rate": float(pd.Series(y).value_counts(normalize=True).iloc[0]),
            "dropped_groups": "|".join(dropped), "n_missing": int((~present).sum()),
            "folds": folds, "grouped_by": group_col if groups is not None else "",
            "perm_auc": perm_auc, "p_value": p_value, "n_perm": int(n_perm), "verdict": verdict,
        })
        k = len(classes)
        preds.append(pd.DataFrame({
            "sample_id": np.repeat(sample_ids[idx], k), "attribute": attr,
            "y_true": np.repeat(y, k), "group": np.tile(classes, len(y)),
            "proba": proba.reshape(-1), "y_pred": np.repeat(yhat, k)}))
    return ProbeResult(pd.DataFrame(rows), pd.concat(preds, ignore_index=True))


def _cluster_folds(cluster, folds: int, seed: int):
    """Fold of every row from its cluster (patient) alone: clusters shuffled (seeded) and dealt
    round-robin into ``folds`` folds. The folds do not depend on the attribute, so permuting the
    attribute with the folds held fixed is an exact permutation test."""
    import numpy as np
    import pandas as pd

    codes, uniq = pd.factorize(pd.Series(cluster).astype(str))
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = np.empty(len(uniq), dtype=np.int64)
    fold_of[order] = np.arange(len(uniq)) % folds
    return fold_of[codes]


def _cluster_permutations(cluster, n_perm: int, rng):
    """``(n_perm, n)`` row indices: each permutation swaps whole clusters' label vectors among
    clusters of the same size and shuffles the rows within each cluster, so a patient's labels
    stay together and cluster sizes are preserved (the strata are the cluster sizes). Valid
    when, under the null, patients are exchangeable and so are a patient's images."""
    import numpy as np
    import pandas as pd

    codes, uniq = pd.factorize(pd.Series(cluster).astype(str))
    order = np.argsort(codes, kind="stable")  # rows grouped by cluster, in row order within one
    rows = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
    sizes = np.array([len(r) for r in rows])
    out = np.tile(np.arange(len(codes)), (int(n_perm), 1))
    for s in np.unique(sizes):
        members = np.flatnonzero(sizes == s)
        if len(members) < 2 and s < 2:
            continue
        block = np.stack([rows[m] for m in members])  # (clusters, s): the rows of each cluster
        for b in range(int(n_perm)):
            src = block[rng.permutation(len(members))]
            if s > 1:
                src = np.take_along_axis(src, rng.permuted(np.tile(np.arange(s), (len(members), 1)), axis=1), 1)
            out[b, block.reshape(-1)] = src.reshape(-1)
    return out


def _columns_auc(onehot, score):
    """AUC of every column of ``score`` against the same column of the 0/1 ``onehot`` (Mann-Whitney,
    mid-ranks for ties)."""
    import numpy as np
    from scipy.stats import rankdata

    r = rankdata(score, axis=0)
    n1 = onehot.sum(0)
    n0 = onehot.shape[0] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((r * onehot).sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)


def leakage_permutation_test(embeddings, labels, *, classes: Sequence[str], cluster=None, folds: int = 5,
                             n_perm: int = 99, C: float = 1.0, seed: int = 0):
    r"""Permutation test of "the embedding carries no linear information about the attribute".

    Statistic: the out-of-fold AUC (binary, or macro one-vs-rest for more groups) of a
    standardised ridge (least-squares) probe, penalty :math:`\lambda = n_{train} / C`, on
    ``folds`` folds made from the clusters (patients) alone (:func:`_cluster_folds`). It is
    recomputed for ``n_perm`` permutations of the attribute that swap whole patients of equal
    size, with the same folds; the ridge solve is shared by all permutations of a fold (one
    matrix product for all of them), so 99 permutations cost about one extra fit. The p-value

    .. math:: p = \frac{1 + \#\{b : T_b \ge T_{obs}\}}{1 + B}

    is exact (its false-positive rate is at most :math:`\alpha` for any ``B``) when patients are
    exchangeable under the null (Phipson & Smyth 2010, for the ``+1``; Ojala & Garriga, JMLR
    2010, for permutation tests of cross-validated classifiers). It tests the whole
    cross-validation procedure, fits included, unlike a bootstrap of fixed out-of-fold scores.

    Returns
    -------
    (statistic, p_value) : floats; NaN when ``n_perm`` is 0.
    """
    import numpy as np
    from scipy.linalg import cho_factor, cho_solve

    X = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels).astype(str)
    classes = [str(c) for c in classes]
    n = len(y)
    if int(n_perm) <= 0:
        return float("nan"), float("nan")
    cluster = np.arange(n).astype(str) if cluster is None else np.asarray(cluster).astype(str)
    k = int(min(folds, len(np.unique(cluster))))
    fold = _cluster_folds(cluster, k, seed)
    rng = np.random.default_rng([int(seed), 7919])
    ks = [1] if len(classes) == 2 else list(range(len(classes)))
    onehot = np.stack([(y == classes[j]).astype(np.float64) for j in ks], axis=1)  # (n, K')
    solvers = []  # per fold: test rows, standardisation and the ridge inverse, shared by every permutation
    for f in range(k):
        te = fold == f
        tr = ~te
        if not te.any() or tr.sum() < 2:
            continue
        mu, sd = X[tr].mean(0), X[tr].std(0)
        sd[sd == 0] = 1.0
        A = (X[tr] - mu) / sd
        lam = tr.sum() / float(C)
        primal = A.shape[1] <= A.shape[0]  # else more dimensions than rows: the dual form
        G = A.T @ A if primal else A @ A.T
        G[np.diag_indices_from(G)] += lam
        solvers.append((te, tr, mu, sd, primal, cho_factor(G)))  # G + lam I is positive definite
    # permutations in chunks so that the (n, permutations x K') label matrix stays small
    per_chunk = max(1, int(4e6 // max(1, n * len(ks))))
    auc = []
    for start in range(0, int(n_perm) + 1, per_chunk):
        m = min(per_chunk, int(n_perm) + 1 - start)
        perm = _cluster_permutations(cluster, m - (start == 0), rng)
        if start == 0:
            perm = np.vstack([np.arange(n)[None], perm])  # the observed labels first
        Y = onehot[perm.T].reshape(n, -1)  # (n, m * K'): row i of permutation b is onehot[perm[b, i]]
        S = np.zeros_like(Y)
        for te, tr, mu, sd, primal, inv in solvers:
            A, B = (X[tr] - mu) / sd, (X[te] - mu) / sd
            Yc = Y[tr] - Y[tr].mean(0)
            S[te] = B @ cho_solve(inv, A.T @ Yc) if primal else B @ (A.T @ cho_solve(inv, Yc))
        auc.append(_columns_auc(Y, S).reshape(m, len(ks)).mean(1))
    auc = np.concatenate(auc)  # (B+1,)
    t_obs, t_null = auc[0], auc[1:]
    p = (1 + int(np.sum(t_null >= t_obs - 1e-12))) / (1 + len(t_null))
    return float(t_obs), float(p)
