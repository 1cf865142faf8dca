"""Linear / MLP heads on embeddings: utility vs scikit-learn, determinism, multi-label, selection."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from fairfoundry._errors import FairfoundryError
from fairfoundry.adapt import HeadClassifier, dto, pareto_front, selection_scores
from fairfoundry.bench import make_knownbias_features


@pytest.fixture(scope="module")
def data():
    kb = make_knownbias_features(n=2000, d=12, seed=1, p_underdiagnosis=0.0, spurious_strength=0.0)
    return {s: kb.split(s) for s in ("train", "val", "test")}


def _fit(data, **kw):
    (X, f), (Xv, fv) = data["train"], data["val"]
    return HeadClassifier(epochs=kw.pop("epochs", 10), batch_size=128, lr=5e-3, **kw).fit(
        X, f.y.to_numpy(), groups=f.group.to_numpy(), X_val=Xv, y_val=fv.y.to_numpy(), groups_val=fv.group.to_numpy())


def test_linear_probe_matches_sklearn_logistic_regression(data):
    from sklearn.linear_model import LogisticRegression

    (X, f), (Xt, ft) = data["train"], data["test"]
    est = _fit(data, epochs=20)
    ours = selection_scores(ft.y.to_numpy(), est.predict_score(Xt))["overall_auc"]
    ref = LogisticRegression(max_iter=2000).fit(X, f.y).predict_proba(Xt)[:, 1]
    theirs = selection_scores(ft.y.to_numpy(), ref)["overall_auc"]
    assert ours == pytest.approx(theirs, abs=0.02)
    assert est.predict_proba(Xt).shape == (len(Xt), 2)
    assert np.allclose(est.predict_proba(Xt).sum(axis=1), 1.0)


def test_lbfgs_linear_probe_reaches_sklearns_solution(data):
    """The fast full-batch path: same objective as LogisticRegression(C) -> same coefficients."""
    from sklearn.linear_model import LogisticRegression

    (X, f), (Xv, fv), (Xt, _) = data["train"], data["val"], data["test"]
    n = len(X)
    est = HeadClassifier(optimizer="lbfgs", epochs=10, lbfgs_max_iter=20, weight_decay=1.0 / n, patience=None,
                         standardize=False).fit(X, f.y.to_numpy(), X_val=Xv, y_val=fv.y.to_numpy())
    # sklearn minimises C * sum(loss) + ||w||^2 / 2 (bias unpenalised); ours mean(loss) + wd/2 ||theta||^2
    ref = LogisticRegression(C=1.0, max_iter=5000, tol=1e-10).fit(X, f.y)
    w = est.model_.out.weight.detach().numpy().ravel()
    assert np.allclose(w, ref.coef_.ravel(), atol=2e-2)
    ours = est.predict_score(Xt)
    assert np.corrcoef(ours, ref.predict_proba(Xt)[:, 1])[0, 1] > 0.999
    assert len(est.history_) >= 1 and "overall_auc" in est.selected_
    with pytest.raises(FairfoundryError, match="lbfgs"):
        from fairfoundry.mitigate import make_mitigation

        HeadClassifier(optimizer="lbfgs", hooks=[make_mitigation("groupdro")])


def test_same_seed_identical_predictions_on_cpu(data):
    Xt = data["test"][0]
    a = _fit(data, head="mlp", seed=5).predict_score(Xt)
    b = _fit(data, head="mlp", seed=5).predict_score(Xt)
    c = _fit(data, head="mlp", seed=6).predict_score(Xt)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_multilabel_with_missing_labels(data):
    (X, f), (Xv, fv), (Xt, ft) = data["train"], data["val"], data["test"]
    rng = np.random.default_rng(0)

    def two(frame):
        y = frame.y.to_numpy().astype(float)
        y2 = 1.0 - y
        y2[rng.random(len(y)) < 0.1] = np.nan
        return np.column_stack([y, y2])

    est = HeadClassifier("mlp", epochs=8, batch_size=128, lr=5e-3).fit(X, two(f), X_val=Xv, y_val=two(fv))
    p = est.predict_proba(Xt)
    assert p.shape == (len(Xt), 2)
    y = ft.y.to_numpy()
    assert selection_scores(y, p[:, 0])["overall_auc"] > 0.75
    assert selection_scores(1 - y, p[:, 1])["overall_auc"] > 0.75


def test_dto_selection_uses_all_candidates_and_worst_group(data):
    est = _fit(data, select="dto", patience=None, epochs=6)
    table = np.array([[h[k] for k in ("auc[majority]", "auc[minority]")] for h in est.history_])
    assert est.selected_["dto"] == pytest.approx(dto(table).min())
    wg = _fit(data, select="worst_group_auc", patience=None, epochs=6)
    assert wg.selected_["worst_group_auc"] == max(h["worst_group_auc"] for h in wg.history_)


def test_dto_and_pareto_definitions():
    assert dto([[0.9, 0.6], [0.8, 0.7], [0.85, 0.65]]).round(4).tolist() == [0.1, 0.1, 0.0707]
    assert pareto_front([0.9, 0.8, 0.7], [0.2, 0.1, 0.15]).tolist() == [True, True, False]


def test_save_and_load_roundtrip(tmp_path, data):
    est = _fit(data, head="mlp", epochs=3)
    est.save(tmp_path / "h")
    again = HeadClassifier.load(tmp_path / "h")
    Xt = data["test"][0]
    assert np.allclose(est.predict_score(Xt), again.predict_score(Xt))


def test_bad_input(data):
    X, f = data["train"]
    with pytest.raises(FairfoundryError, match="only one class"):
        HeadClassifier().fit(X, np.zeros(len(X)))
    with pytest.raises(FairfoundryError, match="0/1"):
        HeadClassifier().fit(X, np.full(len(X), 2.0))
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(FairfoundryError, match="row 3"):
        HeadClassifier().fit(bad, f.y.to_numpy())
    with pytest.raises(FairfoundryError, match="criterion"):
        HeadClassifier(select="accuracy")
    with pytest.raises(FairfoundryError, match="not fitted"):
        HeadClassifier().predict_score(X)
