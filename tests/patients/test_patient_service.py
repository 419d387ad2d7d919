"""Registering, reading, editing, voiding and merging patients on a real database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

import factories
from cims.i18n import catalog
from cims.patients.duplicates import (
    find_duplicates,
    identify_unidentified,
    merge_patients,
    patient_references,
    undo_merge,
)
from cims.patients.models import Patient, PatientChange
from cims.patients.mrn import make_mrn
from cims.patients.resident_id import (
    ID_ERROR_CODES,
    MOBILE_ERROR_CODES,
    check_digit,
    mask_resident_id,
)
from cims.patients.schemas import InvalidPatient, PatientInput
from cims.patients.service import (
    PossibleDuplicate,
    get_patient,
    register_patient,
    update_demographics,
    void_patient,
)
from cims.security.crypto import load_cipher
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied

TODAY = dt.date(2026, 11, 26)


def resident_id(born: str = "19850312", sequence: str = "123") -> str:
    """A valid Beijing resident ID (odd sequence: male)."""
    first17 = "110101" + born + sequence
    return first17 + check_digit(first17)


def valid(**changes: Any) -> PatientInput:
    """A complete, valid registration; ``changes`` override fields."""
    values: dict[str, Any] = {
        "family_name": "王",
        "given_name": "小明",
        "sex": "M",
        "birth_date": dt.date(1985, 3, 12),
        "national_id": resident_id(),
        "mobile": "13912345678",
        "address": "北京市东城区东华门街道1号",
        "emergency_contact_name": "王大明",
        "emergency_contact_relation": "father",
        "emergency_contact_phone": "13700001111",
        "insurance_type": "urban_employee",
        "insurance_number": "ZG123456789012",
        "blood_type": "A+",
    }
    values.update(changes)
    return PatientInput(**values)


def register(session: Session, data: PatientInput, role: str = "registrar", **kw: Any) -> Any:
    return register_patient(
        session=session, actor=factories.actor(session, role), data=data, today=TODAY, **kw
    )


def audits(session: Session, action: str, patient_id: int | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action)
    if patient_id is not None:
        query = query.where(AuditEvent.patient_id == patient_id)
    return list(session.scalars(query))


def test_registration_stores_the_seed_shapes_and_is_audited(session: Session) -> None:
    view = register(session, valid())
    row = session.get(Patient, view.id)
    assert row is not None and row.mrn == make_mrn(row.id) == view.mrn
    cipher = load_cipher(session)
    assert row.full_name == "王小明" and row.name_initials == "wxm"
    assert row.national_id_bidx == cipher.blind_index(resident_id(), purpose="national_id")
    assert row.phone_bidx == cipher.blind_index("13912345678", purpose="phone")
    assert row.name_phone4_bidx == cipher.blind_index("王小明5678", purpose="name_phone4")
    assert b"13912345678" not in (row.phone_enc or b"")
    contact = cipher.decrypt_text(
        row.emergency_contact_enc, table="patients", column="emergency_contact", row_id=row.id
    )
    assert contact == '{"name": "王大明", "relation": "father", "phone": "13700001111"}'
    assert view.national_id == resident_id() and not view.masked  # registrar sees in full
    [event] = audits(session, "patients.register", row.id)
    assert "13912345678" not in str(event.detail) and resident_id() not in str(event.detail)


BAD_INPUTS = [
    ({"family_name": ""}, "patient.required_name"),
    (
        {
            "birth_date": None,
            "id_type": "passport",
            "national_id": "E12345678",
            "nationality": "US",
        },
        "patient.required_birth_date",
    ),
    ({"birth_date": dt.date(2027, 1, 1)}, "patient.birth_date_future"),
    ({"birth_date": dt.date(1899, 1, 1)}, "patient.birth_date_too_old"),
    ({"national_id": resident_id()[:17] + "0"}, "patient.id_checksum"),
    ({"birth_date": dt.date(1985, 3, 13)}, "patient.id_birth_date_mismatch"),
    ({"sex": "F"}, "patient.id_sex_mismatch"),
    ({"national_id": "1101011985"}, "patient.id_length"),
    ({"national_id": "11010119850312A23X"}, "patient.id_format"),
    ({"national_id": ""}, "patient.required_id"),
    ({"mobile": "12345"}, "patient.mobile_format"),
    ({"emergency_contact_phone": "555"}, "patient.contact_phone_format"),
    ({"sex": "X"}, "patient.sex_invalid"),
    ({"blood_type": "C"}, "patient.blood_type_invalid"),
    ({"insurance_type": "gold"}, "patient.insurance_type_invalid"),
    (
        {"id_type": "passport", "national_id": "E12345678"},
        "patient.passport_needs_foreign_nationality",
    ),
    ({"id_type": "passport", "nationality": "US", "national_id": "x"}, "patient.passport_format"),
    ({"nationality": "China"}, "patient.nationality_format"),
    ({"id_type": "none"}, "patient.id_type_none_with_number"),
    ({"is_newborn": True, "national_id": ""}, "patient.mother_required"),
    (
        {"is_newborn": True, "national_id": "", "mother_mrn": "0000000000"},
        "patient.mother_not_found",
    ),
]


@pytest.mark.parametrize(("changes", "key"), BAD_INPUTS, ids=[k for _, k in BAD_INPUTS])
def test_each_bad_input_is_refused_with_its_key_and_nothing_written(
    session: Session, changes: dict[str, Any], key: str
) -> None:
    actor = factories.actor(session, "registrar")
    patients_before = session.scalar(select(func.count()).select_from(Patient))
    with pytest.raises(InvalidPatient) as caught:
        register_patient(session=session, actor=actor, data=valid(**changes), today=TODAY)
    assert key in caught.value.problems
    assert session.scalar(select(func.count()).select_from(Patient)) == patients_before
    assert audits(session, "patients.register") == []
    for language in ("zh", "en"):
        assert all(problem in catalog(language) for problem in caught.value.problems)


def test_a_foreigner_registers_with_a_passport(session: Session) -> None:
    data = valid(id_type="passport", nationality="US", national_id="p1234567", given_name="John")
    view = register(session, data.model_copy(update={"family_name": "Smith"}))
    assert view.id_type == "passport" and view.full_name == "John Smith"
    assert view.national_id == "P1234567"


def test_an_unidentified_emergency_patient_needs_no_name_or_id(session: Session) -> None:
    data = PatientInput(is_unidentified=True, sex="U")
    view = register(session, data, role="nurse")
    assert view.is_unidentified and view.id_type == "none"
    assert view.temporary_label is not None and view.temporary_label.startswith("无名氏-急诊-")
    assert view.full_name == view.temporary_label
    second = register(session, data, role="nurse")
    assert second.temporary_label != view.temporary_label


def test_a_newborn_links_to_the_mother_without_an_id(session: Session) -> None:
    mother = register(
        session, valid(given_name="小红", sex="F", national_id=resident_id(sequence="124"))
    )
    baby = valid(
        given_name="小红之子",
        birth_date=TODAY - dt.timedelta(days=2),
        national_id="",
        is_newborn=True,
        mother_mrn=mother.mrn,
    )
    view = register(session, baby)
    assert view.mother_id == mother.id and view.id_type == "none"


def test_a_taken_national_id_is_refused(session: Session) -> None:
    register(session, valid())
    with pytest.raises(InvalidPatient) as caught:
        register(session, valid(given_name="大明", mobile="13800000000"))
    assert caught.value.problems == ["patient.duplicate_id"]
    assert len(audits(session, "patients.register")) == 1


def test_a_look_alike_warns_until_confirmed(session: Session) -> None:
    first = register(session, valid())
    look_alike = valid(national_id=resident_id(sequence="135"))
    with pytest.raises(PossibleDuplicate) as caught:
        register(session, look_alike)
    assert [c.patient_id for c in caught.value.candidates] == [first.id]
    assert set(caught.value.candidates[0].reasons) == {"name", "birth_date", "phone"}
    second = register(session, look_alike, confirm_not_duplicate=True)
    assert second.id != first.id


def test_masking_follows_the_role(session: Session) -> None:
    view = register(session, valid())
    nurse = get_patient(
        session=session, actor=factories.actor(session, "nurse"), patient_id=view.id
    )
    assert nurse.masked and nurse.national_id == mask_resident_id(resident_id())
    assert nurse.phone == "139****5678" and "****" in nurse.address
    assert nurse.emergency_contact["phone"] == "137****1111"
    registrar = get_patient(
        session=session, actor=factories.actor(session, "registrar"), patient_id=view.id
    )
    assert registrar.phone == "13912345678" and registrar.national_id == resident_id()
    assert len(audits(session, "patients.view", view.id)) == 2


def test_an_edit_keeps_field_names_and_only_plain_old_values(session: Session) -> None:
    view = register(session, valid())
    actor = factories.actor(session, "nurse")
    update_demographics(
        session=session,
        actor=actor,
        patient_id=view.id,
        data=valid(given_name="晓明", mobile="13900000000", blood_type="O+"),
        reason="typo at the desk",
        today=TODAY,
    )
    [change] = session.scalars(select(PatientChange).where(PatientChange.patient_id == view.id))
    assert set(change.fields) == {"given_name", "blood_type", "mobile"}
    assert change.before == {"given_name": "小明", "blood_type": "A+"}
    row = session.get(Patient, view.id)
    assert row is not None and row.full_name == "王晓明" and row.name_initials == "wxm"
    [event] = audits(session, "patients.update_demographics", view.id)
    assert event.detail == {"fields": change.fields}


def test_voiding_needs_a_reason_and_is_audited(session: Session) -> None:
    view = register(session, valid())
    actor = factories.actor(session, "registrar")
    with pytest.raises(InvalidPatient, match="reason_required"):
        void_patient(session=session, actor=actor, patient_id=view.id, reason=" ")
    void_patient(session=session, actor=actor, patient_id=view.id, reason="registered twice")
    row = session.get(Patient, view.id)
    assert row is not None and row.voided and row.void_reason == "registered twice"
    assert len(audits(session, "patients.void", view.id)) == 1


@pytest.mark.parametrize(
    ("role", "call"),
    [
        ("finance", lambda s, a, p: register_patient(session=s, actor=a, data=valid())),
        ("manager", lambda s, a, p: get_patient(session=s, actor=a, patient_id=p)),
        (
            "doctor",
            lambda s, a, p: update_demographics(session=s, actor=a, patient_id=p, data=valid()),
        ),
        ("finance", lambda s, a, p: void_patient(session=s, actor=a, patient_id=p, reason="x")),
        (
            "nurse",
            lambda s, a, p: merge_patients(
                session=s, actor=a, survivor_id=p, merged_id=p, reason="x"
            ),
        ),
        ("nurse", lambda s, a, p: undo_merge(session=s, actor=a, merge_id=1)),
        ("doctor", lambda s, a, p: find_duplicates(session=s, actor=a, patient_id=p)),
        (
            "nurse",
            lambda s, a, p: identify_unidentified(session=s, actor=a, temporary_id=p, patient_id=p),
        ),
    ],
)
def test_roles_without_the_privilege_are_refused(
    session: Session, role: str, call: Callable[[Session, Any, int], Any]
) -> None:
    patient = factories.patient(session)
    with pytest.raises(AccessDenied):
        call(session, factories.actor(session, role), patient.id)


def test_a_planted_duplicate_scores_above_a_namesake(session: Session) -> None:
    original = register(session, valid())
    namesake = register(
        session,
        valid(
            birth_date=dt.date(1990, 1, 1),
            national_id=resident_id("19900101", "111"),
            mobile="13611112222",
        ),
        confirm_not_duplicate=True,
    )
    planted = register(
        session, valid(national_id=resident_id(sequence="157")), confirm_not_duplicate=True
    )
    actor = factories.actor(session, "registrar")
    found = {
        c.patient_id: c.score
        for c in find_duplicates(session=session, actor=actor, patient_id=original.id)
    }
    assert found[planted.id] > found.get(namesake.id, 0.0)
    assert found[planted.id] >= 0.99


# -- merging on a seeded hospital: every referencing row moves, undo restores exactly ----


@pytest.fixture(scope="module")
def seeded(fresh_database: Callable[[str], str]) -> Iterator[Engine]:
    """A small seeded demo hospital, so every kind of clinical and financial row exists."""
    from cims.demo.seed import seed_demo

    engine = create_engine(fresh_database("patient_merge"))
    seed_demo(engine, patients=150, seed=11)
    yield engine
    engine.dispose()


@pytest.fixture
def seeded_session(seeded: Engine) -> Iterator[Session]:
    """A session on the seeded hospital, rolled back after the test."""
    with factories.rolled_back_session(seeded) as db:
        yield db


def _rows_of(session: Session, patient_id: int) -> dict[str, set[int]]:
    found = {}
    for column in patient_references():
        table = column.table
        ids = set(session.scalars(select(table.c.id).where(column == patient_id)))
        if ids:
            found[f"{table.name}.{column.name}"] = ids
    return found


def _busiest_patients(session: Session) -> list[int]:
    counts: dict[int, int] = {}
    for column in patient_references():
        for pid, n in session.execute(select(column, func.count()).group_by(column)):
            if pid is not None:
                counts[pid] = counts.get(pid, 0) + n
    return sorted(counts, key=lambda pid: -counts[pid])


def test_merge_moves_every_row_and_undo_restores_exactly(seeded_session: Session) -> None:
    session = seeded_session
    merged_id, survivor_id = _busiest_patients(session)[:2]
    before_merged, before_survivor = _rows_of(session, merged_id), _rows_of(session, survivor_id)
    assert len(before_merged) >= 5  # a well-documented patient: many kinds of rows
    actor = factories.actor(session, "registrar")
    merge = merge_patients(
        session=session, actor=actor, survivor_id=survivor_id, merged_id=merged_id, reason="same"
    )
    assert _rows_of(session, merged_id) == {}
    assert merge.moved == {k: sorted(v) for k, v in before_merged.items()}
    after = _rows_of(session, survivor_id)
    for key in set(before_merged) | set(before_survivor):
        assert after[key] == before_merged.get(key, set()) | before_survivor.get(key, set())
    session.expire_all()
    merged = session.get(Patient, merged_id)
    assert merged is not None and merged.merged_into_id == survivor_id
    assert len(audits(session, "patients.merge")) == 2

    undo_merge(session=session, actor=actor, merge_id=merge.id)
    session.expire_all()
    assert _rows_of(session, merged_id) == before_merged
    assert _rows_of(session, survivor_id) == before_survivor
    merged = session.get(Patient, merged_id)
    assert merged is not None and merged.merged_into_id is None
    with pytest.raises(InvalidPatient, match="merge_already_undone"):
        undo_merge(session=session, actor=actor, merge_id=merge.id)


def test_an_identified_emergency_record_merges_into_the_real_one(seeded_session: Session) -> None:
    session = seeded_session
    actor = factories.actor(session, "registrar")
    temporary = session.scalar(select(Patient).where(Patient.is_unidentified).limit(1))
    real = session.scalar(select(Patient).where(Patient.is_unidentified.is_(False)).limit(1))
    assert temporary is not None and real is not None
    moved_rows = _rows_of(session, temporary.id)
    identify_unidentified(
        session=session, actor=actor, temporary_id=temporary.id, patient_id=real.id
    )
    assert _rows_of(session, temporary.id) == {}
    for key, ids in moved_rows.items():
        assert ids <= _rows_of(session, real.id)[key]
    with pytest.raises(InvalidPatient, match="not_unidentified"):
        identify_unidentified(
            session=session, actor=actor, temporary_id=real.id, patient_id=temporary.id
        )


def test_every_resident_id_code_has_a_translated_message() -> None:
    for language in ("zh", "en"):
        keys = {f"patient.{code}" for code in ID_ERROR_CODES + MOBILE_ERROR_CODES}
        assert keys <= set(catalog(language))


def test_birth_date_is_read_from_the_resident_id_when_left_empty() -> None:
    data = valid(birth_date=None)
    assert data.birth_date == dt.date(1985, 3, 12)
    assert data.problems(TODAY) == []
