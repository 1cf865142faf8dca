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

__all__ = ["probe_attributes", "ProbeResult"]

_MISSING = {"", "unknown", "nan", "none", "na", "n/a"}


@dataclass
class ProbeResult:
    """Output of :func:`probe_attributes`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per attribute: ``attribute, n, n_groups, groups, auc, ci_low, ci_high,
        chance_auc, balanced_accuracy, majority_rate, dropped_groups, n_missing``.
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
                     attributes: Sequence[str] | None = None) -> ProbeResult:
    r"""Cross-validated linear probes predicting each attribute from the embeddings.

    For each attribute: samples with a missing value are left out; numeric attributes with more
    than 10 distinct values (age) are binned with ``age_bins`` (left-closed, see
    :func:`fairfoundry.data.bin_values`); groups with fewer than ``min_group`` (default
    ``folds``) samples are dropped and reported. A standardised L2 logistic regression is fitted
    in ``folds``-fold stratified cross-validation (folds grouped by ``group_col``, the patient,
    when present, so one patient's images never sit on both sides). The score is the AUC of the
    out-of-fold probabilities: binary AUC, or macro one-vs-rest AUC for more than two groups,

    .. math:: \mathrm{AUC}_{macro} = \frac{1}{K} \sum_{k=1}^{K} \mathrm{AUC}(y = k \text{ vs rest})

    with a percentile bootstrap CI over samples (``n_boot`` resamples). Chance is 0.5.

    Parameters
    ----------
    embeddings : array of shape (n, d)
    frame : pandas.DataFrame of n rows aligned to ``embeddings`` with the attribute columns
    sensitive : protected attribute columns (e.g. ``["sex", "age", "race"]``); ``attributes``
        is the old spelling
    folds, seed, n_boot, ci, age_bins, group_col, min_group, C : see above (C: inverse L2 strength)

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
        rows.append({
            "attribute": attr, "n": int(len(idx)), "n_groups": len(classes),
            "groups": "|".join(classes), "auc": auc, "ci_low": lo, "ci_high": hi, "chance_auc": 0.5,
            "balanced_accuracy": float(balanced_accuracy_score(y, yhat)),
            "majority_rate": float(pd.Series(y).value_counts(normalize=True).iloc[0]),
            "dropped_groups": "|".join(dropped), "n_missing": int((~present).sum()),
            "folds": folds, "grouped_by": group_col if groups is not None else "",
        })
        k = len(classes)
        preds.append(pd.DataFrame({
            "sample_id": np.repeat(sample_ids[idx], k), "attribute": attr,
            "y_true": np.repeat(y, k), "group": np.tile(classes, len(y)),
            "proba": proba.reshape(-1), "y_pred": np.repeat(yhat, k)}))
    return ProbeResult(pd.DataFrame(rows), pd.concat(preds, ignore_index=True))
