"""The manifest: fairfoundry's canonical table of one row per image.

A manifest is a plain DataFrame (stored as CSV, TSV or Parquet) whose column names follow one
convention (:data:`CANONICAL_COLUMNS`), so every component reads the same thing:

==============  ==========================================================================
column          meaning
==============  ==========================================================================
sample_id       unique id of the image (required, unique, never empty)
patient_id      id of the patient; splits and leakage checks are by patient
path            image file, relative to the manifest file (or absolute)
split           ``train`` / ``val`` / ``test`` (free strings allowed)
<label>         one column per label (0/1, or a class name for multi-class tasks)
sex             ``female`` / ``male`` / ``other`` / ``unknown``
age             age in years (float; missing stays missing)
age_group       bin label derived from ``age`` (left-closed bins, see :func:`bin_values`)
race            harmonised race vocabulary (see :mod:`fairfoundry.data._harmonise`)
ethnicity       ``hispanic_or_latino`` / ``not_hispanic_or_latino`` / ``unknown``
skin_type       Fitzpatrick ``I`` .. ``VI`` or ``unknown``
site            acquisition site / institution / device source
country         ISO 3166-1 alpha-3 code
region          UN M49 region derived from ``country``
income_group    World Bank income group derived from ``country``
language        preferred language
insurance       insurance type
==============  ==========================================================================

Anything else is a free extra column and is carried through untouched.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .._errors import FairfoundryError, did_you_mean

log = logging.getLogger(__name__)

#: plausible ages in years; outside, an age becomes unknown (with a warning)
AGE_RANGE = (0.0, 120.0)

__all__ = [
    "CANONICAL_COLUMNS",
    "PROTECTED_ATTRIBUTES",
    "ID_COLUMNS",
    "read_manifest",
    "write_manifest",
    "validate_manifest",
    "rebase_paths",
]

#: column names every component agrees on (labels are one column per label, named by the spec).
CANONICAL_COLUMNS: tuple[str, ...] = (
    "sample_id", "patient_id", "path", "split", "labels", "sex", "age", "age_group", "race",
    "ethnicity", "skin_type", "site", "country", "region", "income_group", "language", "insurance",
)

#: harmonised protected attributes (and context attributes audited like them).
PROTECTED_ATTRIBUTES: tuple[str, ...] = (
    "sex", "age", "age_group", "race", "ethnicity", "skin_type", "site", "country", "region",
    "income_group", "language", "insurance",
)

#: columns always read as strings (ids keep their leading zeros).
ID_COLUMNS: tuple[str, ...] = ("sample_id", "patient_id", "path", "split")

_STRING_DTYPES = {c: str for c in ID_COLUMNS}


def _read(path: Path):
    import pandas as pd

    from .._io import check_header

    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        elif name.endswith((".tsv", ".tsv.gz", ".tab")):
            check_header(path, sep="\t", what="manifest")
            frame = pd.read_csv(path, sep="\t", dtype=_STRING_DTYPES, low_memory=False)
        elif name.endswith(".xlsx"):
            try:
                import openpyxl  # noqa: F401
            except ImportError as exc:
                raise FairfoundryError(
                    f"reading {path} needs openpyxl",
                    hint="pip install 'fairfoundry[medical]' (or openpyxl), or save the sheet "
                         "as CSV") from exc
            frame = pd.read_excel(path, sheet_name=0, dtype=_STRING_DTYPES)
        else:
            check_header(path, sep=",", what="manifest")
            frame = pd.read_csv(path, dtype=_STRING_DTYPES, low_memory=False)
    except FairfoundryError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise FairfoundryError(f"manifest file {path} is empty") from exc
    except Exception as exc:  # any parser failure is a user-input problem
        raise FairfoundryError(f"cannot read manifest file {path}: {exc}".splitlines()[0],
                               hint="a manifest is a CSV, TSV, Parquet or .xlsx file") from exc
    return frame


def validate_manifest(frame, *, required: tuple[str, ...] | list[str] = ("sample_id",),
                      source: str = "manifest"):
    """Check a manifest's columns and ids; return it with id columns as strings.

    Checks: every ``required`` column is present (the hint lists the closest names), the frame
    has rows, ``sample_id`` (when present) is never empty and unique, ``age`` (when present) is
    numeric. Nothing is renamed, resolved or imputed.

    Parameters
    ----------
    frame : pandas.DataFrame
    required : column names that must be present
    source : name used in messages (usually the file path)

    Raises
    ------
    FairfoundryError
        Naming the file, the column and the offending rows.
    """
    import pandas as pd

    if frame.shape[0] == 0:
        raise FairfoundryError(f"{source} has a header but no rows")
    cols = [str(c) for c in frame.columns]
    dup_cols = sorted({c for c in cols if cols.count(c) > 1})
    if dup_cols:
        raise FairfoundryError(f"{source} has duplicated column names: {', '.join(dup_cols)}")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        first = missing[0]
        raise FairfoundryError(
            f"{source} lacks required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)}",
            hint=did_you_mean(first, cols, what="its columns"),
        )
    frame = frame.copy()
    for col in ID_COLUMNS:
        if col in frame.columns and not pd.api.types.is_string_dtype(frame[col]):
            s = frame[col]
            frame[col] = s.astype(str).where(s.notna(), None)
    if "sample_id" in frame.columns:
        empty = frame["sample_id"].isna() | (frame["sample_id"].astype(str).str.strip() == "")
        if empty.any():
            rows = (frame.index[empty.to_numpy()] + 2).tolist()[:5]
            raise FairfoundryError(f"{source}: column 'sample_id' is empty in {int(empty.sum())} "
                                   f"row(s) (file lines {rows})")
        dup = frame["sample_id"].duplicated(keep=False)
        if dup.any():
            ids = frame.loc[dup, "sample_id"].unique()[:5].tolist()
            raise FairfoundryError(
                f"{source}: column 'sample_id' has {int(frame['sample_id'].duplicated().sum())} "
                f"duplicate value(s), e.g. {ids}",
                hint="sample_id must identify one image; use patient_id for the patient",
            )
    if "age" in frame.columns and not pd.api.types.is_numeric_dtype(frame["age"]):
        num = pd.to_numeric(frame["age"], errors="coerce")
        bad = num.isna() & frame["age"].notna()
        if bad.any():
            examples = frame.loc[bad, "age"].astype(str).unique()[:5].tolist()
            raise FairfoundryError(
                f"{source}: column 'age' must be years as numbers; {int(bad.sum())} value(s) "
                f"are not, e.g. {examples}",
                hint="harmonise ages with fairfoundry.data.harmonise_age first",
            )
        frame["age"] = num
    if "age" in frame.columns and pd.api.types.is_numeric_dtype(frame["age"]):
        age = frame["age"].astype(float)
        odd = (age < AGE_RANGE[0]) | (age > AGE_RANGE[1])
        if odd.any():
            first = int(odd.to_numpy().nonzero()[0][0])
            log.warning("%s: %d age(s) outside %g-%g years (first at row %d: %g) are treated as "
                        "unknown", source, int(odd.sum()), *AGE_RANGE, first + 1,
                        float(age.iloc[first]))
            frame["age"] = age.where(~odd)
    if "country" in frame.columns:
        frame["country"] = _iso3_countries(frame["country"], source)
    return frame


def _iso3_countries(values, source: str):
    """``country`` as ISO 3166-1 alpha-3: recognised names and codes are mapped (``US`` ->
    ``USA``) with a warning; unrecognised values stay as they are, with a warning."""
    from ._harmonise import UNKNOWN, _country_lookup, country_table

    codes = set(country_table()["iso3"]) | {UNKNOWN}
    uniq = [u for u in values.dropna().unique() if str(u) not in codes]
    if not uniq:
        return values
    lookup = _country_lookup()
    mapped = {u: lookup.get(str(u).strip().lower()) for u in uniq}
    fixed = {u: c for u, c in mapped.items() if c}
    bad = [u for u, c in mapped.items() if not c]
    if fixed:
        log.warning("%s: country values are not ISO 3166-1 alpha-3 codes; mapped %s",
                    source, ", ".join(f"{k!r} -> {v}" for k, v in list(fixed.items())[:8]))
    if bad:
        log.warning("%s: %d country value(s) are not ISO 3166-1 alpha-3 codes nor known names, "
                    "e.g. %s; they are kept as their own groups (no region or income group)",
                    source, len(bad), ", ".join(map(repr, bad[:5])))
    return values.map(lambda v: fixed.get(v, v)) if fixed else values


def read_manifest(path: str | os.PathLike, *, required: tuple[str, ...] | list[str] = ("sample_id",)):
    """Read a manifest (CSV, TSV, Parquet, or the first sheet of an .xlsx) and validate its
    columns.

    ``sample_id``, ``patient_id``, ``path`` and ``split`` are read as strings (ids keep leading
    zeros). Paths are **not** resolved: a relative ``path`` is relative to the manifest file,
    whose location is kept in ``frame.attrs["manifest_path"]``.

    Parameters
    ----------
    path : manifest file
    required : columns that must be present (default: ``sample_id`` only)

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    FairfoundryError
        Missing or unreadable file, empty table, a required column missing (with the closest
        names as a hint), empty or duplicated ``sample_id``, non-numeric ``age``.

    Examples
    --------
    >>> from fairfoundry.datasets import nih_images
    >>> m = read_manifest(nih_images(), required=("sample_id", "path"))
    >>> len(m), m["sample_id"].iloc[0]
    (300, '00000075_000.png')
    """
    path = Path(path)
    if not path.exists():
        raise FairfoundryError(f"manifest file not found: {path}")
    if path.is_dir():
        raise FairfoundryError(f"manifest {path} is a directory, expected a CSV, TSV or Parquet file")
    frame = validate_manifest(_read(path), required=tuple(required), source=f"manifest {path}")
    frame.attrs["manifest_path"] = str(path.resolve())
    return frame


def write_manifest(frame, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Validate ``frame`` and write it atomically as CSV, TSV or Parquet (by suffix).

    Parameters
    ----------
    frame : pandas.DataFrame with at least ``sample_id``
    path : destination (``.csv``, ``.tsv`` or ``.parquet``)
    overwrite : if False, refuse to replace an existing file

    Returns
    -------
    pathlib.Path of the written file
    """
    from .._io import write_table_atomic

    path = Path(path)
    if path.exists() and not overwrite:
        raise FairfoundryError(f"{path} already exists", hint="pass --overwrite to replace it")
    frame = validate_manifest(frame, source=f"manifest to write to {path}")
    return write_table_atomic(path, frame)


def rebase_paths(frame, *, from_dir: str | os.PathLike, to_dir: str | os.PathLike,
                 column: str = "path"):
    """Return ``frame`` with relative ``column`` paths rewritten from ``from_dir`` to ``to_dir``.

    Use it before writing a manifest into another folder, so that its paths stay relative to
    the manifest file. Absolute paths and empty values are left alone; npz array references
    (``file.npz#key[i]``) are rebased on their file part.

    Examples
    --------
    >>> import pandas as pd
    >>> rebase_paths(pd.DataFrame({"path": ["img/a.png"]}), from_dir="/data/ham",
    ...              to_dir="/data/runs")["path"].tolist()
    ['../ham/img/a.png']
    """
    if column not in frame.columns:
        return frame
    src = Path(os.path.abspath(from_dir))
    dst = Path(os.path.abspath(to_dir))

    def move(p):
        if p is None or p != p or str(p) == "":
            return p
        text = str(p)
        file, sep, ref = text.partition("#") if ".npz#" in text else (text, "", "")
        if Path(file).is_absolute():
            return text
        return Path(os.path.relpath(src / file, dst)).as_posix() + sep + ref

    out = frame.copy()
    out[column] = [move(p) for p in frame[column]]
    return out
