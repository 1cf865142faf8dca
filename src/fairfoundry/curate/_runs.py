"""The four ``fairfoundry curate`` commands as library functions: read, check, compute, write.

Each reads a manifest (+ embeddings from ``fairfoundry embed``), validates everything before
writing anything, and writes into ``out`` atomically (staged, then moved): ``manifest.csv``
(the curated manifest, image paths made absolute), ``decisions.csv`` (one row per input row:
what happened to it and why), the command's own tables, ``report.html`` and ``curate.json``
(config, seed, versions, input fingerprints).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .._errors import FairfoundryError

__all__ = ["run_dedup", "run_balance", "run_proxies", "run_slices"]

log = logging.getLogger(__name__)


def _load(manifest, embeddings, *, required=("sample_id",)):
    from ._inputs import aligned_embeddings, read_curate_manifest

    m = read_curate_manifest(manifest, required=tuple(required))
    X = aligned_embeddings(embeddings, m) if embeddings is not None else None
    return m, X


def _absolute_paths(m):
    if "path" not in m.columns:
        return m
    from ._inputs import image_paths

    return m.assign(path=[str(p.resolve()) for p in image_paths(m)])


def _inputs_info(manifest, embeddings) -> dict:
    from .._io import file_fingerprint

    info = {"manifest": str(manifest), "manifest_sha256": file_fingerprint(manifest)}
    if embeddings is not None:
        e = Path(embeddings)
        info["embeddings"] = str(e)
        f = e / "embeddings.npy" if e.is_dir() else e
        info["embeddings_sha256"] = file_fingerprint(f)
    return info


def _write(out, *, overwrite: bool, kind: str, config: dict, seed, inputs: dict, tables: dict, html: str) -> Path:
    from .._io import (
        prepare_out_dir,
        staged_dir,
        write_sidecar,
        write_table_atomic,
        write_text_atomic,
    )

    out = prepare_out_dir(out, overwrite=overwrite, outputs=[*tables, "report.html", "curate.json"])
    with staged_dir(out) as stage:
        for name, frame in tables.items():
            # manifests are data read back; the other tables are reports (formula cells quoted)
            write_table_atomic(stage / name, frame, report=name != "manifest.csv")
        write_text_atomic(stage / "report.html", html)
        write_sidecar(stage / "curate.json", kind=kind, config=config, seed=seed, inputs=inputs)
    return out


def _check_out(out, overwrite: bool, names: Sequence[str]) -> None:
    from .._io import prepare_out_dir

    prepare_out_dir(out, overwrite=overwrite, outputs=[*names, "report.html", "curate.json"])


def run_dedup(manifest: str | os.PathLike, *, out: str | os.PathLike, embeddings=None, exact: bool = True,
              near: bool = True, min_similarity: float = 0.94, max_hash_distance: int = 4, neighbours: int = 10,
              semantic_clusters: int | None = None, semantic_threshold: float = 0.95, keep: str = "farthest",
              attributes: Sequence[str] = ("sex",), seed: int = 0, device: str = "cpu", overwrite: bool = False,
              progress: Callable[[int], None] | None = None) -> Path:
    """``fairfoundry curate dedup``: exact, near and semantic duplicates; leakage across patients and splits.

    Writes ``manifest.csv`` (rows kept), ``decisions.csv``, ``pairs.csv`` (every duplicate pair
    with its similarity), ``leakage.csv`` (pairs across patients or splits), ``report.html``.
    """
    import pandas as pd

    from ._dedup import find_duplicates
    from ._html import composition_table, render_page, table, thumbnails

    names = ["manifest.csv", "decisions.csv", "pairs.csv", "leakage.csv"]
    _check_out(out, overwrite, names)
    m, X = _load(manifest, embeddings, required=("sample_id", "path") if (exact or near) else ("sample_id",))
    if semantic_clusters is not None:
        from ._inputs import check_count

        check_count(semantic_clusters, name="k", n=len(m), what="rows")
    res = find_duplicates(m, embeddings=X, exact=exact, near=near, min_similarity=min_similarity,
                          max_hash_distance=max_hash_distance, neighbours=neighbours,
                          semantic_clusters=semantic_clusters, semantic_threshold=semantic_threshold, keep=keep,
                          seed=seed, device=device, progress=progress)
    kept = _absolute_paths(m)[res.keep]
    counts = res.pairs["kind"].value_counts()
    summary = [f"{len(m)} rows; {int((~res.keep).sum())} dropped as duplicates, {int(res.keep.sum())} kept.",
               "pairs: " + (", ".join(f"{k} {int(counts.get(k, 0))}" for k in ("exact", "near", "semantic"))),
               f"{int(res.pairs['leakage'].sum())} pair(s) cross patients or splits (leakage)."]
    pos = pd.Series(np.arange(len(m)), index=m["sample_id"].astype(str))
    groups = {}
    for r in res.pairs.head(12).itertuples(index=False):
        groups[f"{r.kind} pair {r.sample_id_a} / {r.sample_id_b} (similarity {r.similarity:.3f})"] = \
            [pos[r.sample_id_a], pos[r.sample_id_b]]
    attrs = [a for a in attributes if a in m.columns]
    sections = [
        {"title": "Duplicate pairs", "tables": [table(res.pairs)], "thumbs": thumbnails(m, groups, per_group=2)},
        {"title": "Leakage (pairs across patients or splits)", "tables": [table(res.leakage)]},
        {"title": "Group composition before / after",
         "tables": [table(composition_table(m, res.keep, attrs))] if attrs else []},
        {"title": "Dropped rows", "tables": [table(res.decisions[res.decisions["decision"] == "drop"])]},
    ]
    html = render_page(title="Duplicates", summary=summary, sections=sections, seed=seed)
    return _write(out, overwrite=overwrite, kind="fairfoundry.curate.dedup", config=res.config, seed=seed,
                  inputs=_inputs_info(manifest, embeddings),
                  tables={"manifest.csv": kept, "decisions.csv": res.decisions, "pairs.csv": res.pairs,
                          "leakage.csv": res.leakage},
                  html=html)


def run_balance(manifest: str | os.PathLike, *, embeddings, out: str | os.PathLike, target: int,
                n_clusters: Sequence[int] = (100, 20, 5), resampling_steps: int | Sequence[int] = 3,
                balance_by: str | None = None, bins: dict | None = None, attributes: Sequence[str] = ("sex",),
                seed: int = 0, device: str = "cpu", backend: str = "torch", overwrite: bool = False,
                progress: Callable[[int], None] | None = None) -> Path:
    """``fairfoundry curate balance``: hierarchical k-means with resampling, then a balanced sample.

    Writes ``manifest.csv`` (the ``target`` rows selected, with ``cluster_l1`` ... columns),
    ``decisions.csv``, ``clusters.csv`` (size of every cluster of every level before / after),
    ``report.html``.
    """
    import pandas as pd

    from ._html import cluster_size_figure, composition_table, render_page, table, thumbnails
    from ._inputs import check_count
    from ._kmeans import HierarchicalKMeans

    if embeddings is None:
        raise FairfoundryError("balanced curation needs --embeddings (from `fairfoundry embed`)")
    names = ["manifest.csv", "decisions.csv", "clusters.csv"]
    _check_out(out, overwrite, names)
    m, X = _load(manifest, embeddings)
    n = len(m)
    check_count(target, name="target", n=n, what="rows")
    hk = HierarchicalKMeans(n_clusters=n_clusters, resampling_steps=resampling_steps, seed=seed, device=device,
                            backend=backend, progress=progress)
    hk._check(n)
    codes = None
    if balance_by is not None:
        from ._proxies import attribute_codes

        codes, _ = attribute_codes(m, balance_by, bins=(bins or {}).get(balance_by))
    hk.fit(X)
    idx = hk.balanced_sample(target, seed=seed, groups=codes)
    keep = np.zeros(n, dtype=bool)
    keep[idx] = True
    T = len(hk.n_clusters)
    cur = _absolute_paths(m)
    for t in range(T):
        cur[f"cluster_l{t + 1}"] = hk.labels_[:, t]
    rows = []
    for t, k in enumerate(hk.n_clusters):
        after = np.bincount(hk.labels_[keep, t], minlength=k)
        for c in range(k):
            rows.append({"level": t + 1, "cluster": c, "n_before": int(hk.counts_[t][c]), "n_after": int(after[c])})
    clusters = pd.DataFrame(rows)
    l1 = hk.labels_[:, 0]
    after1 = np.bincount(l1[keep], minlength=hk.n_clusters[0])
    dec = pd.DataFrame({"sample_id": m["sample_id"].astype(str), "decision": np.where(keep, "keep", "drop"),
                        "cluster_l1": l1})
    dec["reason"] = np.where(keep, "sampled", [f"not drawn: level-1 cluster {c} has {hk.counts_[0][c]} rows, "
                                               f"quota {after1[c]}" for c in l1])
    attrs = [a for a in dict.fromkeys([*(attributes or []), *([balance_by] if balance_by else [])]) if a in m.columns]
    big = np.argsort(-hk.counts_[0])[:8]
    thumbs = thumbnails(m, {f"level-1 cluster {c} ({hk.counts_[0][c]} rows, {after1[c]} kept)":
                            np.flatnonzero(l1 == c)[:6] for c in big})
    top = clusters[clusters["level"] == T]
    sections = [
        {"title": "Cluster sizes before / after (level 1)",
         "figures": [cluster_size_figure(hk.counts_[0], after1, what="level-1 cluster")]},
        {"title": f"Top level ({hk.n_clusters[-1]} clusters)", "tables": [table(top)]},
        {"title": "Group composition before / after",
         "tables": [table(composition_table(m, keep, attrs, bins=bins))] if attrs else [],
         "text": [f"balanced jointly with {balance_by!r} within every level-1 cluster"] if balance_by else []},
        {"title": "Sample images of the largest level-1 clusters", "thumbs": thumbs},
    ]
    summary = [f"{target} of {n} rows selected by hierarchical k-means with resampling "
               f"(k = {', '.join(map(str, hk.n_clusters))}; resampling steps {resampling_steps}) and balanced "
               "top-down sampling (Vo et al. 2024)."]
    html = render_page(title="Balanced curation", summary=summary, sections=sections, seed=seed)
    config = {"target": target, "n_clusters": list(hk.n_clusters), "resampling_steps": resampling_steps,
              "balance_by": balance_by, "bins": bins or {}, "seed": seed, "device": device, "backend": backend}
    return _write(out, overwrite=overwrite, kind="fairfoundry.curate.balance", config=config, seed=seed,
                  inputs=_inputs_info(manifest, embeddings),
                  tables={"manifest.csv": cur[keep], "decisions.csv": dec, "clusters.csv": clusters}, html=html)


def run_proxies(manifest: str | os.PathLike, *, embeddings, out: str | os.PathLike, method: str = "kmeans",
                n_clusters: int = 2, compare: Sequence[str] = (), bins: dict | None = None, bootstrap: int = 500,
                pca_components: int = 50, seed: int = 0, overwrite: bool = False) -> Path:
    """``fairfoundry curate proxies``: proxy groups (column ``proxy_cluster``) and their agreement with
    recorded attributes (AMI / ARI with bootstrap CIs).

    Writes ``manifest.csv`` (every row, plus ``proxy_cluster``), ``decisions.csv`` (the proxy group
    of every row), ``agreement.csv``, ``report.html``.
    """
    import pandas as pd

    from ._html import composition_table, render_page, table, thumbnails
    from ._proxies import PROXY_COLUMN, attribute_codes, proxy_agreement, proxy_groups

    if embeddings is None:
        raise FairfoundryError("proxy groups need --embeddings (from `fairfoundry embed`)")
    names = ["manifest.csv", "decisions.csv", "agreement.csv"]
    _check_out(out, overwrite, names)
    m, X = _load(manifest, embeddings)
    if PROXY_COLUMN in m.columns:
        raise FairfoundryError(f"the manifest already has a {PROXY_COLUMN!r} column",
                               hint="proxies are never overwritten in place; drop the column or use the original manifest")
    coded = {c: attribute_codes(m, c, bins=(bins or {}).get(c)) for c in compare}
    pg = proxy_groups(X, method=method, n_clusters=n_clusters, pca_components=pca_components, seed=seed)
    rows = []
    for c, (codes, names_) in coded.items():
        r = proxy_agreement(pg.labels, np.asarray(names_, dtype=object)[codes], n_boot=bootstrap, seed=seed)
        rows.append({"attribute": c + (f" (bins {','.join(map(str, bins[c]))})" if bins and c in bins else ""), **r})
    agreement = pd.DataFrame(rows)
    cur = _absolute_paths(m)
    cur[PROXY_COLUMN] = pg.labels
    dec = pd.DataFrame({"sample_id": m["sample_id"].astype(str), PROXY_COLUMN: pg.labels,
                        "reason": f"{method} cluster of the embedding (a proxy, not a recorded attribute)"})
    sizes = pd.Series(pg.labels).value_counts()
    keep = np.ones(len(m), dtype=bool)
    comp = []
    for g in sizes.index:
        sub = composition_table(m[pg.labels == g], keep[pg.labels == g], list(compare), bins=bins)
        sub.insert(0, PROXY_COLUMN, g)
        comp.append(sub[[PROXY_COLUMN, "attribute", "group", "n_before", "share_before"]]
                    .rename(columns={"n_before": "n", "share_before": "share"}))
    sections = [
        {"title": "Agreement with recorded attributes",
         "text": ["AMI and ARI are 0 in expectation for unrelated groupings and 1 for identical ones; CIs by "
                  f"bootstrap over rows ({bootstrap} replicates), p-value by permuting the attribute."],
         "tables": [table(agreement)] if len(agreement) else []},
        {"title": "Proxy group sizes", "tables": [table(sizes.rename_axis(PROXY_COLUMN).reset_index(name="n"))]},
        {"title": "Recorded attributes within each proxy group", "tables": [table(pd.concat(comp))] if comp and compare else []},
        {"title": "Sample images per proxy group",
         "thumbs": thumbnails(m, {g: np.flatnonzero(pg.labels == g)[:8] for g in sizes.index})},
    ]
    summary = [f"{len(sizes)} proxy group(s) by {method}; written as the separate column {PROXY_COLUMN!r}, never "
               "merged into recorded attributes. Use it as --sensitive proxy_cluster."]
    html = render_page(title="Proxy groups", summary=summary, sections=sections, seed=seed)
    config = {**pg.config, "compare": list(compare), "bins": bins or {}, "bootstrap": bootstrap}
    return _write(out, overwrite=overwrite, kind="fairfoundry.curate.proxies", config=config, seed=seed,
                  inputs=_inputs_info(manifest, embeddings),
                  tables={"manifest.csv": cur, "decisions.csv": dec, "agreement.csv": agreement}, html=html)


def run_slices(manifest: str | os.PathLike, *, embeddings, out: str | os.PathLike, label: str = "y_true",
               score: str = "y_score", split: str | None = None, n_slices: int = 10, gamma: float = 10.0,
               threshold: float = 0.5, seed: int = 0, overwrite: bool = False, by: Sequence[str] | None = None,
               alpha: float = 0.95, max_level: int = 3, min_support: int | None = None,
               fwer: float = 0.05) -> Path:
    """``fairfoundry curate slices``: underperforming slices of embedding space (Domino-style), or with
    ``by`` (metadata columns) tabular slices found by SliceLine (:func:`sliceline_slices`).

    ``manifest`` is a table with ``sample_id``, the label and the score (e.g. ``predictions.parquet``
    of ``fairfoundry fit``), optionally restricted to one ``split``. Writes ``manifest.csv`` (the
    rows with their ``slice``), ``decisions.csv``, ``slices.csv``, ``report.html``. Tabular slices
    overlap: ``slice`` is the best-ranked slice holding the row, ``decisions.csv`` lists them all;
    ``n_slices`` is the number of slices reported.
    """
    import pandas as pd

    from ._html import render_page, table, thumbnails
    from ._slices import discover_slices

    if by:
        if embeddings is not None:
            raise FairfoundryError("give --embeddings (slices of embedding space) or --by (slices over "
                                   "metadata columns), not both")
        return _run_tabular_slices(manifest, out=out, label=label, score=score, split=split, by=list(by),
                                   k=n_slices, threshold=threshold, alpha=alpha, max_level=max_level,
                                   min_support=min_support, fwer=fwer, seed=seed, overwrite=overwrite)
    if embeddings is None:
        raise FairfoundryError("slice discovery needs --embeddings (from `fairfoundry embed`) or --by "
                               "(metadata columns)")
    names = ["manifest.csv", "decisions.csv", "slices.csv"]
    _check_out(out, overwrite, names)
    m, X = _load(manifest, embeddings, required=("sample_id", label, score))
    m, X, y, p = _slice_rows(m, X, manifest=manifest, label=label, score=score, split=split)
    res = discover_slices(X, y, p, n_slices=n_slices, gamma=gamma, threshold=threshold, seed=seed)
    ids = m["sample_id"].astype(str).to_numpy()
    tab = res.table.copy()
    tab["examples"] = [" ".join(ids[e] for e in ex) for ex in tab["examples"]]
    cur = _absolute_paths(m) if "path" in m.columns else m.copy()
    cur["slice"] = res.assignment
    dec = pd.DataFrame({"sample_id": ids, "slice": res.assignment, "responsibility": res.responsibility})
    worst = res.table.head(6)
    thumbs = thumbnails(m, {f"{r.slice}: error rate {r.error_rate:.2f} (n={r.n})": r.examples
                            for r in worst.itertuples(index=False)})
    top = res.table.iloc[0]
    summary = [f"overall error rate {res.config['overall_error_rate']:.3f} (threshold {threshold}); worst slice "
               f"{top['slice']}: {top['error_rate']:.3f} [{top['ci_low']:.3f}, {top['ci_high']:.3f}] on "
               f"{int(top['n'])} rows."]
    sections = [{"title": "Slices ranked by error rate (Wilson 95% CI)", "tables": [table(tab)]},
                {"title": "Most representative images of the worst slices", "thumbs": thumbs}]
    html = render_page(title="Slice discovery", summary=summary, sections=sections, seed=seed)
    config = {**res.config, "label": label, "score": score, "split": split}
    return _write(out, overwrite=overwrite, kind="fairfoundry.curate.slices", config=config, seed=seed,
                  inputs=_inputs_info(manifest, embeddings),
                  tables={"manifest.csv": cur, "decisions.csv": dec, "slices.csv": tab}, html=html)


def _slice_rows(m, X, *, manifest, label: str, score: str, split: str | None):
    """The rows of ``split`` (all when None), their 0/1 labels and scores, checked."""
    import pandas as pd

    if split is not None:
        if "split" not in m.columns:
            raise FairfoundryError(f"--split {split} given but the manifest has no 'split' column")
        sel = (m["split"].astype(str) == split).to_numpy()
        if not sel.any():
            raise FairfoundryError(f"no row has split {split!r}",
                                   hint=f"splits are: {', '.join(sorted(m['split'].astype(str).unique()))}")
        m = m[sel].reset_index(drop=True).assign()
        m.attrs["manifest_path"] = str(Path(manifest).resolve())
        X = X[sel] if X is not None else None
    y = pd.to_numeric(m[label], errors="coerce").to_numpy()
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FairfoundryError(f"column {label!r} must be 0/1; row {i} (sample_id {m['sample_id'].iloc[i]!r}) has "
                               f"{m[label].iloc[i]!r}")
    p = pd.to_numeric(m[score], errors="coerce").to_numpy()
    badp = ~((p >= 0) & (p <= 1))
    if badp.any():
        i = int(np.flatnonzero(badp)[0])
        raise FairfoundryError(f"column {score!r} must be a probability in [0, 1]; row {i} (sample_id "
                               f"{m['sample_id'].iloc[i]!r}) has {m[score].iloc[i]!r}")
    return m, X, y, p


def _run_tabular_slices(manifest, *, out, label: str, score: str, split: str | None, by: list[str], k: int,
                        threshold: float, alpha: float, max_level: int, min_support: int | None, fwer: float,
                        seed: int, overwrite: bool) -> Path:
    """``curate slices --by COLS``: SliceLine over metadata columns (see :func:`sliceline_slices`)."""
    import pandas as pd

    from ._html import render_page, table, thumbnails
    from ._sliceline import sliceline_slices

    names = ["manifest.csv", "decisions.csv", "slices.csv"]
    _check_out(out, overwrite, names)
    m, _ = _load(manifest, None, required=("sample_id", label, score, *by))
    m, _, y, p = _slice_rows(m, None, manifest=manifest, label=label, score=score, split=split)
    err = ((p >= threshold).astype(float) != y).astype(float)
    res = sliceline_slices(m, by, err, k=k, alpha=alpha, max_level=max_level, min_support=min_support,
                           fwer=fwer)
    ids = m["sample_id"].astype(str).to_numpy()
    tab = res.table.copy()
    mem = res.members
    first = np.where(mem.any(1), mem.argmax(1), -1) if mem.shape[1] else np.full(len(m), -1)
    slice_of = np.array([tab["slice"].iloc[j] if j >= 0 else "" for j in first], dtype=object)
    cur = _absolute_paths(m) if "path" in m.columns else m.copy()
    cur["slice"] = slice_of
    dec = pd.DataFrame({"sample_id": ids, "slice": slice_of, "error": err.astype(int),
                        "in_slices": [" ".join(str(r + 1) for r in np.flatnonzero(row)) for row in mem]})
    thumbs = thumbnails(m, {f"{r.slice}: error rate {r.error_rate:.2f} (n={r.n})": np.flatnonzero(mem[:, j])
                            for j, r in enumerate(tab.head(6).itertuples(index=False))})
    cfg = res.config
    flagged = tab[tab["verdict"] == "underperforms"]
    summary = [f"overall error rate {cfg['overall_error_rate']:.3f} (threshold {threshold}) on {cfg['n']} rows; "
               f"{len(tab)} slice(s) with a positive SliceLine score (min support {cfg['min_support']}, "
               f"alpha {alpha}), {len(flagged)} flagged as underperforming (Bonferroni over the "
               f"{cfg['slices_in_lattice']} slices of the lattice, family-wise error rate {fwer})."]
    if len(tab) and not len(flagged):
        summary.append("No slice has evidence of underperforming: the ranking alone is not a finding.")
    sections = [{"title": "Slices ranked by SliceLine score (Wilson 95% CI of the error rate; exact test vs the "
                          "rest, Bonferroni-adjusted)", "tables": [table(tab)]},
                {"title": "Images of the best-ranked slices", "thumbs": thumbs}]
    html = render_page(title="Slice discovery over metadata (SliceLine)", summary=summary, sections=sections,
                       seed=seed)
    config = {**cfg, "method": "sliceline", "label": label, "score": score, "split": split, "threshold": threshold}
    return _write(out, overwrite=overwrite, kind="fairfoundry.curate.slices", config=config, seed=seed,
                  inputs=_inputs_info(manifest, None),
                  tables={"manifest.csv": cur, "decisions.csv": dec, "slices.csv": tab}, html=html)
