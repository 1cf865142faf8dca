"""Dataset representation audit: who is in a dataset, who is missing, and how unequal it is.

:func:`audit_manifest` computes, from a harmonised manifest, counts and shares per attribute
and per intersection, label prevalence by group, missingness of each protected attribute,
imbalance (min/max ratio, effective number of groups), representation against a reference
population, geography (country, region, income group), small-group warnings, and (when asked)
leakage and exact duplicates. Counts are integer-coded once (``pd.factorize``) and tallied with
``np.bincount``, so a million-row manifest with five attributes and their intersections takes
seconds (``benchmarks/bench_audit.py``).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import FairfoundryError, did_you_mean
from ..groups import ATTRIBUTE_SEP, DEFAULT_AGE_EDGES, MISSING

__all__ = ["Audit", "audit_manifest", "read_reference", "effective_groups", "SEP"]

log = logging.getLogger(__name__)

#: intersections are named by :mod:`fairfoundry.groups`: attribute ``sex&age_group``, group
#: ``sex=female & age_group=40-59``
SEP = ATTRIBUTE_SEP
UNKNOWN = MISSING
GEO_COLUMNS = ("country", "region", "income_group")
#: leaking patients listed in audit.json (all of them go to leakage.csv)
LEAKAGE_LISTED = 1000


def effective_groups(counts, *, order: float = 1.0) -> float:
    r"""Effective number of groups (Hill number) of a count vector.

    .. math::
        D_1 = \exp\Big(-\sum_g p_g \ln p_g\Big), \qquad
        D_2 = 1 \Big/ \sum_g p_g^2

    ``order=1`` is the exponential of Shannon entropy, ``order=2`` the inverse Simpson index.
    It equals the number of groups when all are equally large and tends to 1 as one group
    dominates. Source: Hill MO, "Diversity and evenness: a unifying notation and its
    consequences", Ecology 54 (1973); used for dataset diversity by e.g. Jost L, Oikos 113 (2006).

    Examples
    --------
    >>> effective_groups([50, 50]), round(effective_groups([90, 10], order=2), 3)
    (2.0, 1.22)
    """
    import numpy as np

    c = np.asarray(counts, dtype=float)
    c = c[c > 0]
    if c.size == 0:
        return math.nan
    p = c / c.sum()
    if order == 1:
        return float(np.exp(-(p * np.log(p)).sum()))
    if order == 0:
        return float(c.size)
    return float((p ** order).sum() ** (1.0 / (1.0 - order)))


def _share(value, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if not math.isfinite(out):
        raise FairfoundryError(f"reference population {where}: share {value!r} is not a number",
                               hint="shares are numbers such as 0.51 (or counts)")
    return out


def read_reference(source, *, warnings: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Read a reference population: a mapping ``{attribute: {group: share}}``, a JSON/YAML file
    holding one, or a CSV/TSV with columns ``attribute, group, share`` (shares are normalised
    per attribute; counts work too).

    Examples
    --------
    >>> read_reference({"sex": {"female": 51, "male": 49}})["sex"]["female"]
    0.51
    """
    import pandas as pd

    from .._io import read_json, read_yaml_mapping

    if source is None:
        return {}
    where = "mapping"
    if isinstance(source, Mapping):
        raw = source
    else:
        path = Path(source)
        if not path.exists():
            raise FairfoundryError(f"reference population file not found: {path}")
        name = path.name.lower()
        where = str(path)
        if name.endswith(".json"):
            raw = read_json(path, what="reference population")
        elif name.endswith((".yaml", ".yml")):
            raw = read_yaml_mapping(path, what="reference population")
        else:
            table = pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",")
            need = {"attribute", "group", "share"}
            if not need <= set(table.columns):
                raise FairfoundryError(f"reference population {path} needs columns attribute, "
                                       f"group, share", hint=f"it has: {', '.join(table.columns)}")
            raw = {}
            for i, rec in enumerate(table.itertuples(index=False)):
                raw.setdefault(str(rec.attribute), {})[str(rec.group)] = _share(
                    rec.share, f"{path} row {i + 1}")
        if not isinstance(raw, Mapping):
            raise FairfoundryError(f"reference population {path} must map attributes to "
                                   f"{{group: share}}")
    out = {}
    for a, groups in raw.items():
        if not isinstance(groups, Mapping):
            raise FairfoundryError(f"reference population {where}: {a!r} must map groups to shares")
        groups = {str(g): _share(v, f"{where}, {a}={g}") for g, v in groups.items()}
        total = sum(groups.values())
        if total <= 0 or any(v < 0 for v in groups.values()):
            raise FairfoundryError(f"reference population for {a!r} needs non-negative shares "
                                   f"with a positive sum")
        if abs(total - 1.0) > 1e-6:
            msg = (f"reference population shares of {a!r} sum to {total:g}, not 1: rescaled to "
                   "shares")
            log.warning(msg)
            if warnings is not None:
                warnings.append(msg)
        out[a] = {str(g): v / total for g, v in groups.items()}
    return out


