"""Duplicate review and patient edit pages through AppTest, on a small seeded hospital."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest
from test_pages import _signed_in_page

from cims.db import session_scope
from cims.patients.models import Patient, PatientChange
from cims.patients.resident_id import check_digit
from cims.patients.schemas import PatientInput
from cims.patients.service import PatientView, get_patient, register_patient
from cims.security.accounts import build_actor
from cims.security.models import User
from cims.security.rbac import Actor

DUPLICATES = "pages/patient_duplicates.py"
EDIT = "pages/patient_edit.py"
_sequence = itertools.count(511, 2)  # odd: male


@pytest.fixture(scope="module")
def seeded_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small seeded demo hospital that the app under test is pointed at."""
    with seeded_app_database("patient_admin_pages", patients=200, seed=11) as url:
        yield url


def _registrar(db: Any) -> Actor:
    user = db.scalar(select(User).where(User.username == "registrar"))
    return build_actor(db, user)


def plant(**changes: Any) -> PatientView:
    """Register (and commit) a valid male patient born 1979-11-05 as the demo registrar."""
    first17 = "310101" + "19791105" + f"{next(_sequence) % 1000:03d}"
    values: dict[str, Any] = {
        "family_name": "宓",
        "given_name": "庆和",
        "sex": "M",
        "birth_date": dt.date(1979, 11, 5),
        "national_id": first17 + check_digit(first17),
        "mobile": "13655577001",
    }
    values.update(changes)
    with session_scope() as db:
        return register_patient(
            session=db,
            actor=_registrar(db),
            data=PatientInput(**values),
            confirm_not_duplicate=True,
        )


def stored(patient_id: int) -> Patient:
    with session_scope() as db:
        row = db.get(Patient, patient_id)
        assert row is not None
        db.expunge(row)
        return row


