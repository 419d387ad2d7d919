"""Tests for the vectorised synthetic-identity generator."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from cims.demo import pools
from cims.demo.identities import PEOPLE_COLUMNS, generate_people, pinyin_initials
from cims.patients.resident_id import validate_mobile, validate_resident_id

REFERENCE = dt.date(2025, 1, 1)
RELATIONS = {"spouse", "parent", "child", "sibling", "other"}
PROVINCE_BY_CODE = {code: province for code, province, _, _ in pools.REGIONS}


def is_astral(text: str) -> bool:
    """Tell whether text contains a character outside the Basic Multilingual Plane."""
    return any(ord(ch) > 0xFFFF for ch in text)


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    return generate_people(20_000, np.random.default_rng(2024), reference_date=REFERENCE)


def test_columns(people: pd.DataFrame) -> None:
    assert tuple(people.columns) == PEOPLE_COLUMNS
    assert len(people) == 20_000
    assert not people.isna().to_numpy().any()


def test_every_resident_id_is_valid_and_consistent(people: pd.DataFrame) -> None:
    births = people["birth_date"].dt.date
    for rid, born, sex in zip(people["resident_id"], births, people["sex"], strict=True):
        assert validate_resident_id(rid, birth_date=born, sex=sex, today=REFERENCE) == [], rid
    assert people["resident_id"].is_unique


def test_region_codes_and_addresses_match(people: pd.DataFrame) -> None:
    for rid, address in zip(people["resident_id"], people["address"], strict=True):
        province = PROVINCE_BY_CODE[int(rid[:6])]
        assert address.startswith(province)
        assert address.endswith("号")
    assert people["resident_id"].str[:2].nunique() >= 25


def test_mobiles(people: pd.DataFrame) -> None:
    for column in ("mobile", "emergency_contact_phone"):
        assert all(validate_mobile(m) == [] for m in people[column])
    assert people["mobile"].is_unique
    assert (people["mobile"] != people["emergency_contact_phone"]).all()


def test_names(people: pd.DataFrame) -> None:
    surnames = {name for name, _ in pools.SURNAMES}
    assert people["family_name"].isin(surnames).all()
    assert (people["full_name"] == people["family_name"] + people["given_name"]).all()
    assert people["given_name"].str.len().between(1, 2).all()
    assert people["sex"].isin(["M", "F"]).all()
    assert 0.45 < (people["sex"] == "M").mean() < 0.53
    # The most common surnames dominate, as they do in reality.
    assert people["family_name"].value_counts().index[0] in {"王", "李", "张"}
    assert (people["family_name"].str.len() == 2).any()


def test_ages_are_hospital_like(people: pd.DataFrame) -> None:
    ref = pd.Timestamp(REFERENCE)
    ages = (ref - people["birth_date"]).dt.days / 365.2425
    assert ages.min() >= 0
    assert ages.max() < 96
    assert ages.median() > 40
    assert (ages >= 60).mean() > (ages < 18).mean()
    assert (ages < 5).any() and (ages >= 85).any()


def test_emergency_contacts(people: pd.DataFrame) -> None:
    assert people["emergency_contact_relation"].isin(RELATIONS).all()
    assert set(people["emergency_contact_relation"]) == RELATIONS
    ages = (pd.Timestamp(REFERENCE) - people["birth_date"]).dt.days / 365.2425
    minors = people.loc[ages < 18, "emergency_contact_relation"]
    assert not minors.isin(["spouse", "child"]).any()
    assert people["emergency_contact_name"].str.len().between(2, 4).all()


def test_deterministic_for_a_seed() -> None:
    a = generate_people(3_000, np.random.default_rng(99), reference_date=REFERENCE)
    b = generate_people(3_000, np.random.default_rng(99), reference_date=REFERENCE)
    c = generate_people(3_000, np.random.default_rng(100), reference_date=REFERENCE)
    pd.testing.assert_frame_equal(a, b)
    assert not a["resident_id"].equals(c["resident_id"])


def test_rare_characters_appear_rarely() -> None:
    df = generate_people(100_000, np.random.default_rng(5), reference_date=REFERENCE)
    astral = df.loc[df["given_name"].map(is_astral), "given_name"]
    assert 3 <= len(astral) <= 60  # ~20 expected at 1 in 5,000
    assert all(name[-1] in pools.RARE_GIVEN_CHARS for name in astral)
    assert not df["emergency_contact_name"].map(is_astral).any()
    assert all(initials.isascii() for initials in pinyin_initials(astral))
    # Each rare character still yields exactly one initial (pypinyin or our override).
    assert [len(s) for s in pinyin_initials(pools.RARE_GIVEN_CHARS)] == [1] * len(
        pools.RARE_GIVEN_CHARS
    )


def test_empty() -> None:
    df = generate_people(0, np.random.default_rng(1), reference_date=REFERENCE)
    assert tuple(df.columns) == PEOPLE_COLUMNS
    assert df.empty


def test_negative_n_rejected() -> None:
    with pytest.raises(ValueError):
        generate_people(-1, np.random.default_rng(1), reference_date=REFERENCE)


def test_pools_are_well_formed() -> None:
    surnames = [name for name, _ in pools.SURNAMES]
    assert len(surnames) == len(set(surnames)) >= 100
    for chars in (pools.MALE_GIVEN_CHARS, pools.FEMALE_GIVEN_CHARS):
        assert len(chars) == len(set(chars)) >= 140
        assert not any(is_astral(ch) for ch in chars)
    assert all(ord(ch) > 0xFFFF for ch in pools.RARE_GIVEN_CHARS)
    codes = [code for code, _, _, _ in pools.REGIONS]
    assert len(codes) == len(set(codes)) >= 60
    # One province name per two-digit prefix, so addresses and IDs cannot disagree.
    by_prefix: dict[int, set[str]] = {}
    for code, province, _, _ in pools.REGIONS:
        by_prefix.setdefault(code // 10_000, set()).add(province)
    assert all(len(names) == 1 for names in by_prefix.values())
    assert len(by_prefix) >= 30


@pytest.mark.parametrize(
    ("name", "initials"),
    [
        ("张三", "zs"),
        ("王芳", "wf"),
        ("欧阳娜娜", "oynn"),
        ("司马光", "smg"),
        ("曾小明", "zxm"),
        ("单雄信", "sxx"),
        ("解缙", "xj"),
        ("李𠮷", "lj"),
        (" 陈伟 ", "cw"),
        ("买买提·艾力", "mmtal"),
        ("Anna李", "annal"),
        ("", ""),
    ],
)
def test_pinyin_initials(name: str, initials: str) -> None:
    assert pinyin_initials([name]) == [initials]


def test_pinyin_initials_on_generated_names(people: pd.DataFrame) -> None:
    initials = pinyin_initials(people["full_name"])
    assert len(initials) == len(people)
    assert all(2 <= len(s) <= 4 and s.isascii() and s.isalpha() and s.islower() for s in initials)