@dataclass
class Audit:
    """Result of :func:`audit_manifest`. Tables are tidy DataFrames; published outputs
    (:meth:`to_json`, :meth:`to_html`, :meth:`to_datasheet`) suppress counts below
    ``min_group_size``."""

    n_samples: int
    n_patients: int
    attributes: list[str]
    intersections: list[tuple[str, ...]]
    groups: Any  # attribute, group, n, share, n_patients, share_known
    missingness: Any  # attribute, recorded, n_unknown, share_unknown
    imbalance: Any  # attribute, n_groups, smallest, largest, min_max_ratio, effective_groups...
    prevalence: Any  # attribute, group, label, n, positives, prevalence
    representation: Any  # attribute, group, share_known, reference_share, ratio, difference
    geography: Any  # level, group, n, share
    small_groups: Any  # attribute, group, n
    leakage: Any = None
    duplicates: Any = None
    problems: Any = None
    min_group_size: int = 10
    dataset: str | None = None
    spec: Any = None
    notes: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ publishing
    def suppressed(self, frame, *, count_cols=("n", "n_patients", "positives")):
        """Copy of ``frame`` with counts in ``1..min_group_size-1`` replaced by ``"<k"`` and the
        shares / prevalences computed from them blanked (small-cell suppression). A prevalence is
        also blanked when its positives or negatives are a small count, since it would reveal
        them. Zeros are shown (no complementary suppression)."""
        import numpy as np

        if frame is None or len(frame) == 0 or self.min_group_size <= 1:
            return frame
        k = self.min_group_size
        out = frame.copy()
        small = np.zeros(len(out), dtype=bool)
        if "n" in out.columns:
            n = out["n"].to_numpy(dtype=float)
            small = (n > 0) & (n < k)
        for col in count_cols:
            if col in out.columns:
                v = out[col].to_numpy(dtype=float)
                mask = ((v > 0) & (v < k)) | small
                out[col] = out[col].astype(object)
                out.loc[mask, col] = f"<{k}"
        if "positives" in frame.columns:  # a prevalence would reveal a small positive count
            pos = frame["positives"].to_numpy(dtype=float)
            neg = frame["n"].to_numpy(dtype=float) - pos if "n" in frame.columns else pos
            small_pos = ((pos > 0) & (pos < k)) | ((neg > 0) & (neg < k))
        else:
            small_pos = np.zeros(len(out), dtype=bool)
        for col in ("share", "share_known", "prevalence", "ratio", "difference"):
            if col in out.columns:
                out[col] = out[col].astype(object)
                out.loc[small | (small_pos if col == "prevalence" else False), col] = None
        return out

    def suppressed_imbalance(self):
        """:attr:`imbalance` with smallest / largest group sizes below ``min_group_size`` shown
        as ``"<k"``; the min/max ratio is blanked with a small smallest group, since it and the
        largest size would give the smallest back."""
        import numpy as np

        k = self.min_group_size
        out = self.imbalance.copy()
        if len(out) == 0 or k <= 1:
            return out
        small_min = np.zeros(len(out), dtype=bool)
        for col in ("smallest", "largest"):
            if col in out.columns:
                v = out[col].to_numpy(dtype=float)
                mask = (v > 0) & (v < k)
                if col == "smallest":
                    small_min = mask
                out[col] = out[col].astype(object)
                out.loc[mask, col] = f"<{k}"
        if "min_max_ratio" in out.columns:
            out["min_max_ratio"] = out["min_max_ratio"].astype(object)
            out.loc[small_min, "min_max_ratio"] = None
        return out

    def suppressed_missingness(self):
        """:attr:`missingness` with unknown counts below ``min_group_size`` shown as ``"<k"``
        (and their share blanked), like the ``unknown`` group in :attr:`groups`."""
        k = self.min_group_size
        out = self.missingness.copy()
        if len(out) == 0 or k <= 1:
            return out
        v = out["n_unknown"].to_numpy(dtype=float)
        mask = (v > 0) & (v < k)
        out["n_unknown"] = out["n_unknown"].astype(object)
        out.loc[mask, "n_unknown"] = f"<{k}"
        out["share_unknown"] = out["share_unknown"].astype(object)
        out.loc[mask, "share_unknown"] = None
        return out

    def summary(self) -> dict:
        """Headline numbers (JSON-ready)."""
        recorded = self.missingness[self.missingness["recorded"]]["attribute"].tolist()
        return {
            "dataset": self.dataset,
            "n_samples": self.n_samples,
            "n_patients": self.n_patients,
            "attributes_recorded": recorded,
            "attributes_missing": self.missingness[~self.missingness["recorded"]]["attribute"].tolist(),
            "n_small_groups": int(len(self.small_groups)),
            "n_leaking_patients": None if self.leakage is None else int(len(self.leakage)),
            "n_duplicate_files": None if self.duplicates is None else int(len(self.duplicates)),
            "n_unreadable_files": None if self.problems is None else int(len(self.problems)),
            "min_group_size": self.min_group_size,
        }

    def to_dict(self) -> dict:
        """Everything in :meth:`to_json`, as plain Python objects (suppressed)."""
        from .._io import to_jsonable

        def records(frame):
            if frame is None:
                return None
            return to_jsonable(self.suppressed(frame).to_dict(orient="records"))

        return {
            "schema": "fairfoundry.audit/1",
            "summary": self.summary(),
            "config": self.config,
            "notes": self.notes,
            "warnings": self.warnings,
            "groups": records(self.groups),
            "missingness": to_jsonable(self.suppressed_missingness().to_dict(orient="records")),
            "imbalance": to_jsonable(self.suppressed_imbalance().to_dict(orient="records")),
            "prevalence": records(self.prevalence),
            "representation": records(self.representation),
            "geography": records(self.geography),
            "small_groups": to_jsonable(self.small_groups.assign(
                n=[f"<{self.min_group_size}" if 0 < v < self.min_group_size else v
                   for v in self.small_groups["n"]]).to_dict(orient="records")),
            # the first LEAKAGE_LISTED leaking patients (their number is in the summary;
            # audit-data writes them all to leakage.csv)
            "leakage": None if self.leakage is None else to_jsonable(
                self.leakage.head(LEAKAGE_LISTED).to_dict(orient="records")),
            "duplicates": None if self.duplicates is None else to_jsonable(
                self.duplicates.to_dict(orient="records")),
            "problems": None if self.problems is None else to_jsonable(
                self.problems.to_dict(orient="records")),
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The audit as JSON (small cells suppressed); written atomically when ``path`` given."""
        import json

        from .._io import write_text_atomic

        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if path is not None:
            write_text_atomic(path, text)
        return text

    def to_html(self, path: str | os.PathLike | None = None, *, title: str | None = None) -> str:
        """A self-contained HTML report with tables and plots."""
        from .._io import write_text_atomic
        from ._html import audit_html

        text = audit_html(self, title=title)
        if path is not None:
            write_text_atomic(path, text)
        return text

    def to_datasheet(self, path: str | os.PathLike | None = None) -> str:
        """A "Datasheets for Datasets" markdown file pre-filled from the spec and the audit."""
        from .._io import write_text_atomic
        from ._datasheet import datasheet_markdown

        text = datasheet_markdown(self)
        if path is not None:
            write_text_atomic(path, text)
        return text


def _codes(series):
    """Integer codes and names of a column (:func:`fairfoundry.groups.attribute_groups`)."""
    import numpy as np

    from ..groups import attribute_groups

    cat = attribute_groups(series)
    return np.asarray(cat.codes, dtype=np.int64), [str(c) for c in cat.categories]


def _n_known_groups(series) -> int:
    codes, names = _codes(series)
    import numpy as np

    present = np.bincount(codes, minlength=len(names)) > 0
    return int(sum(1 for i, nm in enumerate(names) if present[i] and nm != UNKNOWN))


def _distinct_per_group(codes, k: int, pcodes, n_patients: int):
    """Number of distinct patients in each of ``k`` groups (bitmap when it fits, else hashing)."""
    import numpy as np
    import pandas as pd

    if k * n_patients <= 64_000_000:
        mark = np.zeros(k * n_patients, dtype=bool)
        mark[codes * n_patients + pcodes] = True
        return mark.reshape(k, n_patients).sum(axis=1)
    pair = pd.unique(codes.astype(np.int64) * n_patients + pcodes)
    return np.bincount(pair // n_patients, minlength=k)


def _label_columns(manifest, labels):
    import pandas as pd

    if labels is None:
        labels = [c for c in ("label", "y_true", "target") if c in manifest.columns]
    out = []
    for col in labels:
        if col not in manifest.columns:
            raise FairfoundryError(f"label column {col!r} not in the manifest",
                                   hint=did_you_mean(col, manifest.columns, what="columns"))
        s = manifest[col]
        num = pd.to_numeric(s, errors="coerce") if not pd.api.types.is_bool_dtype(s) else s.astype(float)
        vals = set(pd.unique(num.dropna()))
        if num.notna().sum() == s.notna().sum() and vals <= {0.0, 1.0}:
            out.append((col, None, num.to_numpy(dtype=float)))
        elif vals <= {0.0, 1.0, -1.0} and num.notna().sum() == s.notna().sum():
            # CheXpert-style uncertain (-1): prevalence of definite positives among definite
            out.append((col, None, num.where(num != -1).to_numpy(dtype=float)))
        else:
            classes = [c for c in pd.unique(s.dropna())]
            if len(classes) > 50:
                log.warning("label %s has %d classes; prevalence kept for the 50 largest", col,
                            len(classes))
                classes = s.value_counts().index[:50].tolist()
            for c in sorted(classes, key=str):
                arr = (s == c).astype(float).where(s.notna()).to_numpy(dtype=float)
                out.append((col, str(c), arr))
    return out


def audit_manifest(manifest, *, sensitive: Sequence[str] | None = None,
                   attributes: Sequence[str] | None = None,
                   intersections: Sequence[Sequence[str]] | str | None = "pairs",
                   labels: Sequence[str] | None = None,
                   reference_population=None, min_group_size: int = 10,
                   age_bins: Sequence[float] | None = None, root: str | os.PathLike | None = None,
                   check_duplicates: bool = False, problems=None, dataset: str | None = None,
                   spec=None, notes: Sequence[str] = (), allow_outside_root: bool = False) -> Audit:
    """Audit who is represented in a manifest.

    Parameters
    ----------
    manifest : harmonised manifest (one row per image; see :mod:`fairfoundry.data`)
    sensitive : protected attribute columns to audit (``attributes`` is the old spelling);
        default: every protected attribute present
        (``age`` is audited through ``age_group``, binned with ``age_bins`` when absent)
    intersections : ``"pairs"`` (every pair of ``attributes``, the default), ``"none"``/None,
        or explicit tuples such as ``[("sex", "age_group"), ("sex", "race", "age_group")]``
    labels : label columns for prevalence by group (default: ``label`` if present); 0/1 columns
        give one prevalence, categorical columns one per class
    reference_population : ``{attribute: {group: share}}`` or a CSV/JSON/YAML file (see
        :func:`read_reference`); shares of the dataset (among known values) are compared to it
    min_group_size : groups smaller than this are flagged, and suppressed in published outputs
    root : folder relative paths start from (needed for ``check_duplicates``)
    check_duplicates : hash every image file to find exact duplicates
    problems : DataFrame of unreadable files (``path``, ``error``) to include in the report
    dataset, spec, notes : provenance shown in the report and the datasheet
    allow_outside_root : accept relative paths that climb out of ``root`` (duplicate check)

    Returns
    -------
    Audit

    Notes
    -----
    ``share`` is over all images (unknown included); ``share_known`` over images whose value
    is known, which is what a reference population is compared with. Imbalance excludes
    ``unknown``: ``min_max_ratio`` = smallest / largest group (1 is balanced), effective number
    of groups = exp(Shannon entropy) (:func:`effective_groups`).
    """
    if sensitive is not None:
        attributes = [*sensitive, *(attributes or [])]
    if manifest is None or len(manifest) == 0:
        raise FairfoundryError("cannot audit an empty manifest")
    if min_group_size < 1:
        raise FairfoundryError(f"--min-group-size must be >= 1, got {min_group_size}")
    notes = list(notes)
    warnings: list[str] = []
    frame = _with_age_group(manifest, age_bins)
    attributes = _audited_attributes(frame, attributes)
    inter = _audited_intersections(frame, attributes, intersections)
    patients = _patients(frame, notes)
    label_arrays = _label_columns(frame, labels)
    groups, prevalence, imbalance = _tally_groups(frame, attributes, inter, patients,
                                                  label_arrays)
    missingness = _missingness(frame)
    warnings += _vocabulary_warnings(frame, min_group_size)
    ref = read_reference(reference_population, warnings=warnings)
    representation = _representation(ref, groups, attributes, inter, warnings)
    geography = _geography(frame)
    small = groups[(groups["n"] < min_group_size) & (groups["group"] != UNKNOWN)][
        ["attribute", "group", "n"]].reset_index(drop=True)
    if len(small):
        warnings.append(f"{len(small)} group(s) or intersection(s) have fewer than "
                        f"{min_group_size} images: estimates for them are unreliable and their "
                        f"counts are suppressed in published outputs")
    leakage = _leakage(frame, patients, warnings)
    duplicates = None
    if check_duplicates:
        duplicates, problems = _duplicates(frame, root, allow_outside_root, problems, warnings)
    if problems is not None and len(problems):
        warnings.append(f"{len(problems)} file(s) could not be read (listed under problems)")
    config = {"attributes": attributes, "intersections": [list(t) for t in inter],
              "labels": [c if k is None else f"{c}={k}" for c, k, _ in label_arrays],
              "min_group_size": min_group_size, "age_bins": list(age_bins) if age_bins else None,
              "reference_population": ref or None, "check_duplicates": check_duplicates,
              "patient_ids": patients.real_ids}
    return Audit(n_samples=len(frame), n_patients=patients.n, attributes=attributes,
                 intersections=inter, groups=groups, missingness=missingness,
                 imbalance=imbalance, prevalence=prevalence, representation=representation,
                 geography=geography, small_groups=small, leakage=leakage,
                 duplicates=duplicates, problems=problems, min_group_size=min_group_size,
                 dataset=dataset, spec=spec, notes=notes, config=config, warnings=warnings)


# ---------------------------------------------------------------------- the steps of an audit
def _with_age_group(frame, age_bins):
    """``frame`` with ``age_group`` binned from ``age`` (when only ``age`` is there)."""
    import numpy as np

    from ..data import bin_values

    if "age" in frame.columns and "age_group" not in frame.columns:
        frame = frame.assign(age_group=np.asarray(bin_values(frame["age"], age_bins or
                                                             DEFAULT_AGE_EDGES), dtype=object))
    return frame


def _audited_attributes(frame, attributes) -> list[str]:
    """The attributes asked for (``age`` audited as ``age_group``), or every protected one."""
    from ..data import PROTECTED_ATTRIBUTES

    if attributes is None:
        return [a for a in PROTECTED_ATTRIBUTES if a in frame.columns and a != "age"]
    attributes = ["age_group" if a == "age" else a for a in attributes]
    for a in attributes:
        if a not in frame.columns:
            raise FairfoundryError(f"attribute {a!r} not in the manifest",
                                   hint=did_you_mean(a, frame.columns, what="columns"))
    return list(dict.fromkeys(attributes))


def _audited_intersections(frame, attributes, intersections) -> list[tuple[str, ...]]:
    """``"pairs"``: every pair of attributes with two known groups or more (region and income
    are functions of country); explicit tuples are checked against the columns."""
    if intersections in (None, "none", ()):
        return []
    if intersections == "pairs":
        skip = set(GEO_COLUMNS[1:])
        base = [a for a in attributes if a not in skip and _n_known_groups(frame[a]) > 1]
        return [tuple(p) for p in itertools.combinations(base, 2)]
    inter = [tuple("age_group" if a == "age" else a for a in t) for t in intersections]
    for t in inter:
        for a in t:
            if a not in frame.columns:
                raise FairfoundryError(f"intersection {SEP.join(t)}: {a!r} not in the "
                                       f"manifest", hint=did_you_mean(a, frame.columns,
                                                                      what="columns"))
    return inter


@dataclass(frozen=True)
class _Patients:
    """Patient codes of the rows (factorized once; the leakage check reuses them)."""

    codes: Any  # int array, one per row
    ids: Any  # the ids the codes index
    n: int
    known: Any  # bool per row: a real patient id (not a stand-in for a missing one)
    real_ids: bool  # patient_id is not just the sample id


def _patients(frame, notes: list[str]) -> _Patients:
    import numpy as np
    import pandas as pd

    n = len(frame)
    if "patient_id" not in frame.columns:
        notes.append("no patient_id column: each image is counted as one patient")
        return _Patients(np.arange(n), np.arange(n), n, np.zeros(n, dtype=bool), False)
    pid = frame["patient_id"]
    known = pid.notna().to_numpy()
    real = not ("sample_id" in frame.columns
                and pid.astype(str).equals(frame["sample_id"].astype(str)))
    if "sample_id" in frame.columns and not known.all():
        # an image without a patient id counts as its own patient
        pid = pid.astype(object).where(pid.notna(), "__s__" + frame["sample_id"].astype(str))
    codes, ids = pd.factorize(pid)
    return _Patients(codes, ids, len(ids), known, real)


def _tally_groups(frame, attributes, inter, patients: _Patients, label_arrays):
    """Counts, shares, distinct patients, label prevalence and imbalance of every attribute
    and intersection: integer codes once, one ``np.bincount`` per table."""
    import numpy as np
    import pandas as pd

    from ..groups import combine_groups, intersection_attribute, split_intersection

    n = len(frame)
    codes_of = {a: _codes(frame[a]) for a in dict.fromkeys([*attributes, *(x for t in inter
                                                                          for x in t)])}
    group_rows, prev_rows, imb_rows = [], [], []

    def tally(name: str, codes, names: list[str], known_groups):
        k = len(names)
        counts = np.bincount(codes, minlength=k)
        pcount = _distinct_per_group(codes, k, patients.codes, patients.n)
        known_total = counts[known_groups].sum()
        for g in range(k):
            if counts[g] == 0:
                continue
            group_rows.append({
                "attribute": name, "group": names[g], "n": int(counts[g]),
                "share": counts[g] / n, "n_patients": int(pcount[g]),
                "share_known": (counts[g] / known_total) if known_groups[g] and known_total
                else math.nan,
            })
        for col, cls, y in label_arrays:
            valid = ~np.isnan(y)
            pos = np.bincount(codes[valid], weights=y[valid], minlength=k)
            tot = np.bincount(codes[valid], minlength=k)
            for g in range(k):
                if counts[g] == 0:
                    continue
                prev_rows.append({"attribute": name, "group": names[g], "label": col,
                                  "class": cls, "n": int(tot[g]), "positives": int(round(pos[g])),
                                  "prevalence": pos[g] / tot[g] if tot[g] else math.nan})
        imb_rows.append(_imbalance_row(name, counts[known_groups]))

    for a in attributes:
        codes, names = codes_of[a]
        tally(a, codes, names, np.array([nm != UNKNOWN for nm in names]))
    for t in inter:
        inv, labels_t = combine_groups(t, [codes_of[a] for a in t])
        known_t = [all(v != UNKNOWN for _, v in split_intersection(nm)) for nm in labels_t]
        tally(intersection_attribute(t), inv, labels_t, np.array(known_t, dtype=bool))
    groups = pd.DataFrame(group_rows, columns=["attribute", "group", "n", "share", "n_patients",
                                               "share_known"])
    prevalence = pd.DataFrame(prev_rows, columns=["attribute", "group", "label", "class", "n",
                                                  "positives", "prevalence"])
    return groups, prevalence, pd.DataFrame(imb_rows)


def _imbalance_row(name: str, known_counts) -> dict:
    """min/max ratio, effective number of groups and evenness of the known groups."""
    kc = known_counts[known_counts > 0]
    return {
        "attribute": name, "n_groups": int(kc.size),
        "smallest": int(kc.min()) if kc.size else 0, "largest": int(kc.max()) if kc.size else 0,
        "min_max_ratio": float(kc.min() / kc.max()) if kc.size else math.nan,
        "effective_groups": effective_groups(kc), "effective_groups_simpson":
            effective_groups(kc, order=2),
        "evenness": effective_groups(kc) / kc.size if kc.size else math.nan,
    }


def _missingness(frame):
    """Unknown values of every canonical attribute (recorded or not)."""
    import pandas as pd

    from ..data import PROTECTED_ATTRIBUTES

    n = len(frame)
    rows = []
    for a in [x for x in PROTECTED_ATTRIBUTES if x != "age_group"]:
        if a not in frame.columns:
            rows.append({"attribute": a, "recorded": False, "n_unknown": n, "share_unknown": 1.0})
            continue
        s = frame[a]
        unk = s.isna()
        if not pd.api.types.is_numeric_dtype(s):
            unk = unk | (s == UNKNOWN).fillna(False).astype(bool)
        rows.append({"attribute": a, "recorded": True, "n_unknown": int(unk.sum()),
                     "share_unknown": float(unk.mean())})
    return pd.DataFrame(rows)


def _vocabulary_warnings(frame, min_group_size: int) -> list[str]:
    """Values outside the harmonised vocabularies (a manifest that was not harmonised)."""
    from ..data import ETHNICITY_VALUES, RACE_VALUES, SEX_VALUES, SKIN_TYPE_VALUES

    vocab = {"sex": SEX_VALUES, "race": RACE_VALUES, "ethnicity": ETHNICITY_VALUES,
             "skin_type": SKIN_TYPE_VALUES}
    funcs = {"sex": "harmonise_sex", "race": "harmonise_race",
             "ethnicity": "harmonise_ethnicity", "skin_type": "fitzpatrick"}
    out = []
    for a, allowed in vocab.items():
        if a in frame.columns:
            vc = frame[a].dropna().astype(str).value_counts()
            odd = vc[~vc.index.isin(allowed)]
            if len(odd):
                listing = ", ".join(f"{k!r} ({v if v >= min_group_size else f'<{min_group_size}'})"
                                    for k, v in odd.head(8).items())
                out.append(
                    f"{a} has {len(odd)} value(s) outside the harmonised vocabulary "
                    f"({', '.join(allowed)}): {listing}; they are audited as their own groups "
                    f"(harmonise them with fairfoundry.data.{funcs[a]} or build the manifest "
                    f"from a dataset spec)")
    return out


def _representation(ref, groups, attributes, inter, warnings: list[str]):
    """Shares among known values next to the reference population's."""
    import pandas as pd

    from ..groups import intersection_attribute

    audited = set(attributes) | {intersection_attribute(t) for t in inter}
    rows = []
    for a, shares in ref.items():
        if a not in audited:
            warnings.append(f"reference population gives {a!r}, which is not audited")
            continue
        sub = groups[groups["attribute"] == a]
        have = dict(zip(sub["group"], sub["share_known"], strict=True))
        counts = dict(zip(sub["group"], sub["n"], strict=True))
        for g, r in shares.items():
            s = have.get(g, 0.0)
            s = 0.0 if s != s else s
            rows.append({"attribute": a, "group": g, "n": int(counts.get(g, 0)),
                         "share_known": s, "reference_share": r,
                         "ratio": s / r if r > 0 else math.nan, "difference": s - r})
        extra = sorted(set(have) - set(shares) - {UNKNOWN})
        if extra:
            warnings.append(f"reference population for {a!r} lacks group(s) {extra}")
    return pd.DataFrame(rows, columns=["attribute", "group", "n", "share_known",
                                       "reference_share", "ratio", "difference"])


#: every region and income group, listed with zeros too: who is missing
_GEO_LEVELS = {"region": ["Africa", "Americas", "Asia", "Europe", "Oceania"],
               "income_group": ["High income", "Upper middle income", "Lower middle income",
                                "Low income"]}


def _geography(frame):
    """Images by country, region and income group."""
    import pandas as pd

    n = len(frame)
    rows = []
    for level in GEO_COLUMNS:
        if level in frame.columns:
            vc = frame[level].astype(object).where(frame[level].notna(), UNKNOWN).value_counts()
            if level in _GEO_LEVELS:
                full = _GEO_LEVELS[level]
                vc = vc.reindex(full + [g for g in vc.index if g not in full], fill_value=0)
            for g, c in vc.items():
                rows.append({"level": level, "group": str(g), "n": int(c), "share": c / n})
    return pd.DataFrame(rows, columns=["level", "group", "n", "share"])


def _leakage(frame, patients: _Patients, warnings: list[str]):
    """Patients in more than one split, from the patient codes already computed."""
    import numpy as np

    from ..data import leaking_patients

    if "split" not in frame.columns or "patient_id" not in frame.columns:
        return None
    leakage = leaking_patients(np.where(patients.known, patients.codes, -1), patients.ids,
                               frame["split"])
    if len(leakage):
        warnings.append(f"patient leakage: {len(leakage)} patient(s) appear in more than one "
                        f"split")
    return leakage


def _duplicates(frame, root, allow_outside_root: bool, problems, warnings: list[str]):
    """Byte-identical image files (and the files that could not be read)."""
    import pandas as pd

    from ..data import exact_duplicates

    if "path" not in frame.columns:
        raise FairfoundryError("duplicate check needs a 'path' column in the manifest")
    duplicates, dup_problems = exact_duplicates(frame, root=root or ".",
                                                allow_outside_root=allow_outside_root)
    if len(dup_problems):
        problems = dup_problems if problems is None else pd.concat([problems, dup_problems],
                                                                   ignore_index=True)
    if len(duplicates):
        warnings.append(f"{len(duplicates)} image files have a byte-identical twin "
                        f"({duplicates['group'].nunique()} groups)")
    return duplicates, problems
