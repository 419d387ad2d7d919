"""Deterministic, vectorised synthetic Chinese identities for the demo hospital.

All sampling is numpy over the fixed pools in ``cims.demo.pools`` (no per-row Faker calls) so
a million people take a few seconds, and the same seed always yields the same DataFrame.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from cims.demo import pools
from cims.patients.pinyin import pinyin_initials
from cims.patients.resident_id import build_resident_ids

# pinyin_initials lives with the patients (a search key); re-exported for the generator.
__all__ = ["PEOPLE_COLUMNS", "generate_people", "pinyin_initials"]

PEOPLE_COLUMNS: Final[tuple[str, ...]] = (
    "family_name",
    "given_name",
    "full_name",
    "sex",
    "birth_date",
    "resident_id",
    "mobile",
    "address",
    "emergency_contact_name",
    "emergency_contact_relation",
    "emergency_contact_phone",
)

_MALE_SHARE: Final[float] = 0.49
_TWO_CHAR_GIVEN_SHARE: Final[float] = 0.72
# About 1 in 5,000 people get a supplementary-plane character so that storage, search and
# rendering of 4-byte UTF-8 / UTF-16 surrogate pairs is exercised by the demo data.
_RARE_CHAR_SHARE: Final[float] = 1 / 5_000
_DAYS_PER_YEAR: Final[float] = 365.2425
_MAX_DEDUPE_ROUNDS: Final[int] = 100

ObjArray = NDArray[np.object_]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def _obj(values: Iterable[str]) -> ObjArray:
    """Build a 1-D object array of Python str (object '+' concatenates element-wise in C)."""
    items = list(values)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _normalised(weights: Iterable[float]) -> NDArray[np.float64]:
    """Scale non-negative weights into probabilities summing to 1."""
    w = np.array(list(weights), dtype=np.float64)
    probs: NDArray[np.float64] = w / w.sum()
    return probs


def _rank_weights(size: int) -> NDArray[np.float64]:
    """Zipf-like probabilities so early (common) pool entries recur, as real names do."""
    return _normalised(1.0 / (np.arange(size, dtype=np.float64) + 10.0))


_SURNAME_POOL: Final[ObjArray] = _obj(name for name, _ in pools.SURNAMES)
_SURNAME_P: Final[NDArray[np.float64]] = _normalised(w for _, w in pools.SURNAMES)
_MALE_POOL: Final[ObjArray] = _obj(pools.MALE_GIVEN_CHARS)
_FEMALE_POOL: Final[ObjArray] = _obj(pools.FEMALE_GIVEN_CHARS)
_MALE_P: Final[NDArray[np.float64]] = _rank_weights(len(_MALE_POOL))
_FEMALE_P: Final[NDArray[np.float64]] = _rank_weights(len(_FEMALE_POOL))
_RARE_POOL: Final[ObjArray] = _obj(pools.RARE_GIVEN_CHARS)
_REGION_CODES: Final[IntArray] = np.array([r[0] for r in pools.REGIONS], np.int64)
# Municipalities have city == province; "北京市北京市东城区" would look wrong on a label.
_REGION_LABELS: Final[ObjArray] = _obj(
    prov + ("" if city == prov else city) + district for _, prov, city, district in pools.REGIONS
)
_STREETS: Final[ObjArray] = _obj(pools.STREETS)
_HOUSE_NUMBERS: Final[ObjArray] = _obj(f"{i}号" for i in range(1_000))
_MOBILE_PREFIXES: Final[IntArray] = np.array(pools.MOBILE_PREFIXES, np.int64)
_AGE_BAND_P: Final[NDArray[np.float64]] = _normalised(pools.AGE_BAND_WEIGHTS)
_RELATIONS: Final[ObjArray] = _obj(pools.RELATIONS)
_RELATION_CDF: Final[NDArray[np.float64]] = np.cumsum(
    np.array([_normalised(row) for row in pools.RELATION_WEIGHTS]), axis=1
)
_SPOUSE, _PARENT, _CHILD, _SIBLING, _OTHER = range(5)


def _duplicated(keys: IntArray) -> BoolArray:
    """Mark every occurrence of a key except its first one."""
    dup = np.ones(len(keys), dtype=bool)
    dup[np.unique(keys, return_index=True)[1]] = False
    return dup


def _digits_to_str(values: IntArray, width: int) -> NDArray[np.str_]:
    """Format non-negative ints as zero-padded fixed-width strings without a Python loop."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    ascii_rows = ((values[:, None] // powers[None, :]) % 10 + ord("0")).astype(np.uint8)
    return np.ascontiguousarray(ascii_rows).view(f"S{width}").ravel().astype(f"U{width}")


def _surnames(rng: np.random.Generator, n: int) -> ObjArray:
    """Draw n surnames by population frequency."""
    picked: ObjArray = _SURNAME_POOL[rng.choice(len(_SURNAME_POOL), size=n, p=_SURNAME_P)]
    return picked


