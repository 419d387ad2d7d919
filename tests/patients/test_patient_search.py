"""The front-desk search box: every kind of key, ranking, masking, exclusions, audit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import factories
from cims.patients.duplicates import merge_patients
from cims.patients.mrn import make_mrn
from cims.patients.resident_id import check_digit
from cims.patients.schemas import PatientInput
from cims.patients.search import classify, escape_like, search_patients
from cims.patients.service import PatientView, register_patient, void_patient
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied

TODAY = dt.date(2026, 11, 26)


def resident_id(born: str, sequence: str) -> str:
    """A valid Beijing resident ID."""
    first17 = "110101" + born + sequence
    return first17 + check_digit(first17)


def register(
    session: Session, family: str, given: str, born: dt.date, seq: str, mobile: str
) -> PatientView:
    data = PatientInput(
        family_name=family,
        given_name=given,
        sex="M" if int(seq) % 2 else "F",
        birth_date=born,
        national_id=resident_id(born.strftime("%Y%m%d"), seq),
        mobile=mobile,
        address="上海市黄浦区南京东路100号",
    )
    actor = factories.actor(session, "registrar")
    return register_patient(
        session=session, actor=actor, data=data, today=TODAY, confirm_not_duplicate=True
    )


@pytest.fixture
def people(session: Session) -> dict[str, PatientView]:
    """Three Zhangs and an unrelated patient (names unlikely in any other test)."""
    return {
        "exact": register(session, "鞠", "三", dt.date(1970, 1, 2), "111", "13800135678"),
        "longer": register(session, "鞠", "三丰", dt.date(1980, 5, 6), "113", "13900139999"),
        "other": register(session, "鞠", "三", dt.date(1991, 7, 8), "115", "13700131234"),
        "far": register(session, "欧阳", "娜娜", dt.date(1995, 9, 9), "122", "15000150000"),
    }


def find(session: Session, query: str, role: str = "registrar", **kw: Any) -> list[Any]:
    return search_patients(session=session, actor=factories.actor(session, role), query=query, **kw)


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        (make_mrn(17), "mrn"),
        ("11010119700102111X", "id"),
        ("13800135678", "phone"),
        ("鞠三5678", "name_phone4"),
        ("js", "pinyin"),
        ("鞠", "name"),
        ("", ""),
    ],
)
def test_classify(query: str, kind: str) -> None:
    assert classify(query) == kind


def test_finds_by_every_key(session: Session, people: dict[str, PatientView]) -> None:
    exact, far = people["exact"], people["far"]
    by_mrn = find(session, exact.mrn)
    assert [h.patient_id for h in by_mrn] == [exact.id]
    assert [h.patient_id for h in find(session, exact.national_id.lower())] == [exact.id]
    assert [h.patient_id for h in find(session, "13800135678")] == [exact.id]
    assert [h.patient_id for h in find(session, "鞠三5678")] == [exact.id]
    assert [h.patient_id for h in find(session, "鞠三 5678")] == [exact.id]
    assert far.id in [h.patient_id for h in find(session, "oyn")]  # 欧阳 reads ouyang
    assert far.id in [h.patient_id for h in find(session, "欧阳")]


def test_name_results_rank_exact_before_prefix_and_birth_date_narrows(
    session: Session, people: dict[str, PatientView]
) -> None:
    hits = find(session, "鞠三")
    ids = [h.patient_id for h in hits]
    assert set(ids[:2]) == {people["exact"].id, people["other"].id}
    assert ids[2] == people["longer"].id
    assert [h.rank for h in hits] == [1, 1, 2]
    narrowed = find(session, "鞠三", birth_date=dt.date(1991, 7, 8))
    assert [h.patient_id for h in narrowed] == [people["other"].id]
    assert {people["exact"].id, people["longer"].id} <= {h.patient_id for h in find(session, "js")}


def test_like_wildcards_are_literal(session: Session, people: dict[str, PatientView]) -> None:
    assert escape_like("a%b_c\\") == "a\\%b\\_c\\\\"
    assert find(session, "%") == []
    assert find(session, "鞠_") == []


def test_results_are_masked_per_role(session: Session, people: dict[str, PatientView]) -> None:
    [registrar_hit] = find(session, "13800135678")
    assert registrar_hit.phone == "13800135678"
    [nurse_hit] = find(session, "13800135678", role="nurse")
    assert nurse_hit.phone == "138****5678" and nurse_hit.national_id.count("*") == 8


def test_voided_and_merged_records_are_not_found(
    session: Session, people: dict[str, PatientView]
) -> None:
    actor = factories.actor(session, "registrar")
    void_patient(session=session, actor=actor, patient_id=people["longer"].id, reason="error")
    merge_patients(
        session=session,
        actor=actor,
        survivor_id=people["exact"].id,
        merged_id=people["other"].id,
        reason="same person",
    )
    assert [h.patient_id for h in find(session, "鞠三")] == [people["exact"].id]
    assert find(session, people["other"].mrn) == []


def test_search_is_audited_without_the_query_text(
    session: Session, people: dict[str, PatientView]
) -> None:
    find(session, "鞠三5678")
    event = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == "patients.search")
        .order_by(AuditEvent.id.desc())
    ).first()
    assert event is not None and event.detail is not None
    assert event.detail["key"] == "name_phone4" and event.detail["results"] == 1
    assert "5678" not in str(event.detail) and "鞠" not in str(event.detail)


@pytest.mark.parametrize("role", ["manager", "data_staff", "admin"])
def test_roles_without_view_patients_are_refused(session: Session, role: str) -> None:
    with pytest.raises(AccessDenied):
        find(session, "鞠三", role=role)
