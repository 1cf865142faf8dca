"""Known-bias features and helpers shared by the mitigation tests."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")


def youden_threshold(s, y):
    cand = np.quantile(s, np.linspace(0.01, 0.99, 99))
    j = [np.mean(s[y == 1] >= t) - np.mean(s[y == 0] >= t) for t in cand]
    return float(cand[int(np.argmax(j))])


def gaps(s, y, g, t):
    """Test-set quantities a user looks at: DP / TPR / EO gaps at threshold t, AUCs, score gap."""
    from scipy.stats import wasserstein_distance

    from fairfoundry.mitigate import selection_scores

    d = s >= t
    groups = np.unique(g)
    rate = [d[g == v].mean() for v in groups]
    tpr = [d[(g == v) & (y == 1)].mean() for v in groups]
    fpr = [d[(g == v) & (y == 0)].mean() for v in groups]
    mean = [s[g == v].mean() for v in groups]
    sc = selection_scores(y, s, g)
    return {"dp": max(rate) - min(rate), "tpr_gap": max(tpr) - min(tpr),
            "eo": max(max(tpr) - min(tpr), max(fpr) - min(fpr)), "mean_gap": max(mean) - min(mean),
            "auc": sc["overall_auc"], "worst_group_auc": sc["worst_group_auc"],
            # FairCLIP's target: distance of each group's score distribution to everyone's (1-D W1)
            "w1": max(wasserstein_distance(s[g == v], s) for v in groups),
            # FairCLIP / Harvard-GF equity-scaled AUC: AUC / (1 + sum_g |AUC - AUC_g|)
            "es_auc": sc["overall_auc"] / (1 + sum(abs(sc["overall_auc"] - sc[f"auc[{v}]"]) for v in groups))}


@pytest.fixture(scope="session")
def kb():
    from fairfoundry.bench import make_knownbias_features

    data = make_knownbias_features(n=4000, d=16, seed=0)
    return {s: data.split(s) for s in ("train", "val", "test")}


def _fit_eval(kb, hooks=(), post=None, seed=0, **kw):
    from fairfoundry.adapt import HeadClassifier

    (Xtr, ftr), (Xv, fv), (Xt, ft) = kb["train"], kb["val"], kb["test"]
    est = HeadClassifier("linear", epochs=15, batch_size=256, lr=3e-3, hooks=list(hooks), seed=seed,
                         patience=5, **kw)
    est.fit(Xtr, ftr.y.to_numpy(), groups=ftr.group.to_numpy(), X_val=Xv, y_val=fv.y.to_numpy(),
            groups_val=fv.group.to_numpy())
    sv = est.predict_score(Xv, groups=fv.group.to_numpy())
    st = est.predict_score(Xt, groups=ft.group.to_numpy())
    t0 = youden_threshold(sv, fv.y.to_numpy())
    if post is not None:
        post.fit(sv, fv.y.to_numpy(), fv.group.to_numpy())
        st = post.transform(st, ft.group.to_numpy())
        t0 = 0.5
    return gaps(st, ft.y_clean.to_numpy(), ft.group.to_numpy(), t0), est


@pytest.fixture(scope="session")
def fit_eval():
    """``fit_eval(kb, hooks=..., post=...) -> (test gaps, estimator)``."""
    return _fit_eval


@pytest.fixture(scope="session")
def erm(kb):
    return _fit_eval(kb)[0]
