r"""Proxy groups for attributes a dataset does not record, and their agreement with real ones.

Queiroz, Anjos & Berton (2024; ref [23] of the review, arXiv 2502.16841) cluster foundation-model
embeddings (PCA -> t-SNE -> DBSCAN) and find that the clusters recover sex but not age. Both
pipelines are here, re-implemented with scikit-learn:

- ``method="kmeans"``: PCA (``pca_components``) then k-means with ``n_clusters``;
- ``method="tsne-dbscan"``: PCA -> t-SNE (2-D, ``perplexity``) -> DBSCAN. ``eps`` defaults to
  the 90th percentile of every point's distance to its ``min_samples``-th neighbour in the t-SNE
  map (the usual k-distance heuristic); DBSCAN's noise points form the proxy group ``noise``.

Proxies are written to a **separate** column (``proxy_cluster``, values ``c0``, ``c1``, ...), never
merged into a recorded attribute, and can be used as ``--sensitive proxy_cluster`` anywhere.

Agreement with a recorded attribute (:func:`proxy_agreement`): adjusted mutual information
(AMI, Vinh, Epps & Bailey 2010) and adjusted Rand index (ARI, Hubert & Arabie 1985), both 0 in
expectation for unrelated labellings and 1 for identical ones, each with a percentile bootstrap
CI over rows, plus a permutation p-value for AMI (attribute shuffled). A null simulation
(``tests/curate/test_proxies.py``) checks that the CI covers 0 at about its nominal rate when
the attribute is unrelated to the clusters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .._errors import FairfoundryError

__all__ = ["proxy_groups", "proxy_agreement", "ProxyGroups", "attribute_codes", "PROXY_COLUMN",
           "adjusted_mutual_info", "adjusted_rand"]

log = logging.getLogger(__name__)

PROXY_COLUMN = "proxy_cluster"
_METHODS = ("kmeans", "tsne-dbscan")


@dataclass
class ProxyGroups:
    """Proxy group of every row (``labels``: ``c0``, ``c1``, ... or ``noise``) and how it was made."""

    labels: np.ndarray
    method: str
    config: dict
    embedding_2d: np.ndarray | None = None


def proxy_groups(X, *, method: str = "kmeans", n_clusters: int = 2, pca_components: int = 50,
                 perplexity: float = 30.0, eps: float | None = None, min_samples: int = 5,
                 seed: int = 0) -> ProxyGroups:
    """Cluster embeddings into proxy groups (see the module docstring).

    Parameters
    ----------
    X : (n, d) embeddings
    method : ``"kmeans"`` or ``"tsne-dbscan"``
    n_clusters : k for ``kmeans`` (``2 <= k <= n``)
    pca_components : PCA dimensions first (capped at ``min(n, d)``)
    perplexity, eps, min_samples : t-SNE and DBSCAN settings for ``tsne-dbscan``
    seed : PCA, k-means and t-SNE seed

    Examples
    --------
    >>> import numpy as np
    >>> X = np.r_[np.zeros((10, 3)), np.ones((10, 3)) * 5] + np.random.default_rng(0).normal(0, .1, (20, 3))
    >>> p = proxy_groups(X, n_clusters=2)
    >>> len(set(p.labels[:10])), len(set(p.labels)), p.labels[0] != p.labels[-1]
    (1, 2, True)
    """
    from sklearn.decomposition import PCA

    from ._inputs import check_count

    if method not in _METHODS:
        raise FairfoundryError(f"method={method!r} is not one of {', '.join(_METHODS)}")
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    ncomp = max(1, min(pca_components, n, d))
    Z = PCA(n_components=ncomp, random_state=seed).fit_transform(X) if ncomp < d else X - X.mean(0)
    config = {"method": method, "pca_components": ncomp, "seed": seed}
    emb2 = None
    if method == "kmeans":
        check_count(n_clusters, name="k", n=n, what="rows", minimum=2)
        from sklearn.cluster import KMeans

        raw = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(Z)
        config["n_clusters"] = n_clusters
    else:
        from sklearn.cluster import DBSCAN
        from sklearn.manifold import TSNE
        from sklearn.neighbors import NearestNeighbors

        if n < 4:
            raise FairfoundryError(f"t-SNE needs at least 4 rows, got {n}")
        perp = float(min(perplexity, (n - 1) / 3))
        emb2 = TSNE(n_components=2, perplexity=perp, random_state=seed, init="pca").fit_transform(Z)
        ms = int(min(min_samples, n - 1))
        if eps is None:
            dist, _ = NearestNeighbors(n_neighbors=ms + 1).fit(emb2).kneighbors(emb2)
            eps = float(np.quantile(dist[:, -1], 0.9))
        raw = DBSCAN(eps=eps, min_samples=ms).fit_predict(emb2)
        config.update(perplexity=perp, eps=eps, min_samples=ms)
    # name clusters by size (c0 the largest) so names do not depend on solver order
    uniq, counts = np.unique(raw[raw >= 0], return_counts=True)
    order = uniq[np.argsort(-counts, kind="stable")]
    names = {int(c): f"c{r}" for r, c in enumerate(order)}
    labels = np.array([names.get(int(c), "noise") for c in raw], dtype=object)
    config["n_groups"] = len(order)
    return ProxyGroups(labels=labels, method=method, config=config, embedding_2d=emb2)


def attribute_codes(frame, column: str, *, bins: list[float] | None = None) -> tuple[np.ndarray, list[str]]:
    """Group codes of one recorded attribute (binned when ``bins`` are given).

    The one place curation turns attribute values into groups, with the group model
    (:func:`fairfoundry.groups.intersect_groups`: bins in numeric order, missing values ``unknown``).
    """
    from ..groups import intersect_groups

    if column not in frame.columns:
        from .._errors import did_you_mean

        raise FairfoundryError(f"column {column!r} not found in the manifest",
                               hint=did_you_mean(column, frame.columns, what="its columns"))
    return intersect_groups(frame[[column]], [column], bins={column: list(bins)} if bins else None)


def _contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Counts of every (a, b) pair of integer codes, empty rows / columns dropped."""
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    t = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb)
    return t[t.sum(1) > 0][:, t.sum(0) > 0]


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _expected_mi(a: np.ndarray, b: np.ndarray, n: int) -> float:
    """E[MI] under the permutation (hypergeometric) model, Vinh, Epps & Bailey (2010), eq. 24a."""
    from scipy.special import gammaln

    emi = 0.0
    lg = gammaln(np.arange(n + 2))
    for ai in a:
        for bj in b:
            nij = np.arange(max(1, ai + bj - n), min(ai, bj) + 1)
            if not len(nij):
                continue
            logp = (lg[ai + 1] + lg[bj + 1] + lg[n - ai + 1] + lg[n - bj + 1] - lg[n + 1] - lg[nij + 1]
                    - lg[ai - nij + 1] - lg[bj - nij + 1] - lg[n - ai - bj + nij + 1])
            emi += float((nij / n * np.log(n * nij / (ai * bj)) * np.exp(logp)).sum())
    return emi


