"""Harmonised protected attributes: one vocabulary per attribute, unknown stays unknown.

Every source dataset spells attributes its own way (``M``/``F``, ``MALE``, ``gender``/``male``
0/1, ages in days, DICOM ``058Y``, race strings like ``WHITE - RUSSIAN`` or
``White, non-Hispanic``). The functions here map them onto one vocabulary each:

============  =====================================================================
attribute     vocabulary
============  =====================================================================
sex           ``female``, ``male``, ``other``, ``unknown``
age           years (float); missing or implausible -> NaN
race          ``asian``, ``black``, ``white``, ``native_american``, ``pacific_islander``,
              ``hispanic`` (only where a source records race and ethnicity in one
              field), ``multiracial``, ``other``, ``unknown``
ethnicity     ``hispanic_or_latino``, ``not_hispanic_or_latino``, ``unknown``
skin_type     Fitzpatrick ``I``, ``II``, ``III``, ``IV``, ``V``, ``VI``, ``unknown``
              (``I-II``, ``III-IV``, ``V-VI`` where a source only records pairs, as DDI)
country       ISO 3166-1 alpha-3 (``unknown`` when absent)
============  =====================================================================

Values are mapped once per distinct value (``pd.factorize``), so a million rows cost little.
A value that is neither in the caller's ``mapping`` nor in the built-in synonyms raises
:class:`FairfoundryError` listing every such value with its count (``strict=True``, the default)
or becomes ``unknown`` with a logged warning (``strict=False``). Nothing is ever imputed.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from functools import lru_cache

from .._errors import FairfoundryError
from ..groups import MISSING

__all__ = [
    "UNKNOWN",
    "SEX_VALUES",
    "RACE_VALUES",
    "ETHNICITY_VALUES",
    "SKIN_TYPE_VALUES",
    "INCOME_GROUPS",
    "harmonise_sex",
    "harmonise_age",
    "harmonise_race",
    "harmonise_ethnicity",
    "harmonise_values",
    "fitzpatrick",
    "parse_dicom_age",
    "age_from_dates",
    "country_table",
    "country_to_iso3",
    "country_region",
    "country_subregion",
    "country_income",
    "add_geography",
]

log = logging.getLogger(__name__)

UNKNOWN = MISSING  # the one missing token (fairfoundry.groups)
SEX_VALUES = ("female", "male", "other", UNKNOWN)
RACE_VALUES = ("asian", "black", "white", "native_american", "pacific_islander", "hispanic",
               "multiracial", "other", UNKNOWN)
ETHNICITY_VALUES = ("hispanic_or_latino", "not_hispanic_or_latino", UNKNOWN)
SKIN_TYPE_VALUES = ("I", "II", "III", "IV", "V", "VI", "I-II", "III-IV", "V-VI", UNKNOWN)
INCOME_GROUPS = ("High income", "Upper middle income", "Lower middle income", "Low income",
                 "Unclassified")

#: strings that always mean "not recorded" (compared after lower-casing and stripping).
MISSING_TOKENS = frozenset({
    "", "nan", "none", "null", "na", "n/a", "unknown", "unk", "u", "?", "-", "not reported",
    "not recorded", "not available", "missing", "unable to obtain", "declined", "refused",
    "patient declined to answer", "patient refused", "not specified", "unspecified",
})

_SEX = {
    "female": ("f", "female", "woman", "women", "feminine", "fem", "girl", "w"),
    "male": ("m", "male", "man", "men", "masculine", "boy"),
    "other": ("o", "other", "intersex", "x", "non-binary", "nonbinary", "diverse"),
}

_RACE = {
    "white": ("white", "caucasian", "european", "white or caucasian", "white/caucasian"),
    "black": ("black", "african american", "black or african american", "black/african american",
              "african-american", "african"),
    "asian": ("asian", "asian indian", "chinese", "japanese", "korean", "filipino", "vietnamese",
              "south asian", "east asian", "southeast asian"),
    "native_american": ("american indian or alaska native", "american indian/alaska native",
                        "native american", "american indian", "alaska native",
                        "american indian or alaskan native"),
    "pacific_islander": ("native hawaiian or other pacific islander", "pacific islander",
                         "native hawaiian", "native hawaiian or pacific islander"),
    "hispanic": ("hispanic", "latino", "latina", "latinx", "hispanic/latino", "hispanic or latino",
                 "hispanic/latina"),
    "multiracial": ("multiracial", "multiple", "more than one race", "multiple race/ethnicity",
                    "two or more races", "mixed", "multi-racial"),
    "other": ("other", "other race", "some other race"),
    UNKNOWN: ("race and ethnicity unknown", "unknown race", "unknown/not reported"),
}

_ETHNICITY = {
    "hispanic_or_latino": ("hispanic", "latino", "hispanic/latino", "hispanic or latino",
                           "hispanic/latina", "latina", "latinx", "yes"),
    "not_hispanic_or_latino": ("non-hispanic", "not hispanic", "non-hispanic/non-latino",
                               "not hispanic or latino", "non hispanic", "not hispanic/latino",
                               "non-hispanic/latino", "nonhispanic", "no"),
}

_ROMAN = {"i": "I", "ii": "II", "iii": "III", "iv": "IV", "v": "V", "vi": "VI"}


def _norm(value) -> str:
    """Lower-case, accent-free, whitespace-collapsed text; ``1.0`` -> ``"1"``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode()
    return re.sub(r"\s+", " ", text.strip().lower())


