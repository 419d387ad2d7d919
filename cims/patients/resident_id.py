"""PRC resident identity numbers (GB 11643-1999) and mainland mobile numbers.

Validators return lists of stable snake_case error codes rather than messages so the UI can
translate them and tests can assert on them; an empty list means the value is valid.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ID_ERROR_CODES",
    "MOBILE_ERROR_CODES",
    "birth_date_from_id",
    "build_resident_ids",
    "check_digit",
    "mask_mobile",
    "mask_resident_id",
    "normalize_resident_id",
    "sex_from_id",
    "validate_mobile",
    "validate_resident_id",
]

ID_ERROR_CODES: Final[tuple[str, ...]] = (
    "id_length",
    "id_format",
    "id_region_invalid",
    "id_birth_date_invalid",
    "id_birth_date_future",
    "id_checksum",
    "id_birth_date_mismatch",
    "id_sex_mismatch",
)
MOBILE_ERROR_CODES: Final[tuple[str, ...]] = ("mobile_format",)

_WEIGHTS: Final[tuple[int, ...]] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS: Final[str] = "10X98765432"
# [0-9] rather than \d: \d also matches full-width and other Unicode digits.
_ID_RE: Final[re.Pattern[str]] = re.compile(r"[0-9]{17}[0-9X]")
_MOBILE_RE: Final[re.Pattern[str]] = re.compile(r"1[3-9][0-9]{9}")
# Province-level prefixes of GB/T 2260, plus 71/81/82/83 used on Taiwan/HK/Macau residence
# permits. Foreigners' permanent-residence IDs (2023 format) start with 9 and are accepted too.
_PROVINCE_PREFIXES: Final[frozenset[str]] = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34",
    "35", "36", "37", "41", "42", "43", "44", "45", "46", "50", "51", "52",
    "53", "54", "61", "62", "63", "64", "65", "71", "81", "82", "83",
})  # fmt: skip
# Anyone born before this is not plausibly a living patient; such IDs are typos.
_MIN_BIRTH_YEAR: Final[int] = 1900
_VALID_SEXES: Final[frozenset[str]] = frozenset({"M", "F"})


def normalize_resident_id(value: str) -> str:
    """Strip surrounding whitespace and upper-case the check character."""
    return value.strip().upper()


def check_digit(first17: str) -> str:
    """Return the GB 11643-1999 check character ("0"-"9" or "X") for 17 leading digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("first17 must be exactly 17 ASCII digits")
    total = sum(int(ch) * w for ch, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def _parse_birth_date(digits: str) -> dt.date | None:
    """Parse YYYYMMDD, returning None for impossible calendar dates."""
    try:
        born = dt.date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None
    return born if born.year >= _MIN_BIRTH_YEAR else None


def validate_resident_id(
    value: str,
    *,
    birth_date: dt.date | None = None,
    sex: str | None = None,
    today: dt.date | None = None,
) -> list[str]:
    """Return error codes for an 18-character resident ID (empty list when valid)."""
    if sex is not None and sex not in _VALID_SEXES:
        raise ValueError(f"sex must be 'M', 'F' or None, not {sex!r}")
    value = value.upper()  # a lowercase x check character is a common, harmless input variant
    if len(value) != 18:
        return ["id_length"]
    if _ID_RE.fullmatch(value) is None:
        return ["id_format"]

    errors: list[str] = []
    if value[0] != "9" and value[:2] not in _PROVINCE_PREFIXES:
        errors.append("id_region_invalid")
    born = _parse_birth_date(value[6:14])
    if born is None:
        errors.append("id_birth_date_invalid")
    elif born > (today or dt.date.today()):
        errors.append("id_birth_date_future")
    if check_digit(value[:17]) != value[17]:
        errors.append("id_checksum")
    if birth_date is not None and born is not None and born != birth_date:
        errors.append("id_birth_date_mismatch")
    if sex is not None and _sex_digit(value) != sex:
        errors.append("id_sex_mismatch")
    return errors


def _sex_digit(value: str) -> str:
    """Map the 17th digit to "M" (odd) or "F" (even)."""
    return "M" if int(value[16]) % 2 == 1 else "F"


def _require_format(value: str) -> str:
    """Upper-case value and raise ValueError unless it is structurally an 18-character ID."""
    value = value.upper()
    if _ID_RE.fullmatch(value) is None:
        raise ValueError("not an 18-character resident ID")
    return value


def birth_date_from_id(value: str) -> dt.date:
    """Return the birth date encoded in an ID (the check digit is not verified)."""
    born = _parse_birth_date(_require_format(value)[6:14])
    if born is None:
        raise ValueError("resident ID encodes an invalid birth date")
    return born


def sex_from_id(value: str) -> str:
    """Return "M" or "F" from the 17th digit of an ID (the check digit is not verified)."""
    return _sex_digit(_require_format(value))


def mask_resident_id(value: str) -> str:
    """Mask an ID for display, keeping the first 6 and last 4 characters."""
    value = value.upper()
    if len(value) <= 10:
        # Too short to reveal anything safely; probably malformed anyway.
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def validate_mobile(value: str) -> list[str]:
    """Return error codes for a mainland mobile number (11 digits, 1[3-9]...)."""
    return [] if _MOBILE_RE.fullmatch(value) else ["mobile_format"]


def mask_mobile(value: str) -> str:
    """Mask a mobile number for display, e.g. "138****5678"."""
    if len(value) < 8:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


_CHECK_ASCII: Final[NDArray[np.uint8]] = np.frombuffer(_CHECK_CHARS.encode("ascii"), np.uint8)
_WEIGHTS_ARRAY: Final[NDArray[np.int64]] = np.array(_WEIGHTS, dtype=np.int64)


def _digit_matrix(values: NDArray[np.int64], width: int) -> NDArray[np.int64]:
    """Split non-negative integers into a (n, width) matrix of decimal digits."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (values[:, None] // powers[None, :]) % 10


def build_resident_ids(
    region_codes: NDArray[np.int64],
    birth_dates: NDArray[np.datetime64],
    sequence_codes: NDArray[np.int64],
) -> NDArray[np.str_]:
    """Vectorised: assemble IDs from 6-digit regions, birth dates and 3-digit sequence codes."""
    days = birth_dates.astype("datetime64[D]")
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    months = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    mdays = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    ymd = years * 10_000 + months * 100 + mdays
    if np.any((region_codes < 100_000) | (region_codes > 999_999)):
        raise ValueError("region codes must be 6 digits")
    if np.any((sequence_codes < 0) | (sequence_codes > 999)):
        raise ValueError("sequence codes must be in 0..999")
    if np.any((years < _MIN_BIRTH_YEAR) | (years > 9999)):
        raise ValueError("birth years out of range")
    first17 = np.hstack(
        [
            _digit_matrix(np.asarray(region_codes, np.int64), 6),
            _digit_matrix(ymd, 8),
            _digit_matrix(np.asarray(sequence_codes, np.int64), 3),
        ]
    )
    check = _CHECK_ASCII[(first17 @ _WEIGHTS_ARRAY) % 11]
    ascii_rows = np.empty((len(first17), 18), dtype=np.uint8)
    ascii_rows[:, :17] = first17 + ord("0")
    ascii_rows[:, 17] = check
    # Reinterpret each 18-byte row as one fixed-width bytes value, then decode once.
    return ascii_rows.view("S18").ravel().astype("U18")
