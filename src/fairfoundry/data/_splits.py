"""Patient-level splits, leakage checks and exact duplicates by content hash.

A patient's images must all fall in one split, or test performance is inflated by images of
patients the model has seen. :func:`patient_split` assigns whole patients, seeded and stratified
by label x group; :func:`check_leakage` finds patients in more than one split; and
:func:`exact_duplicates` finds byte-identical image files (same SHA-256) under different ids.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from .._errors import FairfoundryError

__all__ = ["patient_split", "check_leakage", "exact_duplicates", "DEFAULT_RATIOS"]

DEFAULT_RATIOS = {"train": 0.7, "val": 0.1, "test": 0.2}


def _ratios(ratios) -> dict[str, float]:
    if ratios is None:
        ratios = DEFAULT_RATIOS
    if not isinstance(ratios, Mapping):
        ratios = list(ratios)
        names = ["train", "val", "test"][: len(ratios)] if len(ratios) <= 3 else \
            [f"split{i}" for i in range(len(ratios))]
        ratios = dict(zip(names, ratios, strict=True))
    vals = {str(k): float(v) for k, v in ratios.items()}
    if not vals or any(v < 0 for v in vals.values()) or sum(vals.values()) <= 0:
        raise FairfoundryError(f"split ratios must be non-negative with a positive sum, got {vals}")
    total = sum(vals.values())
    return {k: v / total for k, v in vals.items()}


def patient_split(manifest, *, ratios: Mapping[str, float] | Sequence[float] | None = None,
                  seed: int = 0, stratify: Sequence[str] | str | None = None,
                  patient_col: str = "patient_id"):
    """Assign every patient (all of their images) to one split, seeded and stratified.

    Patients are grouped into strata by the values of ``stratify`` (e.g. ``["label", "sex"]``:
    label x group; a patient's stratum is taken from their first image). Within each stratum the
    patients are shuffled with ``numpy.random.default_rng(seed)`` and cut by systematic sampling
    with a random start, so every stratum, however small, is split in the given proportions in
    expectation and large strata almost exactly.

    Parameters
    ----------
    manifest : DataFrame with ``patient_col`` (and the ``stratify`` columns)
    ratios : ``{"train": .7, "val": .1, "test": .2}`` (default) or a sequence (train, val, test);
        normalised to sum to 1; proportions are of patients
    seed : random seed (recorded by callers)
    stratify : column name(s) to stratify by, or None
    patient_col : patient id column; rows without a patient id count as their own patient

    Returns
    -------
    pandas.Series of split names aligned with ``manifest``.

    Examples
    --------
    >>> import pandas as pd
    >>> m = pd.DataFrame({"patient_id": list("aabbccddeeffgghhiijj")})
    >>> s = patient_split(m, ratios={"train": .8, "test": .2}, seed=0)
    >>> int(s.groupby(m["patient_id"]).nunique().max()), int(s.value_counts()["test"])
    (1, 4)
    """
    import numpy as np
    import pandas as pd

    ratios = _ratios(ratios)
    if patient_col not in manifest.columns:
        raise FairfoundryError(f"manifest has no {patient_col!r} column for a patient-level split")
    strat = [stratify] if isinstance(stratify, str) else list(stratify or [])
    missing = [c for c in strat if c not in manifest.columns]
    if missing:
        raise FairfoundryError(f"cannot stratify by {missing}: not in the manifest")
    pid = manifest[patient_col].astype(object)
    if "sample_id" in manifest.columns:
        pid = pid.where(pid.notna(), "__sample__" + manifest["sample_id"].astype(str))
    else:
        pid = pid.where(pid.notna(), pd.Series(
            [f"__row__{i}" for i in range(len(manifest))], index=manifest.index))
    codes, uniques = pd.factorize(pid, sort=True)
    n_pat = len(uniques)
    first_row = np.full(n_pat, -1, dtype=np.int64)
    order = np.arange(len(codes))[::-1]
    first_row[codes[order]] = order  # last write wins = first occurrence
    if strat:
        keys = manifest[strat].iloc[first_row].astype(str).agg("\x1f".join, axis=1).to_numpy()
        scodes, _ = pd.factorize(keys, sort=True)
    else:
        scodes = np.zeros(n_pat, dtype=np.int64)
    rng = np.random.default_rng(seed)
    names = list(ratios)
    cum = np.cumsum([ratios[n] for n in names])
    cum[-1] = 1.0 + 1e-9
    assign = np.empty(n_pat, dtype=np.int64)
    for s in range(int(scodes.max()) + 1 if n_pat else 0):
        members = np.flatnonzero(scodes == s)
        members = members[rng.permutation(len(members))]
        pos = (np.arange(len(members)) + rng.random()) / max(len(members), 1)
        assign[members] = np.searchsorted(cum, pos, side="right")
    split_names = np.asarray(names, dtype=object)[np.minimum(assign, len(names) - 1)]
    return pd.Series(split_names[codes], index=manifest.index, name="split", dtype=object)


def check_leakage(manifest, *, split_col: str = "split", patient_col: str = "patient_id",
                  raise_error: bool = False):
    """Patients whose images fall in more than one split.

    Returns
    -------
    pandas.DataFrame
        One row per leaking patient: ``patient_id``, ``splits`` (sorted, ``+``-joined),
        ``n_images``; empty when there is no leakage.

    Raises
    ------
    FairfoundryError
        When ``raise_error`` and a patient is in two splits (the message names them).
    """
    import pandas as pd

    for col in (split_col, patient_col):
        if col not in manifest.columns:
            raise FairfoundryError(f"leakage check needs a {col!r} column in the manifest")
    sub = manifest[[patient_col, split_col]].dropna()
    pcodes, patients = pd.factorize(sub[patient_col])
    out = leaking_patients(pcodes, patients, sub[split_col], split_col=split_col)
    if raise_error and len(out):
        ex = ", ".join(f"{p} ({s})" for p, s in zip(out["patient_id"][:5], out["splits"][:5],
                                                    strict=True))
        raise FairfoundryError(f"patient leakage: {len(out)} patient(s) appear in more than one "
                               f"split, e.g. {ex}",
                               hint="split by patient with fairfoundry.data.patient_split")
    return out


def leaking_patients(pcodes, patients, splits, *, split_col: str = "split"):
    """The leakage table of :func:`check_leakage` from patient codes already computed.

    Parameters
    ----------
    pcodes : int array of shape (n,)
        Patient code of each row (``pd.factorize``); rows with a negative code are skipped.
    patients : array of the patient ids the codes index
    splits : array-like of shape (n,)
        Split of each row; missing splits are skipped.
    split_col : str
        Column name used in messages.

    Notes
    -----
    One bitmask of splits per patient (``np.bitwise_or.at``), no Python function per group: the
    audit of a 1M-row manifest factorizes its patient ids once and passes them here.
    """
    import numpy as np
    import pandas as pd

    pcodes = np.asarray(pcodes)
    splits = pd.Series(splits).reset_index(drop=True)
    keep = (pcodes >= 0) & splits.notna().to_numpy()
    if not keep.all():
        pcodes, splits = pcodes[keep], splits[keep]
    scodes, names = pd.factorize(splits.astype(str), sort=True)
    if len(names) > 62:
        raise FairfoundryError(f"leakage check: {len(names)} distinct values in {split_col!r}; "
                               "is it really the split column?")
    masks = np.zeros(len(patients), dtype=np.int64)
    np.bitwise_or.at(masks, pcodes, np.left_shift(1, scodes.astype(np.int64)))
    n_splits = np.zeros(len(patients), dtype=np.int64)
    for k in range(len(names)):
        n_splits += (masks >> k) & 1
    leaking = np.flatnonzero(n_splits > 1)
    if len(leaking) == 0:
        return pd.DataFrame(columns=["patient_id", "splits", "n_images"])
    labels = {m: "+".join(sorted(str(names[k]) for k in range(len(names)) if (m >> k) & 1))
              for m in np.unique(masks[leaking]).tolist()}
    ids = np.asarray(patients[leaking]).astype(str)
    order = np.argsort(ids, kind="stable")  # sorted by patient id
    leaking, ids = leaking[order], ids[order]
    return pd.DataFrame({
        "patient_id": ids,
        "splits": [labels[m] for m in masks[leaking].tolist()],
        "n_images": np.bincount(pcodes, minlength=len(patients))[leaking],
    })


def exact_duplicates(manifest, *, root: str | os.PathLike = ".", path_col: str = "path",
                     progress: Callable[[int], None] | None = None,
                     allow_outside_root: bool = False):
    """Byte-identical image files (same SHA-256 of the file content) under different sample ids.

    Parameters
    ----------
    manifest : DataFrame with ``sample_id`` and ``path_col``
    root : folder the relative paths are relative to (usually the manifest's folder)

    Returns
    -------
    (duplicates, problems)
        ``duplicates``: ``sample_id``, ``path``, ``sha256``, ``group`` (0, 1, ... per set of
        identical files), ``group_size``, only for files with at least one twin; ``problems``:
        files that could not be read (``path``, ``error``).
    """
    import pandas as pd

    from .._io import file_fingerprint

    if path_col not in manifest.columns:
        raise FairfoundryError(f"duplicate check needs a {path_col!r} column in the manifest")
    from ._paths import resolve_paths

    hashes, problems = [], []
    full_paths = resolve_paths(manifest[path_col], root=root, allow_outside_root=allow_outside_root)
    for p, full in zip(manifest[path_col], full_paths, strict=True):
        if full is None:
            hashes.append(None)
            continue
        try:
            hashes.append(file_fingerprint(full))
        except OSError as exc:
            hashes.append(None)
            problems.append({"path": str(p), "error": f"{type(exc).__name__}: {exc.strerror or exc}"})
        if progress is not None:
            progress(1)
    frame = pd.DataFrame({"sample_id": manifest["sample_id"].to_numpy(),
                          "path": manifest[path_col].to_numpy(), "sha256": hashes})
    frame = frame.dropna(subset=["sha256"])
    size = frame.groupby("sha256")["sha256"].transform("size")
    dups = frame[size > 1].copy()
    dups["group_size"] = size[size > 1].to_numpy()
    dups["group"] = pd.factorize(dups["sha256"], sort=True)[0]
    dups = dups.sort_values(["group", "sample_id"]).reset_index(drop=True)
    return dups[["sample_id", "path", "sha256", "group", "group_size"]], \
        pd.DataFrame(problems, columns=["path", "error"])
