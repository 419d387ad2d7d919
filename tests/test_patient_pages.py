"""The registration and search pages through AppTest, signed in as the demo registrar."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from streamlit.testing.v1 import AppTest
from test_pages import _signed_in_page

from cims.patients.resident_id import check_digit

REGISTER = "pages/patient_register.py"
SEARCH = "pages/patient_search.py"


@pytest.fixture(scope="module")
def seeded_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small seeded demo hospital that the app under test is pointed at."""
    with seeded_app_database("patient_pages", patients=200, seed=5) as url:
        yield url


def _click(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    return button.click().run()


def _fill(at: AppTest, **values: str) -> None:
    for key, value in values.items():
        at.text_input(key=key).input(value)


def test_registrar_registers_then_finds_the_patient(seeded_url: str) -> None:
    first17 = "310101" + "19880214" + "357"
    national_id = first17 + check_digit(first17)
    at = _signed_in_page(seeded_url, "registrar", REGISTER)
    assert not at.exception and at.title[0].value == "Register a patient"
    _fill(at, reg_family="宓", reg_given="思远", reg_id=national_id, reg_mobile="13655512468")
    at.date_input(key="reg_birth").set_value(dt.date(1988, 2, 14))
    at = _click(at, "Register")
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    [done] = at.success
    mrn = done.value.removeprefix("Registered: MRN ").rstrip(".")
    assert len(mrn) == 10

    # The same person again: refused, one translated message, nothing new.
    at = _click(at, "Register")
    assert [e.value for e in at.error] == [
        "This ID number is already registered to another patient."
    ]

    search = _signed_in_page(seeded_url, "registrar", SEARCH)
    for query in (mrn, national_id, "13655512468", "宓思远", "宓思远2468"):
        search.text_input(key="search_query").input(query)
        search = _click(search, "Search")
        assert not search.exception, search.exception
        [table] = search.dataframe
        assert list(table.value["MRN"]) == [mrn], query
    search.selectbox(key="search_choice").select_index(1).run()
    assert not search.exception
    assert "13655512468" in str(search.table[0].value)


def test_bad_input_shows_each_problem_translated(seeded_url: str) -> None:
    at = _signed_in_page(seeded_url, "registrar", REGISTER)
    _fill(at, reg_given="思远", reg_id="310101198802143570", reg_mobile="1365551")
    at = _click(at, "Register")
    errors = [e.value for e in at.error]
    assert "Enter the family name and the given name." in errors
    # The birth date is read from the ID when left empty; the ID's check character is wrong.
    assert "The ID number's check character is wrong; look for a typing error." in errors
    assert "A mobile number has 11 digits starting with 1." in errors
    assert not at.success


def test_a_look_alike_asks_before_registering(seeded_url: str) -> None:
    at = _signed_in_page(seeded_url, "registrar", REGISTER)
    for given, seq in (("若溪", "467"), ("若溪", "469")):
        first17 = "310101" + "19920630" + seq
        _fill(
            at,
            reg_family="宓",
            reg_given=given,
            reg_id=first17 + check_digit(first17),
            reg_mobile="13755500001",
        )
        at.date_input(key="reg_birth").set_value(dt.date(1992, 6, 30))
        at = _click(at, "Register")
    assert not at.success
    assert at.warning[0].value.startswith("These registered patients may be")
    assert list(at.dataframe[0].value["Name"]) == ["宓若溪"]
    at = _click(at, "Not the same person: register anyway")
    assert not at.exception
    assert at.success[0].value.startswith("Registered: MRN ")


def test_unidentified_emergency_gets_a_temporary_label(seeded_url: str) -> None:
    at = _signed_in_page(seeded_url, "registrar", REGISTER)
    at.toggle(key="reg_unidentified").set_value(True).run()
    at = _click(at, "Register")
    assert not at.exception and [e.value for e in at.error] == []
    assert at.info[0].value.startswith("Temporary label: 无名氏-急诊-")


def test_a_nurse_sees_masked_search_results(seeded_url: str) -> None:
    at = _signed_in_page(seeded_url, "nurse", SEARCH)
    at.text_input(key="search_query").input("z")
    at = _click(at, "Search")
    assert not at.exception
    phones = list(at.dataframe[0].value["Mobile"])
    assert phones and all("****" in p for p in phones if p)