def _is_missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value) or (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):
        return False


def _invert(table: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    return {syn: canon for canon, syns in table.items() for syn in (canon, *syns)}


_SEX_LOOKUP = _invert(_SEX)
_RACE_LOOKUP = _invert(_RACE)
_ETH_LOOKUP = _invert(_ETHNICITY)


def harmonise_values(values, lookup: Callable[[str], str | None], *, vocabulary=None,
                     mapping: Mapping | None = None, strict: bool = True, name: str = "value",
                     missing=()):
    """Map ``values`` through ``mapping`` then ``lookup`` (on normalised text), per distinct value.

    Parameters
    ----------
    values : array-like
    lookup : function from normalised text to a vocabulary value, or None when unknown to it
    vocabulary : allowed outputs (checked for ``mapping``'s values); None allows any string
    mapping : the caller's value map (raw value or its normalised text -> output); wins over
        ``lookup``. Map a value to ``"unknown"`` to declare it a missing-value code.
    strict : raise on values neither map knows (else they become ``unknown``)
    name : attribute name used in messages
    missing : extra raw values meaning "not recorded" (e.g. ``-1``)

    Returns
    -------
    pandas.Series of str, aligned with ``values`` (same index when it is a Series).
    """
    import numpy as np
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    mapping = dict(mapping or {})
    if vocabulary is not None:
        bad = sorted({str(v) for v in mapping.values() if v not in vocabulary})
        if bad:
            raise FairfoundryError(f"value map for {name!r} produces {bad}, which are not in its "
                                   f"vocabulary", hint=f"allowed: {', '.join(vocabulary)}")
    unmapped: list[object] = []

    def fallback(raw, key):
        hit = lookup(key)
        if hit is None:
            unmapped.append(raw)
            return UNKNOWN
        return hit

    codes, out = map_values(series, mapping, missing=missing, fallback=fallback)
    if unmapped:
        counts = series[series.isin(unmapped)].value_counts()
        listing = ", ".join(f"{k!r} ({v})" for k, v in counts.head(20).items())
        if strict:
            raise FairfoundryError(
                f"column {name!r} has {len(unmapped)} value(s) outside its value map: {listing}",
                hint=f"add them to the value map (e.g. {unmapped[0]!r}: unknown), or use one of: "
                     f"{', '.join(vocabulary or [])}".rstrip(": "),
            )
        log.warning("%s: %d value(s) outside the value map set to unknown: %s", name,
                    len(unmapped), listing)
    table = np.array([*out, UNKNOWN], dtype=object)
    return pd.Series(table[codes], index=series.index, name=series.name, dtype=object)


def map_values(values, mapping: Mapping, *, missing=(), fallback) -> tuple:
    """The value-map lookup shared by every attribute: each distinct value once.

    A value is looked up as is, then by its normalised text (:func:`_norm`); missing-value codes
    (``missing`` and :data:`MISSING_TOKENS`) become ``unknown``; anything else is
    ``fallback(raw, normalised)``.

    Returns
    -------
    (codes, outputs): ``pd.factorize`` codes of ``values`` (-1 for NaN) and the output of each
    distinct value.
    """
    import pandas as pd

    norm_map = {_norm(k): v for k, v in mapping.items()}
    missing_norm = {_norm(m) for m in missing}
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    out: list[str] = []
    for raw in uniques:
        try:
            direct = raw in mapping
        except TypeError:  # unhashable
            direct = False
        if direct:
            out.append(str(mapping[raw]))
            continue
        key = _norm(raw)
        if key in norm_map:
            out.append(str(norm_map[key]))
        elif key in missing_norm or key in MISSING_TOKENS:
            out.append(UNKNOWN)
        else:
            out.append(fallback(raw, key))
    return codes, out


def harmonise_sex(values, *, mapping: Mapping | None = None, strict: bool = True,
                  name: str = "sex", missing=()):
    """Map sex / gender codes onto ``female``, ``male``, ``other``, ``unknown``.

    Built-in synonyms: ``F``/``female``/``woman``, ``M``/``male``/``man``, ``O`` (DICOM
    PatientSex "other")/``intersex``/``non-binary``; case-insensitive. Numeric codes (0/1, 1/2)
    are deliberately **not** guessed: pass ``mapping={0: "female", 1: "male"}``.

    Examples
    --------
    >>> list(harmonise_sex(["M", "female", "O", None, "FEMALE"]))
    ['male', 'female', 'other', 'unknown', 'female']
    """
    return harmonise_values(values, _SEX_LOOKUP.get, vocabulary=SEX_VALUES, mapping=mapping,
                            strict=strict, name=name, missing=missing)


def _race_lookup(key: str) -> str | None:
    hit = _RACE_LOOKUP.get(key)
    if hit is not None:
        return hit
    # "WHITE - RUSSIAN", "White, non-Hispanic", "BLACK/CAPE VERDEAN", "Asian - Historical Conv"
    for sep in (" - ", ",", "/", " ("):
        if sep in key:
            head = key.split(sep, 1)[0].strip()
            hit = _RACE_LOOKUP.get(head)
            if hit is not None:
                return hit
            if head in MISSING_TOKENS:
                return UNKNOWN
    return None


def harmonise_race(values, *, mapping: Mapping | None = None, strict: bool = True,
                   name: str = "race", missing=()):
    """Map race strings onto the race vocabulary (US OMB categories, shortened).

    Recognises OMB wording, MIMIC-IV ``race`` strings (``WHITE - RUSSIAN`` -> white,
    ``HISPANIC/LATINO - PUERTO RICAN`` -> hispanic), CheXpert DEMO ``PRIMARY_RACE`` strings
    (``White, non-Hispanic`` -> white) and DICOM EthnicGroup free text. Refusals and
    "unable to obtain" are ``unknown``.

    Examples
    --------
    >>> list(harmonise_race(["WHITE - RUSSIAN", "Black or African American", "Patient Refused"]))
    ['white', 'black', 'unknown']
    """
    return harmonise_values(values, _race_lookup, vocabulary=RACE_VALUES, mapping=mapping,
                            strict=strict, name=name, missing=missing)


def _eth_lookup(key: str) -> str | None:
    hit = _ETH_LOOKUP.get(key)
    if hit is None and key.startswith(("non-hispanic", "non hispanic", "not hispanic")):
        return "not_hispanic_or_latino"
    return hit


def harmonise_ethnicity(values, *, mapping: Mapping | None = None, strict: bool = True,
                        name: str = "ethnicity", missing=()):
    """Map ethnicity onto ``hispanic_or_latino``, ``not_hispanic_or_latino``, ``unknown``.

    Examples
    --------
    >>> list(harmonise_ethnicity(["Non-Hispanic/Non-Latino", "Hispanic/Latino", "Patient Refused"]))
    ['not_hispanic_or_latino', 'hispanic_or_latino', 'unknown']
    """
    return harmonise_values(values, _eth_lookup, vocabulary=ETHNICITY_VALUES, mapping=mapping,
                            strict=strict, name=name, missing=missing)


def _fitz_lookup(key: str) -> str | None:
    key = re.sub(r"^(fitzpatrick|fst|type|skin type)\s*", "", key).strip()
    if key in _ROMAN:
        return _ROMAN[key]
    if re.fullmatch(r"[1-6](\.0+)?", key):
        return ("I", "II", "III", "IV", "V", "VI")[int(float(key)) - 1]
    return None


def fitzpatrick(values, *, mapping: Mapping | None = None, strict: bool = True,
                name: str = "skin_type", missing=()):
    """Map Fitzpatrick skin types (``1``-``6``, ``3.0``, ``III``, ``FST 3``) onto ``I``-``VI``.

    Source: Fitzpatrick TB, "The validity and practicality of sun-reactive skin types I through
    VI", Arch Dermatol 1988. Codes such as Fitzpatrick17k's ``-1`` must be declared
    ``missing``; anything else outside 1-6 is an error (strict) or ``unknown``.

    Examples
    --------
    >>> list(fitzpatrick([1, 3.0, "VI", -1], missing=[-1]))
    ['I', 'III', 'VI', 'unknown']
    """
    return harmonise_values(values, _fitz_lookup, vocabulary=SKIN_TYPE_VALUES, mapping=mapping,
                            strict=strict, name=name, missing=missing)


# ----------------------------------------------------------------------------------- age

_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([ymwd]|years?|months?|weeks?|days?)?\s*$", re.I)
_UNIT_YEARS = {"y": 1.0, "m": 1.0 / 12.0, "w": 7.0 / 365.2425, "d": 1.0 / 365.2425}
_UNITS = {"years": "y", "year": "y", "y": "y", "months": "m", "month": "m", "m": "m",
          "weeks": "w", "week": "w", "w": "w", "days": "d", "day": "d", "d": "d"}


def parse_dicom_age(text) -> float:
    """Parse one DICOM Age String (VR AS, ``nnnD``/``nnnW``/``nnnM``/``nnnY``) into years.

    Days and weeks use 365.2425 days per year, months 1/12 year. Missing or empty -> NaN;
    anything else raises :class:`FairfoundryError`.

    Examples
    --------
    >>> parse_dicom_age("058Y"), parse_dicom_age("006M"), round(parse_dicom_age("003W"), 4)
    (58.0, 0.5, 0.0575)
    """
    if _is_missing(text) or str(text).strip() == "":
        return math.nan
    m = _AGE_RE.match(str(text))
    if not m:
        raise FairfoundryError(f"malformed DICOM age {text!r}",
                               hint="DICOM ages look like 058Y, 006M, 003W or 010D")
    unit = (m.group(2) or "y").lower()
    return float(m.group(1)) * _UNIT_YEARS[_UNITS[unit]]


def harmonise_age(values, *, unit: str = "years", strict: bool = True, max_age: float = 120.0,
                  name: str = "age"):
    """Convert ages to years (float): numbers in ``unit``, or strings such as ``58``, ``58.5``,
    DICOM ``058Y``/``006M``/``003W``/``010D`` (their own unit wins).

    Missing values stay NaN. Ages below 0 or above ``max_age`` are implausible: set to NaN and
    counted in ``result.attrs["implausible"]`` (never silently kept). Text that is not an age
    raises :class:`FairfoundryError` listing the values and their counts (``strict=True``) or
    becomes NaN.

    Examples
    --------
    >>> list(harmonise_age(["058Y", "006M", 40, None, "010D"]).round(3))
    [58.0, 0.5, 40.0, nan, 0.027]
    >>> list(harmonise_age([365.2425, 730.485], unit="days"))
    [1.0, 2.0]
    """
    import numpy as np
    import pandas as pd

    if unit.lower() not in _UNITS:
        raise FairfoundryError(f"unknown age unit {unit!r}", hint="use years, months, weeks or days")
    factor = _UNIT_YEARS[_UNITS[unit.lower()]]
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        years = series.astype(float) * factor
    else:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        parsed = np.empty(len(uniques) + 1, dtype=float)
        parsed[-1] = np.nan
        bad: list[object] = []
        for i, raw in enumerate(uniques):
            if isinstance(raw, (int, float, np.number)) and not isinstance(raw, bool):
                parsed[i] = float(raw) * factor
                continue
            key = _norm(raw)
            if key in MISSING_TOKENS:
                parsed[i] = np.nan
                continue
            m = _AGE_RE.match(key)
            if m is None:
                bad.append(raw)
                parsed[i] = np.nan
                continue
            own = m.group(2)
            parsed[i] = float(m.group(1)) * (_UNIT_YEARS[_UNITS[own.lower()]] if own else factor)
        if bad:
            counts = series[series.isin(bad)].value_counts()
            listing = ", ".join(f"{k!r} ({v})" for k, v in counts.head(20).items())
            if strict:
                raise FairfoundryError(f"column {name!r} has {len(bad)} malformed age value(s): "
                                       f"{listing}",
                                       hint="ages must be numbers or DICOM age strings like 058Y")
            log.warning("%s: %d malformed age value(s) set to unknown: %s", name, len(bad), listing)
        years = pd.Series(parsed[codes], index=series.index, name=series.name)
    implausible = (years < 0) | (years > max_age)
    n_bad = int(implausible.sum())
    if n_bad:
        log.warning("%s: %d implausible age(s) outside [0, %g] set to unknown", name, n_bad, max_age)
        years = years.mask(implausible)
    years = years.astype(float)
    years.attrs["implausible"] = n_bad
    return years


def _parse_dates(values):
    import pandas as pd

    s = pd.Series(values)
    text = s.astype(object).where(s.notna(), None).map(
        lambda v: None if v is None else re.sub(r"[.\-/]", "", str(v).strip())[:8])
    return pd.to_datetime(text, format="%Y%m%d", errors="coerce")


def age_from_dates(birth_dates, study_dates):
    """Age in years at the study from DICOM dates (``YYYYMMDD``; ``YYYY-MM-DD`` also accepted).

    .. math:: \\mathrm{age} = (\\mathrm{study} - \\mathrm{birth})_{\\mathrm{days}} / 365.2425

    Invalid dates (empty, unparseable), a birth after the study or an implausible age above
    120 years (e.g. the dummy birth date ``11111111``) give NaN.

    Examples
    --------
    >>> round(float(age_from_dates(["19400305"], ["20040826"])[0]), 2)
    64.48
    """
    import numpy as np

    birth = _parse_dates(birth_dates)
    study = _parse_dates(study_dates)
    days = (study.to_numpy() - birth.to_numpy()).astype("timedelta64[D]").astype(float)
    days[np.isnat(study.to_numpy()) | np.isnat(birth.to_numpy())] = np.nan
    years = days / 365.2425
    years[(years < 0) | (years > 120)] = np.nan
    return years


# ------------------------------------------------------------------------------ countries

@lru_cache(maxsize=1)
def country_table():
    """The shipped country table (ISO 3166-1, UN M49 region and sub-region, World Bank FY2025
    income group); see ``data/_tables/README.md`` for its sources and date."""
    from importlib import resources

    import pandas as pd

    path = resources.files(__package__).joinpath("_tables", "countries.csv")
    with path.open("r", encoding="utf-8") as fh:
        table = pd.read_csv(fh, comment="#", keep_default_na=False, dtype=str)
    return table


@lru_cache(maxsize=1)
def _country_lookup() -> dict[str, str]:
    table = country_table()
    out: dict[str, str] = {}
    for rec in table.itertuples(index=False):
        names = [rec.iso3, rec.iso2, rec.name, *[a for a in rec.aliases.split("|") if a]]
        for n in names:
            if n:
                out.setdefault(_norm(n), rec.iso3)
    return out


def country_to_iso3(values, *, mapping: Mapping | None = None, strict: bool = True,
                    name: str = "country", missing=()):
    """Map country names or codes (alpha-2, alpha-3, English names, common aliases) to ISO 3166-1
    alpha-3.

    Examples
    --------
    >>> list(country_to_iso3(["Brazil", "AT", "usa", "Türkiye", None]))
    ['BRA', 'AUT', 'USA', 'TUR', 'unknown']
    """
    codes = set(country_table()["iso3"])
    return harmonise_values(values, _country_lookup().get, vocabulary=codes | {UNKNOWN},
                            mapping=mapping, strict=strict, name=name, missing=missing)


def _derive(iso3_values, column: str):
    import pandas as pd

    table = country_table().set_index("iso3")[column]
    series = iso3_values if isinstance(iso3_values, pd.Series) else pd.Series(iso3_values)
    return series.map(table).fillna(UNKNOWN).astype(object)


def country_region(iso3_values):
    """UN M49 region (Africa, Americas, Asia, Europe, Oceania) of ISO alpha-3 codes."""
    return _derive(iso3_values, "region")


def country_subregion(iso3_values):
    """UN M49 sub-region (e.g. ``Sub-Saharan Africa``, ``Western Europe``) of alpha-3 codes."""
    return _derive(iso3_values, "subregion")


def country_income(iso3_values):
    """World Bank income group (FY2025) of ISO alpha-3 codes (``unknown`` when not listed).

    Examples
    --------
    >>> list(country_income(["AUT", "BRA", "IND", "ETH", "XYZ"]))
    ['High income', 'Upper middle income', 'Lower middle income', 'Low income', 'unknown']
    """
    return _derive(iso3_values, "income_group")


def add_geography(frame, *, column: str = "country"):
    """Return ``frame`` with ``region`` and ``income_group`` derived from its alpha-3 ``country``
    column (both ``unknown`` where the country is)."""
    frame = frame.copy()
    if column not in frame.columns:
        return frame
    frame["region"] = country_region(frame[column]).to_numpy()
    frame["income_group"] = country_income(frame[column]).to_numpy()
    return frame
