"""Tests for PRC resident ID and mobile-number validation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from cims.patients.resident_id import (
    ID_ERROR_CODES,
    birth_date_from_id,
    build_resident_ids,
    check_digit,
    mask_mobile,
    mask_resident_id,
    normalize_resident_id,
    sex_from_id,
    validate_mobile,
    validate_resident_id,
)

GOOD_ID = "11010519491231002X"  # the worked example from GB 11643-1999
TODAY = dt.date(2025, 1, 1)
# The same 17 digits typed with a Chinese IME in full-width mode (U+FF10..U+FF19).
FULL_WIDTH_17 = "".join(chr(0xFF10 + int(ch)) for ch in GOOD_ID[:17])


def with_check(first17: str) -> str:
    """Complete 17 digits into an ID with a correct check character."""
    return first17 + check_digit(first17)


def test_check_digit_matches_standard_examples() -> None:
    assert check_digit("11010519491231002") == "X"
    assert check_digit("44052418800101001") == "4"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1101051949123100",
        "1101051949123100a",
        FULL_WIDTH_17,
    ],
)
def test_check_digit_rejects_non_17_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        check_digit(bad)


@pytest.mark.parametrize("value", [GOOD_ID, GOOD_ID.lower()])
def test_known_good_id_is_valid(value: str) -> None:
    assert validate_resident_id(value, today=TODAY) == []
    assert validate_resident_id(value) == []


def test_bad_checksum() -> None:
    assert validate_resident_id("110105194912310021", today=TODAY) == ["id_checksum"]


@pytest.mark.parametrize(
    "value", ["", "1101051949123100", "11010519491231002X1", "110105491231002"]
)
def test_wrong_length(value: str) -> None:
    assert validate_resident_id(value) == ["id_length"]


@pytest.mark.parametrize(
    "value",
    [
        "11010519491231002Y",
        "1101051949123100X2",
        "11010519491231 02X",
        "\uff1110105194912310021",  # full-width digit
    ],
)
def test_bad_format(value: str) -> None:
    assert validate_resident_id(value) == ["id_format"]


def test_unknown_province_prefix() -> None:
    assert validate_resident_id(with_check("00010519491231002"), today=TODAY) == [
        "id_region_invalid"
    ]
    # Foreigners' permanent-residence IDs start with 9 and must not be rejected on region.
    assert validate_resident_id(with_check("91115619800101001"), today=TODAY) == []


@pytest.mark.parametrize("ymd", ["19490231", "19491301", "19490000", "18991231"])
def test_invalid_birth_date(ymd: str) -> None:
    value = with_check("110105" + ymd + "002")
    assert validate_resident_id(value, today=TODAY) == ["id_birth_date_invalid"]
    with pytest.raises(ValueError):
        birth_date_from_id(value)


def test_future_birth_date() -> None:
    value = with_check("11010520250102002")
    assert validate_resident_id(value, today=TODAY) == ["id_birth_date_future"]
    assert validate_resident_id(value, today=dt.date(2025, 1, 2)) == []


def test_birth_date_and_sex_consistency() -> None:
    born = dt.date(1949, 12, 31)
    assert validate_resident_id(GOOD_ID, birth_date=born, sex="F", today=TODAY) == []
    assert validate_resident_id(
        GOOD_ID, birth_date=dt.date(1949, 12, 30), sex="M", today=TODAY
    ) == ["id_birth_date_mismatch", "id_sex_mismatch"]


def test_several_errors_are_all_reported_and_known() -> None:
    errors = validate_resident_id(
        "000105194902310021", birth_date=dt.date(2000, 1, 1), sex="M", today=TODAY
    )
    assert errors == [
        "id_region_invalid",
        "id_birth_date_invalid",
        "id_checksum",
        "id_sex_mismatch",
    ]
    assert set(errors) <= set(ID_ERROR_CODES)


def test_invalid_sex_argument_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        validate_resident_id(GOOD_ID, sex="male")


def test_extractors() -> None:
    assert birth_date_from_id(GOOD_ID) == dt.date(1949, 12, 31)
    assert sex_from_id(GOOD_ID) == "F"
    assert sex_from_id(with_check("11010519491231001")) == "M"
    assert sex_from_id(GOOD_ID.lower()) == "F"
    with pytest.raises(ValueError):
        sex_from_id("12345")


def test_masking() -> None:
    assert mask_resident_id(GOOD_ID) == "110105********002X"
    assert mask_resident_id(GOOD_ID.lower()) == "110105********002X"
    assert mask_resident_id("12345") == "*****"
    assert mask_mobile("13812345678") == "138****5678"
    assert mask_mobile("1234") == "****"


def test_normalize() -> None:
    assert normalize_resident_id(" 11010519491231002x\n") == GOOD_ID


@pytest.mark.parametrize("value", ["13812345678", "19912345678", "16600000000", "15000000000"])
def test_valid_mobiles(value: str) -> None:
    assert validate_mobile(value) == []


@pytest.mark.parametrize(
    "value",
    [
        "",
        "12812345678",
        "1381234567",
        "138123456789",
        "+8613812345678",
        "138 1234 5678",
        "\uff113812345678",
        "23812345678",
    ],
)
def test_invalid_mobiles(value: str) -> None:
    assert validate_mobile(value) == ["mobile_format"]


def test_build_resident_ids_agrees_with_scalar_functions() -> None:
    rng = np.random.default_rng(7)
    n = 2_000
    regions = rng.choice(np.array([110105, 440106, 650102, 310115]), size=n)
    births = np.datetime64("1930-01-01") + rng.integers(0, 32_000, size=n).astype("timedelta64[D]")
    seqs = rng.integers(0, 1_000, size=n)
    ids = build_resident_ids(regions, births, seqs)
    assert ids.dtype.kind == "U"
    for value, region, born, seq in zip(ids.tolist(), regions, births, seqs, strict=True):
        assert len(value) == 18
        assert value[:6] == str(region)
        assert value[17] == check_digit(value[:17])
        assert birth_date_from_id(value) == born.astype(dt.date)
        assert sex_from_id(value) == ("M" if seq % 2 else "F")
        assert validate_resident_id(value, today=TODAY) == []
    assert build_resident_ids(
        np.array([110105]), np.array(["1949-12-31"], dtype="datetime64[D]"), np.array([2])
    ).tolist() == [GOOD_ID]


def test_build_resident_ids_rejects_out_of_range_parts() -> None:
    born = np.array(["1990-01-01"], dtype="datetime64[D]")
    with pytest.raises(ValueError):
        build_resident_ids(np.array([11010]), born, np.array([1]))
    with pytest.raises(ValueError):
        build_resident_ids(np.array([110105]), born, np.array([1000]))
    with pytest.raises(ValueError):
        build_resident_ids(
            np.array([110105]), np.array(["1880-01-01"], dtype="datetime64[D]"), np.array([1])
        )