def adjusted_mutual_info(u, v) -> float:
    """AMI with arithmetic normalisation (scikit-learn's default; it is the test oracle).

    Examples
    --------
    >>> round(adjusted_mutual_info([0, 0, 1, 1], [0, 0, 1, 1]), 3)
    1.0
    """
    u, v = np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64)
    t = _contingency(u, v)
    if t.shape[0] == t.shape[1] == 1:
        return 1.0
    n = int(t.sum())
    a, b = t.sum(1), t.sum(0)
    nz = t > 0
    mi = float((t[nz] / n * np.log(n * t[nz] / np.outer(a, b)[nz])).sum())
    emi = _expected_mi(a, b, n)
    denom = 0.5 * (_entropy(a) + _entropy(b)) - emi
    tiny = np.finfo(float).eps
    denom = min(denom, -tiny) if denom < 0 else max(denom, tiny)
    return float((mi - emi) / denom)


def adjusted_rand(u, v) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985) from the contingency table.

    Examples
    --------
    >>> adjusted_rand([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    """
    t = _contingency(np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64)).astype(float)
    n = t.sum()
    comb = lambda x: x * (x - 1) / 2  # noqa: E731
    s_ij, s_a, s_b = comb(t).sum(), comb(t.sum(1)).sum(), comb(t.sum(0)).sum()
    expected = s_a * s_b / comb(n) if n > 1 else 0.0
    top = 0.5 * (s_a + s_b)
    if top == expected:
        return 1.0
    return float((s_ij - expected) / (top - expected))


def proxy_agreement(proxy, attribute, *, n_boot: int = 500, n_perm: int = 200, level: float = 0.95,
                    seed: int = 0) -> dict:
    """AMI and ARI between proxy groups and a recorded attribute, with bootstrap CIs.

    .. math:: \\mathrm{AMI}(U, V) = \\frac{I(U; V) - E[I(U; V)]}{\\tfrac12 (H(U) + H(V)) - E[I(U; V)]}

    (arithmetic normalisation, scikit-learn's default; the expectation is under random
    labellings with the same group sizes). ARI is the Rand index corrected for chance.

    Parameters
    ----------
    proxy, attribute : (n,) group labels
    n_boot : bootstrap replicates (rows drawn with replacement)
    n_perm : permutations for the AMI p-value (0: none)
    level : CI level

    Returns
    -------
    dict with ``ami``, ``ami_ci_low``, ``ami_ci_high``, ``ami_p_value``, ``ari``, ``ari_ci_low``,
    ``ari_ci_high``, ``n``, ``n_proxy_groups``, ``n_attribute_groups``.

    Examples
    --------
    >>> r = proxy_agreement(["a", "a", "b", "b"] * 10, ["x", "x", "y", "y"] * 10, n_boot=50, n_perm=0)
    >>> round(r["ami"], 3), round(r["ari"], 3)
    (1.0, 1.0)
    """
    import pandas as pd

    from ..metrics import intersect_groups

    p, a = np.asarray(proxy, dtype=object), np.asarray(attribute, dtype=object)
    if len(p) != len(a):
        raise FairfoundryError(f"proxy groups ({len(p)}) and attribute ({len(a)}) differ in length")
    pc, _ = intersect_groups(pd.DataFrame({"proxy": p}), ["proxy"])
    ac, _ = intersect_groups(pd.DataFrame({"attribute": a}), ["attribute"])
    ami, ari = adjusted_mutual_info, adjusted_rand
    rng = np.random.default_rng(seed)
    est_ami, est_ari = float(ami(ac, pc)), float(ari(ac, pc))
    boots = np.full((n_boot, 2), np.nan)
    n = len(pc)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        boots[b] = (ami(ac[idx], pc[idx]), ari(ac[idx], pc[idx]))
    q = (1 - level) / 2
    lo = np.nanquantile(boots, q, axis=0) if n_boot else [np.nan, np.nan]
    hi = np.nanquantile(boots, 1 - q, axis=0) if n_boot else [np.nan, np.nan]
    pval = np.nan
    if n_perm:
        null = np.array([ami(rng.permutation(ac), pc) for _ in range(n_perm)])
        pval = float((1 + (null >= est_ami).sum()) / (n_perm + 1))
    return {"ami": est_ami, "ami_ci_low": float(lo[0]), "ami_ci_high": float(hi[0]), "ami_p_value": pval,
            "ari": est_ari, "ari_ci_low": float(lo[1]), "ari_ci_high": float(hi[1]), "n": n,
            "n_proxy_groups": int(pc.max() + 1), "n_attribute_groups": int(ac.max() + 1)}
