"""Tests for medical record numbers (9-digit sequence + Luhn check digit)."""

from __future__ import annotations

import numpy as np
import pytest

from cims.patients.mrn import (
    MAX_SEQUENCE,
    MRN_LENGTH,
    is_valid_mrn,
    luhn_check_digit,
    make_mrn,
    make_mrns,
)


def test_luhn_reference_values() -> None:
    assert luhn_check_digit("7992739871") == "3"  # the textbook 79927398713
    assert luhn_check_digit("0") == "0"
    assert luhn_check_digit("1") == "8"


@pytest.mark.parametrize("bad", ["", "12a", "\uff11\uff12\uff13", " 123"])
def test_luhn_rejects_non_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        luhn_check_digit(bad)


def test_make_mrn_format() -> None:
    assert make_mrn(0) == "0000000000"
    assert make_mrn(1) == "0000000018"
    assert make_mrn(MAX_SEQUENCE) == "999999999" + luhn_check_digit("999999999")
    for seq in (0, 1, 42, 123_456_789, MAX_SEQUENCE):
        mrn = make_mrn(seq)
        assert len(mrn) == MRN_LENGTH
        assert int(mrn[:-1]) == seq
        assert is_valid_mrn(mrn)


@pytest.mark.parametrize("bad", [-1, MAX_SEQUENCE + 1, True])
def test_make_mrn_rejects_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError):
        make_mrn(bad)


@pytest.mark.parametrize("bad", ["", "000000001", "00000000180", "000000001x", "\uff10000000018"])
def test_is_valid_mrn_rejects_malformed(bad: str) -> None:
    assert not is_valid_mrn(bad)


def sample_mrns() -> list[str]:
    """A deterministic spread of MRNs, including edge sequences."""
    seqs = np.random.default_rng(11).integers(0, MAX_SEQUENCE + 1, size=300).tolist()
    return [make_mrn(s) for s in [0, 1, 9, 90, 909_090_909, MAX_SEQUENCE, *seqs]]


def test_every_single_digit_error_is_detected() -> None:
    for mrn in sample_mrns():
        for pos in range(MRN_LENGTH):
            for digit in "0123456789":
                if digit != mrn[pos]:
                    assert not is_valid_mrn(mrn[:pos] + digit + mrn[pos + 1 :]), (mrn, pos, digit)


def test_adjacent_transpositions_are_detected_except_09() -> None:
    checked = 0
    for mrn in sample_mrns():
        for pos in range(MRN_LENGTH - 1):
            a, b = mrn[pos], mrn[pos + 1]
            if a == b:
                continue
            swapped = mrn[:pos] + b + a + mrn[pos + 2 :]
            if {a, b} == {"0", "9"}:
                # Luhn's one known blind spot: 09 <-> 90 leaves the weighted sum unchanged.
                assert is_valid_mrn(swapped)
            else:
                assert not is_valid_mrn(swapped), (mrn, pos)
                checked += 1
    assert checked > 1_000


@pytest.mark.parametrize(
    ("start", "count"),
    [(0, 1_000), (1, 1), (123_456_789, 5_000), (MAX_SEQUENCE - 999, 1_000), (5, 0)],
)
def test_make_mrns_agrees_with_make_mrn(start: int, count: int) -> None:
    mrns = make_mrns(start, count)
    assert mrns.dtype == np.dtype(f"<U{MRN_LENGTH}")
    assert mrns.tolist() == [make_mrn(s) for s in range(start, start + count)]


def test_make_mrns_million() -> None:
    mrns = make_mrns(1, 1_000_000)
    assert len(mrns) == 1_000_000
    assert len(np.unique(mrns)) == 1_000_000
    for i in (0, 1, 99_999, 500_000, 999_999):
        assert mrns[i] == make_mrn(1 + i)


@pytest.mark.parametrize(("start", "count"), [(-1, 5), (MAX_SEQUENCE, 2), (0, -1)])
def test_make_mrns_rejects_out_of_range(start: int, count: int) -> None:
    with pytest.raises(ValueError):
        make_mrns(start, count)