def _given_names(rng: np.random.Generator, male: BoolArray, *, allow_rare: bool) -> ObjArray:
    """Draw 1-2 character given names from the sex-leaning character pools."""
    n = len(male)

    def chars() -> ObjArray:
        m = _MALE_POOL[rng.choice(len(_MALE_POOL), size=n, p=_MALE_P)]
        f = _FEMALE_POOL[rng.choice(len(_FEMALE_POOL), size=n, p=_FEMALE_P)]
        picked: ObjArray = np.where(male, m, f)
        return picked

    first, second = chars(), chars()
    two = rng.random(n) < _TWO_CHAR_GIVEN_SHARE
    if allow_rare:
        rare = rng.random(n) < _RARE_CHAR_SHARE
        rare_char = _RARE_POOL[rng.integers(0, len(_RARE_POOL), size=n)]
        # The rare character replaces the last one, whatever the name length.
        second = np.where(rare & two, rare_char, second)
        first = np.where(rare & ~two, rare_char, first)
    given: ObjArray = np.where(two, first + second, first)
    return given


def _unique_mobiles(rng: np.random.Generator, n: int) -> IntArray:
    """Draw n distinct 11-digit mobile numbers (as int64)."""

    def draw(size: int) -> IntArray:
        prefix = _MOBILE_PREFIXES[rng.integers(0, len(_MOBILE_PREFIXES), size=size)]
        subscriber: IntArray = prefix * 100_000_000 + rng.integers(0, 100_000_000, size=size)
        return subscriber

    numbers = draw(n)
    for _ in range(_MAX_DEDUPE_ROUNDS):
        dup = _duplicated(numbers)
        if not dup.any():
            return numbers
        numbers[dup] = draw(int(dup.sum()))
    raise RuntimeError("could not draw distinct mobile numbers")


def generate_people(n: int, rng: np.random.Generator, *, reference_date: dt.date) -> pd.DataFrame:
    """Generate n synthetic people (columns PEOPLE_COLUMNS), deterministic for a given rng."""
    if n < 0:
        raise ValueError("n must be non-negative")
    male = rng.random(n) < _MALE_SHARE
    family = _surnames(rng, n)
    given = _given_names(rng, male, allow_rare=True)

    band = rng.choice(len(_AGE_BAND_P), size=n, p=_AGE_BAND_P)
    age_years = (band + rng.random(n)) * pools.AGE_BAND_YEARS
    age_days = np.floor(age_years * _DAYS_PER_YEAR).astype(np.int64)
    birth = np.datetime64(reference_date, "D") - age_days.astype("timedelta64[D]")

    region = rng.integers(0, len(_REGION_CODES), size=n)
    # Sequence code 000-999 whose parity encodes sex (odd = male) per GB 11643.
    seq = rng.integers(0, 500, size=n) * 2 + male
    # Region x birth day x sequence must be unique, or two people would share an ID.
    for _ in range(_MAX_DEDUPE_ROUNDS):
        dup = _duplicated((region * 100_000 + age_days) * 1_000 + seq)
        if not dup.any():
            break
        seq[dup] = rng.integers(0, 500, size=int(dup.sum())) * 2 + male[dup]
    else:
        raise RuntimeError("could not assign distinct resident IDs")
    resident_id = build_resident_ids(_REGION_CODES[region], birth, seq)

    mobile = _unique_mobiles(rng, n)
    address = (
        _REGION_LABELS[region]
        + _STREETS[rng.integers(0, len(_STREETS), size=n)]
        + _HOUSE_NUMBERS[rng.integers(1, len(_HOUSE_NUMBERS), size=n)]
    )

    # Emergency contact: relation depends on the patient's age group.
    group = np.searchsorted(np.array(pools.RELATION_AGE_LIMITS), age_years, side="right")
    relation = (rng.random(n)[:, None] >= _RELATION_CDF[group]).sum(axis=1)
    relation = np.minimum(relation, len(_RELATIONS) - 1)
    contact_male = np.where(relation == _SPOUSE, ~male, rng.random(n) < 0.5)
    # Parents, siblings and a man's children usually share the patient's surname.
    same_family = (relation == _PARENT) | (relation == _SIBLING) | ((relation == _CHILD) & male)
    contact_family = np.where(same_family, family, _surnames(rng, n))
    contact_given = _given_names(rng, contact_male, allow_rare=False)
    contact_phone = _unique_mobiles(rng, n)
    # Never the patient's own number: bump the last digit on the (rare) collision.
    same = contact_phone == mobile
    contact_phone[same] = contact_phone[same] - mobile[same] % 10 + (mobile[same] % 10 + 1) % 10

    return pd.DataFrame(
        {
            "family_name": family,
            "given_name": given,
            "full_name": family + given,
            "sex": np.where(male, "M", "F"),
            "birth_date": birth,
            "resident_id": resident_id,
            "mobile": _digits_to_str(mobile, 11),
            "address": address,
            "emergency_contact_name": contact_family + contact_given,
            "emergency_contact_relation": _RELATIONS[relation],
            "emergency_contact_phone": _digits_to_str(contact_phone, 11),
        },
        columns=list(PEOPLE_COLUMNS),
    )
