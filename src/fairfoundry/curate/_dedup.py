r"""Duplicates: exact (SHA-256), near-duplicate images, semantic duplicates in embedding space.

- **Exact**: byte-identical files, by :func:`fairfoundry.data.exact_duplicates` (SHA-256).
- **Near** (:func:`near_duplicates`): resized, re-encoded, slightly cropped or brightened copies.
  Every image gets a 64-bit perceptual hash (``imagehash.phash``: DCT of a 32 x 32 thumbnail,
  Zauner 2010) and a 96 x 96 grayscale thumbnail. Candidate pairs are the ``neighbours`` nearest
  images by the correlation of high-pass 32 x 32 thumbnails, plus pairs with equal hashes. Each
  candidate gets two scores:

  * ``hash_distance``: Hamming distance of the perceptual hashes (0-64);
  * ``similarity``: the **crop-aligned high-pass correlation**, fairfoundry's own verification
    step: the Pearson correlation of high-pass (thumbnail minus its Gaussian blur, sigma = 4 px)
    32 x 32 thumbnails, maximised over 28 crops of one image (0, 2.5, 5 and 7.5 % crops at 9
    anchors) against the whole other image, both ways. Perceptual hashes alone do not separate
    a 5 % crop of a chest X-ray (up to 12 bits away) from a different patient's X-ray (as close
    as 6 bits on the bundled NIH images); the aligned correlation does (>= 0.95 vs <= 0.92).

  A pair is a near duplicate when ``similarity >= min_similarity`` or
  ``hash_distance <= max_hash_distance``.
- **Semantic** (:func:`semantic_duplicates`, SemDeDup: Abbas et al., "SemDeDup: Data-efficient
  learning at web-scale through semantic deduplication", 2023, re-implemented from the paper):
  L2-normalise the embeddings, k-means them into ``n_clusters``, and within each cluster flag
  pairs whose cosine similarity exceeds ``threshold`` (the paper's :math:`1 - \epsilon`). Which
  member is kept is a documented choice (``keep``): ``"farthest"`` (the paper's: the member
  least similar to its cluster centroid, i.e. the least prototypical), ``"closest"`` or
  ``"first"`` (manifest order). A row is dropped when it is a duplicate of a row ranked before it.

For exact and near duplicates, pairs are joined into groups (connected components) and the first
row of each group in manifest order is kept. Pairs across patients or across splits are reported
as **leakage**.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .._errors import FairfoundryError

__all__ = ["near_duplicates", "semantic_duplicates", "find_duplicates", "DedupResult", "image_signatures"]

log = logging.getLogger(__name__)

_THUMB = 96
_SIDE = 32
_CROPS = (0.025, 0.05, 0.075)
_ANCHORS = (0.0, 0.5, 1.0)


def _highpass(a: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    a = a.astype(np.float32)
    a = a - ndimage.gaussian_filter(a, _SIDE / 8)
    a = a - a.mean()
    return (a / (np.linalg.norm(a) + 1e-8)).ravel()


def _variants(thumb: np.ndarray) -> np.ndarray:
    """High-pass 32 x 32 vectors of the whole thumbnail (row 0) and of its 27 crops."""
    from PIL import Image

    im = Image.fromarray(thumb)
    w, h = im.size
    out = [_highpass(np.asarray(im.resize((_SIDE, _SIDE), Image.BILINEAR)))]
    for f in _CROPS:
        cw, ch = f * w, f * h
        for ax in _ANCHORS:
            for ay in _ANCHORS:
                box = (ax * cw, ay * ch, w - (1 - ax) * cw, h - (1 - ay) * ch)
                out.append(_highpass(np.asarray(im.resize((_SIDE, _SIDE), Image.BILINEAR, box=box))))
    return np.stack(out)


@dataclass
class _Signatures:
    hashes: np.ndarray   # (n, 64) bool
    thumbs: np.ndarray   # (n, 96, 96) uint8
    base: np.ndarray     # (n, 1024) float32 high-pass whole-image vectors


def image_signatures(manifest, *, progress: Callable[[int], None] | None = None) -> _Signatures:
    """Perceptual hash and thumbnails of every image of ``manifest`` (unreadable: error naming the row)."""
    try:
        import imagehash
    except ImportError as exc:  # pragma: no cover - imagehash is in the curate extra
        raise FairfoundryError("near-duplicate detection needs imagehash",
                               hint="pip install 'fairfoundry[curate]'") from exc
    from PIL import Image

    from ._inputs import image_paths, load_gray

    paths = image_paths(manifest)
    n = len(paths)
    hashes = np.zeros((n, 64), dtype=bool)
    thumbs = np.zeros((n, _THUMB, _THUMB), dtype=np.uint8)
    base = np.zeros((n, _SIDE * _SIDE), dtype=np.float32)
    for i, p in enumerate(paths):
        im = load_gray(p, manifest=manifest, row=i)
        hashes[i] = imagehash.phash(im).hash.ravel()
        t = im.resize((_THUMB, _THUMB), Image.BILINEAR)
        thumbs[i] = np.asarray(t)
        base[i] = _highpass(np.asarray(t.resize((_SIDE, _SIDE), Image.BILINEAR)))
        if progress is not None:
            progress(1)
    return _Signatures(hashes, thumbs, base)


def _topk_pairs(V: np.ndarray, k: int, *, chunk: int = 4096) -> set[tuple[int, int]]:
    """Pairs (i < j) where j is among the k most similar rows of i (inner product)."""
    n = V.shape[0]
    k = min(k, n - 1)
    pairs: set[tuple[int, int]] = set()
    if k <= 0:
        return pairs
    for s in range(0, n, chunk):
        sim = V[s:s + chunk] @ V.T
        rows = np.arange(s, min(s + chunk, n))
        sim[rows - s, rows] = -np.inf
        nn = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        for r, js in zip(rows, nn, strict=True):
            for j in js:
                pairs.add((min(r, int(j)), max(r, int(j))))
    return pairs


def _aligned_similarity(va: np.ndarray, vb: np.ndarray) -> float:
    return float(max((va @ vb[0]).max(), (vb @ va[0]).max()))


def near_duplicates(manifest, *, min_similarity: float = 0.94, max_hash_distance: int = 4,
                    neighbours: int = 10, signatures: _Signatures | None = None,
                    progress: Callable[[int], None] | None = None):
    """Near-duplicate image pairs (see the module docstring for the two scores).

    Parameters
    ----------
    manifest : validated manifest with ``sample_id`` and ``path``
    min_similarity : crop-aligned high-pass correlation at or above which a pair is flagged
    max_hash_distance : perceptual-hash Hamming distance at or below which a pair is flagged
    neighbours : candidates per image (nearest by whole-image high-pass correlation)

    Returns
    -------
    pandas.DataFrame
        One row per candidate pair: ``i``, ``j`` (row positions, ``i < j``), ``similarity``,
        ``hash_distance``, ``flagged``.
    """
    import pandas as pd

    sig = signatures if signatures is not None else image_signatures(manifest, progress=progress)
    n = len(sig.base)
    cand = _topk_pairs(sig.base, neighbours)
    # equal perceptual hashes are candidates even when the thumbnails disagree
    packed = np.packbits(sig.hashes, axis=1)
    keys = pd.Series([bytes(r) for r in packed])
    for _, idx in keys.groupby(keys).groups.items():
        idx = sorted(idx)
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                cand.add((idx[a], idx[b]))
    cache: dict[int, np.ndarray] = {}

    def var(i: int) -> np.ndarray:
        if i not in cache:
            cache[i] = _variants(sig.thumbs[i])
        return cache[i]

    rows = []
    for i, j in sorted(cand):
        hd = int((sig.hashes[i] != sig.hashes[j]).sum())
        s = _aligned_similarity(var(i), var(j))
        rows.append((i, j, s, hd))
    frame = pd.DataFrame(rows, columns=["i", "j", "similarity", "hash_distance"])
    frame["flagged"] = (frame["similarity"] >= min_similarity) | (frame["hash_distance"] <= max_hash_distance)
    log.info("near duplicates: %d candidate pairs among %d images, %d flagged", len(frame), n,
             int(frame["flagged"].sum()))
    return frame


def semantic_duplicates(X, *, n_clusters: int, threshold: float = 0.95, keep: str = "farthest",
                        seed: int = 0, device: str = "cpu", backend: str = "torch"):
    """SemDeDup (Abbas et al. 2023): pairs with cosine similarity above ``threshold`` within clusters.

    .. math:: \\cos(x_i, x_j) = \\frac{x_i \\cdot x_j}{\\lVert x_i \\rVert \\lVert x_j \\rVert} > 1 - \\epsilon

    Parameters
    ----------
    X : (n, d) embeddings
    n_clusters : k-means clusters (``1 <= n_clusters <= n``); pairs are only compared within one
    threshold : cosine similarity above which two rows are semantic duplicates
    keep : which member of a duplicate set stays: ``"farthest"`` from the centroid (the paper's
        choice), ``"closest"``, or ``"first"`` in row order
    seed, device, backend : for the k-means

    Returns
    -------
    (pairs, dropped)
        ``pairs``: DataFrame ``i``, ``j``, ``similarity``, ``cluster``; ``dropped``: dict row ->
        (row it duplicates, similarity), the rows SemDeDup removes.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 0], [1, 0.01], [0, 1], [0.01, 1], [-1, 0]], dtype=np.float32)
    >>> pairs, dropped = semantic_duplicates(X, n_clusters=2, threshold=0.99, keep="first")
    >>> sorted(dropped)
    [1, 3]
    """
    import pandas as pd

    from ._inputs import check_count
    from ._kmeans import kmeans

    if keep not in ("farthest", "closest", "first"):
        raise FairfoundryError(f"keep={keep!r} is not one of farthest, closest, first")
    if not 0 < threshold <= 1:
        raise FairfoundryError(f"threshold={threshold} must be in (0, 1]")
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    check_count(n_clusters, name="k", n=n, what="embeddings")
    Z = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    C, labels = kmeans(Z, n_clusters, seed=seed, device=device, backend=backend)
    Cn = C / np.maximum(np.linalg.norm(C, axis=1, keepdims=True), 1e-12)
    to_centroid = (Z * Cn[labels]).sum(1)
    pairs, dropped = [], {}
    for c in range(n_clusters):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            continue
        if keep == "farthest":
            idx = idx[np.argsort(to_centroid[idx], kind="stable")]
        elif keep == "closest":
            idx = idx[np.argsort(-to_centroid[idx], kind="stable")]
        S = Z[idx] @ Z[idx].T
        a, b = np.nonzero(np.triu(S > threshold, k=1))
        for p, q in zip(a, b, strict=True):
            i, j = int(idx[p]), int(idx[q])
            pairs.append((min(i, j), max(i, j), float(S[p, q]), c))
        masked = np.triu(S, k=1)  # row q is dropped if some earlier-ranked row p is too similar
        masked[np.tril_indices(len(idx))] = -np.inf
        best = masked.max(axis=0)
        arg = masked.argmax(axis=0)
        for q in np.flatnonzero(best > threshold):
            dropped[int(idx[q])] = (int(idx[arg[q]]), float(best[q]))
    return pd.DataFrame(pairs, columns=["i", "j", "similarity", "cluster"]), dropped


@dataclass
class DedupResult:
    """What :func:`find_duplicates` found.

    Attributes
    ----------
    pairs : DataFrame, one row per duplicate pair: ``sample_id_a``, ``sample_id_b``, ``kind``
        (exact / near / semantic), ``similarity``, ``hash_distance``, ``patient_a``, ``patient_b``,
        ``split_a``, ``split_b``, ``cross_patient``, ``cross_split``, ``leakage``
    decisions : DataFrame, one row per manifest row: ``sample_id``, ``decision`` (keep / drop),
        ``reason``, ``duplicate_of``, ``similarity``
    keep : boolean mask over manifest rows
    config : the settings used
    """

    pairs: object
    decisions: object
    keep: np.ndarray
    config: dict = field(default_factory=dict)

    @property
    def leakage(self):
        return self.pairs[self.pairs["leakage"]]


def _components(n: int, edges: list[tuple[int, int]]) -> np.ndarray:
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)])


def find_duplicates(manifest, *, embeddings=None, exact: bool = True, near: bool = True,
                    min_similarity: float = 0.94, max_hash_distance: int = 4, neighbours: int = 10,
                    semantic_clusters: int | None = None, semantic_threshold: float = 0.95,
                    keep: str = "farthest", seed: int = 0, device: str = "cpu",
                    progress: Callable[[int], None] | None = None) -> DedupResult:
    """Exact, near and (with ``embeddings``) semantic duplicates of a manifest, and what to drop.

    Parameters
    ----------
    manifest : validated manifest (``sample_id``; ``path`` for exact and near; ``patient_id``
        and ``split`` when present are used to report leakage)
    embeddings : optional (n, d) array aligned with the manifest, for semantic duplicates
    exact, near : run these checks (they read the images)
    min_similarity, max_hash_distance, neighbours : see :func:`near_duplicates`
    semantic_clusters : k of SemDeDup's k-means (default ``max(1, round(sqrt(n / 2)))``)
    semantic_threshold, keep : see :func:`semantic_duplicates`

    Returns
    -------
    DedupResult
    """
    import pandas as pd

    n = len(manifest)
    ids = manifest["sample_id"].astype(str).to_numpy()
    rows: list[dict] = []
    image_edges: list[tuple[int, int]] = []
    sim_of: dict[tuple[int, int], float] = {}
    if exact:
        from ..data import exact_duplicates

        base = manifest.attrs.get("manifest_path")
        from pathlib import Path

        from ._inputs import image_paths

        paths = image_paths(manifest)
        frame = manifest.assign(_abs=[str(p) for p in paths])
        dups, problems = exact_duplicates(frame, path_col="_abs", root=Path(base).parent if base else ".")
        if len(problems):
            p = problems.iloc[0]
            row = int(np.flatnonzero(frame["_abs"].to_numpy() == p["path"])[0])
            raise FairfoundryError(f"row {row} (file line {row + 2}, sample_id {ids[row]!r}): cannot read image "
                                   f"{p['path']}: {p['error']}")
        pos = pd.Series(np.arange(n), index=ids)
        for _, g in dups.groupby("group"):
            members = sorted(pos.loc[g["sample_id"].astype(str)].tolist())
            for b in members[1:]:
                rows.append({"i": members[0], "j": b, "kind": "exact", "similarity": 1.0, "hash_distance": 0})
                image_edges.append((members[0], b))
                sim_of[(members[0], b)] = 1.0
    if near:
        nd = near_duplicates(manifest, min_similarity=min_similarity, max_hash_distance=max_hash_distance,
                             neighbours=neighbours, progress=progress)
        exact_set = {(r["i"], r["j"]) for r in rows}
        for r in nd[nd["flagged"]].itertuples(index=False):
            if (r.i, r.j) in exact_set:
                continue
            rows.append({"i": int(r.i), "j": int(r.j), "kind": "near", "similarity": float(r.similarity),
                         "hash_distance": int(r.hash_distance)})
            image_edges.append((int(r.i), int(r.j)))
            sim_of[(int(r.i), int(r.j))] = float(r.similarity)
    drop_reason: dict[int, tuple[str, int, float]] = {}
    comp = _components(n, image_edges)
    for i in range(n):
        if comp[i] != i:  # not the first row of its group
            root = int(comp[i])
            kind = "exact" if any(r["kind"] == "exact" and i in (r["i"], r["j"]) for r in rows) else "near"
            drop_reason[i] = (kind, root, sim_of.get((min(root, i), max(root, i)), np.nan))
    if embeddings is not None:
        k = semantic_clusters or max(1, int(round(np.sqrt(n / 2))))
        sp, sdrop = semantic_duplicates(embeddings, n_clusters=k, threshold=semantic_threshold, keep=keep,
                                        seed=seed, device=device)
        for r in sp.itertuples(index=False):
            rows.append({"i": int(r.i), "j": int(r.j), "kind": "semantic", "similarity": float(r.similarity),
                         "hash_distance": np.nan})
        for i, (j, s) in sdrop.items():
            drop_reason.setdefault(i, ("semantic", j, s))
    pairs = pd.DataFrame(rows, columns=["i", "j", "kind", "similarity", "hash_distance"])
    pat = manifest["patient_id"].astype(str).to_numpy() if "patient_id" in manifest.columns else None
    spl = manifest["split"].astype(str).to_numpy() if "split" in manifest.columns else None
    out = pd.DataFrame({"sample_id_a": ids[pairs["i"].to_numpy(dtype=int)],
                        "sample_id_b": ids[pairs["j"].to_numpy(dtype=int)],
                        "kind": pairs["kind"], "similarity": pairs["similarity"].astype(float),
                        "hash_distance": pairs["hash_distance"]})
    ii, jj = pairs["i"].to_numpy(dtype=int), pairs["j"].to_numpy(dtype=int)
    out["patient_a"] = pat[ii] if pat is not None else None
    out["patient_b"] = pat[jj] if pat is not None else None
    out["split_a"] = spl[ii] if spl is not None else None
    out["split_b"] = spl[jj] if spl is not None else None
    out["cross_patient"] = (pat[ii] != pat[jj]) if pat is not None else False
    out["cross_split"] = (spl[ii] != spl[jj]) if spl is not None else False
    out["leakage"] = out["cross_patient"] | out["cross_split"]
    keep_mask = np.ones(n, dtype=bool)
    keep_mask[list(drop_reason)] = False
    dec = pd.DataFrame({"sample_id": ids, "decision": np.where(keep_mask, "keep", "drop")})
    dec["reason"] = [f"{drop_reason[i][0]} duplicate" if i in drop_reason else "" for i in range(n)]
    dec["duplicate_of"] = [ids[drop_reason[i][1]] if i in drop_reason else "" for i in range(n)]
    dec["similarity"] = [drop_reason[i][2] if i in drop_reason else np.nan for i in range(n)]
    config = {"exact": exact, "near": near, "min_similarity": min_similarity,
              "max_hash_distance": max_hash_distance, "neighbours": neighbours,
              "semantic": embeddings is not None, "semantic_threshold": semantic_threshold, "keep": keep,
              "semantic_clusters": (semantic_clusters or max(1, int(round(np.sqrt(n / 2)))))
              if embeddings is not None else None, "seed": seed}
    return DedupResult(pairs=out, decisions=dec, keep=keep_mask, config=config)