def _click(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    return button.click().run()


def _edit_page(url: str, role: str, patient_id: int) -> AppTest:
    at = _signed_in_page(url, role, EDIT)
    at.query_params["patient"] = str(patient_id)
    return at.run()


def test_registrar_merges_a_planted_pair_from_the_queue_then_undoes_it(seeded_url: str) -> None:
    kept = plant(given_name="庆和", mobile="13655577002")
    gone = plant(given_name="庆禾", mobile="13655577002")
    at = _signed_in_page(seeded_url, "registrar", DUPLICATES)
    assert not at.exception and at.title[0].value == "Duplicate patients: review and merge"
    pairs = at.selectbox(key="dups_pair")
    [index] = [i for i, o in enumerate(pairs.options) if kept.mrn in o and gone.mrn in o]
    at = pairs.select_index(index).run()
    assert "*" in str(at.table[0].value)  # masked side by side
    at.text_input(key="dups_reason").input("same person, typo in the given name")
    at = _click(at, "Merge")
    assert at.warning[0].value == "Tick the confirmation first."
    assert stored(gone.id).merged_into_id is None
    at.checkbox(key="dups_confirm").check()
    at = _click(at, "Merge")
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("Merged")
    assert stored(gone.id).merged_into_id == kept.id
    merges = at.dataframe[0].value
    assert f"{gone.mrn} 宓庆禾" in list(merges["Merged"])
    at.checkbox(key="dups_undo_confirm").check()
    at = _click(at, "Undo merge")
    assert not at.exception, at.exception
    assert at.success[0].value == "Merge undone: both records are restored."
    assert stored(gone.id).merged_into_id is None
    # The pair is back in the queue, and the earlier confirmation did not carry over.
    assert any(kept.mrn in o and gone.mrn in o for o in at.selectbox(key="dups_pair").options)
    assert at.checkbox(key="dups_confirm").value is False


def test_registrar_identifies_an_unidentified_emergency_patient(seeded_url: str) -> None:
    real = plant(given_name="思齐", mobile="13655577003")
    with session_scope() as db:
        unknown = register_patient(
            session=db, actor=_registrar(db), data=PatientInput(is_unidentified=True)
        )
    at = _signed_in_page(seeded_url, "registrar", DUPLICATES)
    temporary = at.selectbox(key="dups_unknown")
    [index] = [i for i, o in enumerate(temporary.options) if str(unknown.temporary_label) in o]
    temporary.select_index(index)
    at.text_input(key="dups_identify_query").input(real.mrn)
    at = _click(at, "Search")
    at.checkbox(key="dups_identify_confirm").check()
    at = _click(at, "Identify and merge")
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("Identified")
    assert stored(unknown.id).merged_into_id == real.id


def test_registrar_edits_the_mobile_and_sees_it_in_the_history(seeded_url: str) -> None:
    patient = plant(given_name="嘉禾", mobile="13655577004")
    at = _edit_page(seeded_url, "registrar", patient.id)
    assert not at.exception, at.exception
    assert at.text_input(key="edit_mobile").value == "13655577004"  # registrar: in full
    at.text_input(key="edit_mobile").input("13655577099")
    at.text_input(key="edit_reason").input("new number")
    at = _click(at, "Save changes")
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == ["Changes saved."]
    assert at.text_input(key="edit_mobile").value == "13655577099"
    history = at.dataframe[0].value
    [change] = history[history["Event"] == "Details changed"].to_dict("records")
    assert change["Fields"] == "Mobile" and change["Reason"] == "new number"
    assert change["By"] and "13655577004" not in str(history)
    with session_scope() as db:
        assert get_patient(session=db, actor=_registrar(db), patient_id=patient.id).phone == (
            "13655577099"
        )


def test_bad_input_shows_a_translated_message_and_changes_nothing(seeded_url: str) -> None:
    patient = plant(given_name="嘉言", mobile="13655577005")
    at = _edit_page(seeded_url, "registrar", patient.id)
    at.text_input(key="edit_mobile").input("12345")
    at.text_input(key="edit_family").input("")
    at = _click(at, "Save changes")
    errors = [e.value for e in at.error]
    assert "A mobile number has 11 digits starting with 1." in errors
    assert "Enter the family name and the given name." in errors
    assert not at.success
    with session_scope() as db:
        changes = db.scalars(select(PatientChange).where(PatientChange.patient_id == patient.id))
        assert list(changes) == []


def test_a_nurse_edits_without_seeing_masked_values(seeded_url: str) -> None:
    patient = plant(given_name="嘉木", mobile="13655577006")
    at = _edit_page(seeded_url, "nurse", patient.id)
    assert not at.exception, at.exception
    assert at.text_input(key="edit_mobile").value == "136****7006"
    at.selectbox(key="edit_blood").set_value("O+")
    at = _click(at, "Save changes")
    assert [s.value for s in at.success] == ["Changes saved."]
    with session_scope() as db:
        view = get_patient(session=db, actor=_registrar(db), patient_id=patient.id)
    assert (view.blood_type, view.phone) == ("O+", "13655577006")


def test_voiding_requires_a_reason_and_a_confirmation(seeded_url: str) -> None:
    patient = plant(given_name="嘉树", mobile="13655577007")
    at = _edit_page(seeded_url, "registrar", patient.id)
    at.checkbox(key="void_confirm").check()
    at = _click(at, "Void")
    assert [e.value for e in at.error] == ["Give a reason."]
    assert not stored(patient.id).voided
    at.text_input(key="void_reason").input("registered twice at the desk")
    at = _click(at, "Void")
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == ["The record was voided."]
    row = stored(patient.id)
    assert row.voided and row.void_reason == "registered twice at the desk"
    assert "Voided" in list(at.dataframe[0].value["Event"])


def test_an_unidentified_record_opens_for_editing_without_a_birth_date(seeded_url: str) -> None:
    with session_scope() as db:
        unknown = register_patient(
            session=db, actor=_registrar(db), data=PatientInput(is_unidentified=True)
        )
    at = _edit_page(seeded_url, "registrar", unknown.id)
    assert not at.exception, at.exception
    assert at.date_input(key="edit_birth").value is None
    assert at.text_input(key="edit_family").value == ""
    at.selectbox(key="edit_sex").set_value("F")
    at = _click(at, "Save changes")
    assert [s.value for s in at.success] == ["Changes saved."]
    assert at.subheader[0].value.startswith(str(unknown.temporary_label))
