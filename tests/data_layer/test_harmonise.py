import math

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry.data import (
    age_from_dates,
    country_income,
    country_region,
    country_table,
    country_to_iso3,
    fitzpatrick,
    harmonise_age,
    harmonise_ethnicity,
    harmonise_race,
    harmonise_sex,
    parse_dicom_age,
)


def test_sex_synonyms_and_unknown_stays_unknown():
    out = harmonise_sex(["M", "F", "male", "FEMALE", "O", None, "", "Unknown", np.nan])
    assert out.tolist() == ["male", "female", "male", "female", "other", "unknown", "unknown",
                            "unknown", "unknown"]


def test_sex_numeric_codes_are_not_guessed():
    with pytest.raises(FairfoundryError) as exc:
        harmonise_sex([0, 1, 1, 1])
    # the message lists each unmapped value with its count
    assert "1 (3)" in exc.value.message and "0 (1)" in exc.value.message
    assert harmonise_sex([0, 1], mapping={0: "female", 1: "male"}).tolist() == ["female", "male"]


def test_sex_map_must_stay_in_vocabulary():
    with pytest.raises(FairfoundryError, match="vocabulary"):
        harmonise_sex(["M"], mapping={"M": "man"})


@pytest.mark.parametrize("text,years", [("058Y", 58.0), ("006M", 0.5), ("003W", 21 / 365.2425),
                                        ("010D", 10 / 365.2425), ("000Y", 0.0), ("", math.nan)])
def test_dicom_age_strings(text, years):
    got = parse_dicom_age(text)
    assert (math.isnan(got) and math.isnan(years)) or got == pytest.approx(years)


def test_harmonise_age_units_and_implausible():
    ages = harmonise_age(pd.Series(["058Y", "40", 61.0, None, "006M"]))
    assert ages.tolist()[:3] == [58.0, 40.0, 61.0] and math.isnan(ages.iloc[3])
    assert ages.iloc[4] == 0.5
    days = harmonise_age([3652.425, 36524.25 * 2], unit="days")
    assert days.iloc[0] == pytest.approx(10.0) and math.isnan(days.iloc[1])
    assert days.attrs["implausible"] == 1


def test_malformed_age_is_an_error_listing_values():
    with pytest.raises(FairfoundryError, match=r"'about fifty' \(2\)"):
        harmonise_age(["40", "about fifty", "about fifty"])
    lenient = harmonise_age(["40", "about fifty"], strict=False)
    assert lenient.iloc[0] == 40 and math.isnan(lenient.iloc[1])


def test_age_from_birth_and_study_dates():
    years = age_from_dates(["19400305", "11111111", "19710123", None], ["20040826", "20051130",
                                                                        "20130125", "20000101"])
    assert years[0] == pytest.approx((pd.Timestamp("2004-08-26") - pd.Timestamp("1940-03-05")).days
                                     / 365.2425)
    assert math.isnan(years[1]) and math.isnan(years[3])
    assert years[2] == pytest.approx(42.0, abs=0.01)


def test_race_strings_from_mimic_chexpert_and_omb():
    src = ["WHITE - RUSSIAN", "BLACK/CAPE VERDEAN", "HISPANIC/LATINO - PUERTO RICAN",
           "ASIAN - SOUTH EAST ASIAN", "White, non-Hispanic", "Other, Hispanic",
           "American Indian or Alaska Native", "Native Hawaiian or Other Pacific Islander",
           "UNABLE TO OBTAIN", "PATIENT DECLINED TO ANSWER", "Race and Ethnicity Unknown",
           "MULTIPLE RACE/ETHNICITY"]
    assert harmonise_race(src).tolist() == [
        "white", "black", "hispanic", "asian", "white", "other", "native_american",
        "pacific_islander", "unknown", "unknown", "unknown", "multiracial"]
    with pytest.raises(FairfoundryError, match="Martian"):
        harmonise_race(["Martian"])


def test_ethnicity():
    out = harmonise_ethnicity(["Non-Hispanic/Non-Latino", "Hispanic/Latino", "Not Hispanic",
                               "Patient Refused", None])
    assert out.tolist() == ["not_hispanic_or_latino", "hispanic_or_latino",
                            "not_hispanic_or_latino", "unknown", "unknown"]


def test_fitzpatrick_codes():
    assert fitzpatrick([1, 2.0, "III", "type iv", "FST 5", 6, -1], missing=[-1]).tolist() == \
        ["I", "II", "III", "IV", "V", "VI", "unknown"]
    with pytest.raises(FairfoundryError, match="7"):
        fitzpatrick([7])


def test_country_table_is_world_bank_fy2025():
    t = country_table()
    assert len(t) == 218 and t["iso3"].is_unique
    counts = t["income_group"].value_counts()
    assert counts["High income"] == 86 and counts["Upper middle income"] == 54
    assert counts["Lower middle income"] == 51 and counts["Low income"] == 26


def test_country_lookup_region_income():
    iso = country_to_iso3(["Brazil", "BR", "bra", "Brasil", "United States of America", "UK",
                           "Türkiye", "Cote d'Ivoire", None])
    assert iso.tolist() == ["BRA"] * 4 + ["USA", "GBR", "TUR", "CIV", "unknown"]
    assert country_region(["AUT", "AUS", "CHN", "ETH", "BRA"]).tolist() == [
        "Europe", "Oceania", "Asia", "Africa", "Americas"]
    assert country_income(["AUT", "CHN", "IND", "ETH", "VEN", "unknown"]).tolist() == [
        "High income", "Upper middle income", "Lower middle income", "Low income",
        "Unclassified", "unknown"]
    with pytest.raises(FairfoundryError, match="Atlantis"):
        country_to_iso3(["Atlantis"])


def test_income_groups_agree_with_the_world_banks_later_reclassifications():
    # The FY2026 (1 July 2025) and FY2027 (1 July 2026) announcements name each mover's previous
    # group, which is its FY2025 group in this table: Costa Rica upper-middle -> high; Cabo
    # Verde, Samoa lower-middle -> upper-middle; Namibia upper-middle -> lower-middle; Jordan,
    # Micronesia, Philippines, Sri Lanka, Vietnam lower-middle -> upper-middle; Togo low ->
    # lower-middle. The FY2025 (1 July 2024) movers are in their new groups: Algeria, Iran,
    # Mongolia, Ukraine upper-middle; Bulgaria, Palau, Russia high.
    expected = {
        "CRI": "Upper middle income", "CPV": "Lower middle income", "WSM": "Lower middle income",
        "NAM": "Upper middle income", "JOR": "Lower middle income", "FSM": "Lower middle income",
        "PHL": "Lower middle income", "LKA": "Lower middle income", "VNM": "Lower middle income",
        "TGO": "Low income", "DZA": "Upper middle income", "IRN": "Upper middle income",
        "MNG": "Upper middle income", "UKR": "Upper middle income", "BGR": "High income",
        "PLW": "High income", "RUS": "High income",
    }
    assert dict(zip(expected, country_income(list(expected)), strict=True)) == expected
