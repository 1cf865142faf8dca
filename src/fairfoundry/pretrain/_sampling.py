r"""Fairness-aware data selection for pre-training: who the model learns from.

A :class:`BatchSampler` decides which manifest rows make up each training batch:

- ``uniform``: shuffled epochs over the whole manifest (every image once per epoch).
- ``balanced``: group-balanced sampling over one or more attributes (their intersection):
  each draw picks a group uniformly, then an image of that group uniformly, so every group is
  seen equally often whatever its size, i.e. image :math:`i` of group :math:`g` is drawn with
  probability :math:`1 / (G\, n_g)`. Small groups are re-used (with replacement).
- ``stratified``: attribute-stratified batches: every batch holds the groups in fixed
  proportions (the manifest's own by default, or a target composition such as
  ``{"female": 0.5, "male": 0.5}``), allocated by largest remainder, without replacement
  inside a group until it is exhausted.

Sampling from a curated manifest (the output of ``fairfoundry curate``) is a matter of passing
that manifest, or a ``--keep-column`` that marks the selected rows (see
:func:`select_rows`). Each batch is a pure function of ``(seed, step)``, so a resumed run draws
exactly the batches the uninterrupted run would have drawn. :class:`CompositionTracker` counts
the groups actually seen, for the run report.

Missing attribute values form their own group, ``unknown`` (never dropped, never imputed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .._errors import FairfoundryError, did_you_mean

__all__ = ["BatchSampler", "CompositionTracker", "SAMPLING_MODES", "group_labels", "select_rows"]

log = logging.getLogger(__name__)

SAMPLING_MODES = ("uniform", "balanced", "stratified")
UNKNOWN = "unknown"


def group_labels(frame: pd.DataFrame, columns: Sequence[str], *, what: str = "manifest") -> pd.Series:
    """Intersectional group label per row (``"female|60-80"``); missing values are ``unknown``.

    Raises
    ------
    FairfoundryError
        If a column is not in the manifest (with the closest names).
    """
    cols = list(columns)
    for col in cols:
        if col not in frame.columns:
            raise FairfoundryError(f"column {col!r} not found in the {what}",
                                   hint=did_you_mean(col, frame.columns, what="columns"))
    parts = [frame[c].astype("string").fillna(UNKNOWN).replace("", UNKNOWN) for c in cols]
    label = parts[0]
    for p in parts[1:]:
        label = label + "|" + p
    return label.astype(str).reset_index(drop=True)


def select_rows(frame: pd.DataFrame, *, keep_column: str | None = None,
                sample_ids: Sequence[str] | None = None, what: str = "manifest") -> pd.DataFrame:
    """Rows of a manifest chosen by curation: a boolean/0-1 ``keep_column`` or a list of ids.

    Raises
    ------
    FairfoundryError
        If the column is missing or not boolean, an id is unknown, or nothing is selected.
    """
    out = frame
    if keep_column is not None:
        if keep_column not in frame.columns:
            raise FairfoundryError(f"keep column {keep_column!r} not found in the {what}",
                                   hint=did_you_mean(keep_column, frame.columns, what="columns"))
        col = frame[keep_column]
        values = {v.item() if hasattr(v, "item") else v for v in pd.unique(col.dropna())}
        if not all(isinstance(v, (bool, int, float)) and v in (0, 1) for v in values):
            raise FairfoundryError(f"keep column {keep_column!r} must hold 0/1 or true/false, "
                                   f"found {sorted(map(str, values))[:5]}")
        out = out[col.fillna(0).astype(bool).to_numpy()]
    if sample_ids is not None:
        ids = pd.Index(map(str, sample_ids))
        known = pd.Index(frame["sample_id"].astype(str))
        missing = ids.difference(known)
        if len(missing):
            raise FairfoundryError(f"{len(missing)} selected sample_id(s) are not in the {what}, "
                                   f"e.g. {missing[0]!r}")
        out = out[out["sample_id"].astype(str).isin(ids).to_numpy()]
    if len(out) == 0:
        raise FairfoundryError(f"the selection keeps no rows of the {what}")
    return out.reset_index(drop=True)


class BatchSampler:
    """Seeded batches of row indices; see the module docstring for the modes.

    Parameters
    ----------
    groups : array-like of str, optional
        Group label of each row (from :func:`group_labels`); required for ``balanced`` and
        ``stratified``.
    n : int
        Number of rows (when ``groups`` is None).
    batch_size : int
    mode : {"uniform", "balanced", "stratified"}
    target : mapping group -> weight, optional
        Target composition for ``balanced`` (groups drawn in these proportions instead of
        uniformly) and ``stratified`` (instead of the manifest's proportions); normalised to
        sum to 1. Groups left out of ``target`` are never drawn.
    seed : int

    Raises
    ------
    FairfoundryError
        For an unknown mode, a target naming a group with no rows (an empty group), a target
        with no positive weight, or a mode that needs groups without them.
    """

    def __init__(self, groups=None, *, n: int | None = None, batch_size: int, mode: str = "uniform",
                 target: Mapping[str, float] | None = None, seed: int = 0):
        if mode not in SAMPLING_MODES:
            raise FairfoundryError(f"unknown sampling mode {mode!r}",
                                   hint=did_you_mean(mode, SAMPLING_MODES, what="modes"))
        if groups is None and mode != "uniform":
            raise FairfoundryError(f"sampling {mode!r} needs attributes to balance",
                                   hint="pass --balance-by COLUMN (e.g. sex or sex,age_group)")
        self.mode, self.seed, self.batch_size = mode, int(seed), int(batch_size)
        if self.batch_size < 1:
            raise FairfoundryError(f"batch size must be positive, got {batch_size}")
        if groups is not None:
            codes, uniques = pd.factorize(pd.Series(np.asarray(groups, dtype=object)), sort=True)
            self.groups = [str(u) for u in uniques]
            self.codes = codes
            self.n = len(codes)
        else:
            self.groups, self.codes, self.n = [], None, int(n or 0)
        if self.n == 0:
            raise FairfoundryError("cannot sample from an empty manifest")
        self.members = ([np.flatnonzero(self.codes == g) for g in range(len(self.groups))]
                        if self.codes is not None else [])
        self.weights = self._target_weights(target) if self.groups else None

    def _target_weights(self, target):
        g = len(self.groups)
        if target is None:
            if self.mode == "stratified":
                return np.array([len(m) for m in self.members], dtype=float) / self.n
            return np.full(g, 1.0 / g)
        unknown = [k for k in target if str(k) not in self.groups]
        if unknown:
            raise FairfoundryError(
                f"target composition names group(s) with no rows in the manifest: "
                f"{', '.join(map(repr, unknown))} (empty groups cannot be sampled)",
                hint=f"groups present are: {', '.join(self.groups)}",
            )
        target = {str(k): v for k, v in target.items()}
        w = np.array([float(target.get(name, 0.0)) for name in self.groups])
        if (w < 0).any() or w.sum() <= 0:
            raise FairfoundryError("target composition needs non-negative weights with a positive sum")
        left_out = [name for name in self.groups if name not in target]
        if left_out:
            log.warning("target composition leaves out group(s) %s: they will never be drawn",
                        ", ".join(map(repr, left_out)))
        return w / w.sum()

    # ------------------------------------------------------------------------------------
    def batch(self, step: int) -> np.ndarray:
        """Row indices of the batch drawn at ``step`` (a pure function of seed and step)."""
        if self.mode == "uniform":
            return self._uniform(step)
        rng = np.random.default_rng([self.seed, int(step), 1])
        if self.mode == "balanced":
            which = rng.choice(len(self.groups), size=self.batch_size, p=self.weights)
            out = np.empty(self.batch_size, dtype=np.int64)
            for g in np.unique(which):
                pos = np.flatnonzero(which == g)
                out[pos] = rng.choice(self.members[g], size=len(pos), replace=True)
            return out
        counts = _largest_remainder(self.weights, self.batch_size)
        parts = []
        for g, k in enumerate(counts):
            if k:
                m = self.members[g]
                parts.append(rng.choice(m, size=k, replace=k > len(m)))
        out = np.concatenate(parts)
        return out[rng.permutation(len(out))]

    def _uniform(self, step: int) -> np.ndarray:
        start = int(step) * self.batch_size
        idx = []
        while len(idx) < self.batch_size:
            epoch, offset = divmod(start, self.n)
            perm = np.random.default_rng([self.seed, epoch, 0]).permutation(self.n)
            take = perm[offset: offset + self.batch_size - len(idx)]
            idx.extend(take.tolist())
            start += len(take)
        return np.asarray(idx, dtype=np.int64)

    def describe(self) -> dict:
        """Mode, groups, target proportions (for the run report)."""
        out: dict = {"mode": self.mode, "batch_size": self.batch_size, "seed": self.seed}
        if self.groups:
            out["groups"] = {g: {"n_rows": int(len(m)), "target_fraction": float(w)}
                             for g, m, w in zip(self.groups, self.members, self.weights, strict=True)}
        return out


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    raw = weights * total
    counts = np.floor(raw).astype(int)
    rest = total - counts.sum()
    if rest:
        order = np.argsort(-(raw - counts), kind="stable")
        counts[order[:rest]] += 1
    return counts


class CompositionTracker:
    """Counts of each attribute's groups among the images actually drawn.

    Parameters
    ----------
    frame : DataFrame
        The manifest rows being sampled from.
    attributes : list of str
        Columns to report (each on its own, plus their intersection when there are several).
    """

    def __init__(self, frame: pd.DataFrame, attributes: Sequence[str]):
        self.attributes = [a for a in attributes]
        self.labels = {a: group_labels(frame, [a]) for a in self.attributes}
        if len(self.attributes) > 1:
            self.labels["|".join(self.attributes)] = group_labels(frame, self.attributes)
        self.codes = {}
        for key, lab in self.labels.items():
            codes, uniques = pd.factorize(lab, sort=True)
            self.codes[key] = (codes, [str(u) for u in uniques])
        self.counts = {k: np.zeros(len(u), dtype=np.int64) for k, (_, u) in self.codes.items()}
        self.n_seen = 0

    def update(self, indices: np.ndarray) -> None:
        self.n_seen += len(indices)
        for key, (codes, uniques) in self.codes.items():
            self.counts[key] += np.bincount(codes[indices], minlength=len(uniques))

    def table(self) -> pd.DataFrame:
        """Tidy table: ``attribute, group, n_in_manifest, fraction_in_manifest, n_seen,
        fraction_seen``."""
        rows = []
        for key, (codes, uniques) in self.codes.items():
            in_manifest = np.bincount(codes, minlength=len(uniques))
            seen = self.counts[key]
            for g, name in enumerate(uniques):
                rows.append({
                    "attribute": key, "group": name,
                    "n_in_manifest": int(in_manifest[g]),
                    "fraction_in_manifest": float(in_manifest[g] / max(in_manifest.sum(), 1)),
                    "n_seen": int(seen[g]),
                    "fraction_seen": float(seen[g] / max(self.n_seen, 1)),
                })
        return pd.DataFrame(rows, columns=["attribute", "group", "n_in_manifest",
                                           "fraction_in_manifest", "n_seen", "fraction_seen"])
