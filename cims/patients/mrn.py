"""Medical record numbers: a 9-digit zero-padded sequence followed by one Luhn check digit.

Luhn catches every single-digit error and every adjacent transposition except 09 <-> 90,
which is the usual trade-off for a check digit that staff can also compute by hand.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MAX_SEQUENCE",
    "MRN_LENGTH",
    "is_valid_mrn",
    "luhn_check_digit",
    "make_mrn",
    "make_mrns",
]

MRN_LENGTH: Final[int] = 10
MAX_SEQUENCE: Final[int] = 999_999_999
_PAYLOAD_LENGTH: Final[int] = MRN_LENGTH - 1


def _is_ascii_digits(value: str) -> bool:
    """Tell whether value is non-empty and consists only of ASCII 0-9."""
    # str.isdigit alone accepts full-width and superscript digits.
    return value.isascii() and value.isdigit()


def luhn_check_digit(digits: str) -> str:
    """Return the Luhn check digit to append to a string of ASCII digits."""
    if not _is_ascii_digits(digits):
        raise ValueError("digits must be a non-empty string of ASCII digits")
    total = 0
    # The rightmost payload digit sits next to the check digit, so it is the one doubled.
    for position, ch in enumerate(reversed(digits)):
        d = int(ch)
        if position % 2 == 0:
            d = d * 2 - 9 if d >= 5 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def make_mrn(sequence: int) -> str:
    """Return the 10-digit MRN for a sequence number in 0..999,999,999."""
    if isinstance(sequence, bool) or not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence must be in 0..{MAX_SEQUENCE}")
    payload = f"{sequence:0{_PAYLOAD_LENGTH}d}"
    return payload + luhn_check_digit(payload)


def is_valid_mrn(value: str) -> bool:
    """Tell whether value is exactly 10 ASCII digits with a correct Luhn check digit."""
    if len(value) != MRN_LENGTH or not _is_ascii_digits(value):
        return False
    return luhn_check_digit(value[:-1]) == value[-1]


def make_mrns(start: int, count: int) -> NDArray[np.str_]:
    """Vectorised make_mrn for sequences start .. start+count-1 (fixed-width '<U10' array)."""
    if count < 0:
        raise ValueError("count must be non-negative")
    if start < 0 or start + count - 1 > MAX_SEQUENCE:
        raise ValueError(f"sequences must stay within 0..{MAX_SEQUENCE}")
    seqs = np.arange(start, start + count, dtype=np.int64)
    powers = 10 ** np.arange(_PAYLOAD_LENGTH - 1, -1, -1, dtype=np.int64)
    digits = (seqs[:, None] // powers[None, :]) % 10  # (count, 9), most significant first
    # Payload index 8 (rightmost) is doubled, then every second digit leftwards: even indexes.
    doubled = digits[:, 0::2] * 2
    total = doubled.sum(axis=1) - 9 * (doubled >= 10).sum(axis=1) + digits[:, 1::2].sum(axis=1)
    check = (10 - total % 10) % 10
    ascii_rows = np.empty((count, MRN_LENGTH), dtype=np.uint8)
    ascii_rows[:, :_PAYLOAD_LENGTH] = digits + ord("0")
    ascii_rows[:, _PAYLOAD_LENGTH] = check + ord("0")
    # View each 10-byte row as one bytes value so the conversion to str happens in C.
    return ascii_rows.view(f"S{MRN_LENGTH}").ravel().astype(f"U{MRN_LENGTH}")
