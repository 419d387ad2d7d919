"""Check-in with queue numbers (also under concurrency) and the nurse's worklist."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

import factories
from cims.appointments.models import Appointment
from cims.appointments.service import CheckInRefused, check_in_appointment
from cims.base import utcnow
from cims.clock import local_today, local_zone
from cims.org.models import Bed, Department, Ward
from cims.patients.models import Patient
from cims.records.beds import admit_patient
from cims.records.vitals import record_vitals
from cims.records.worklist import nurse_worklist
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor

_codes = itertools.count(1)


def _department(session: Session) -> Department:
    return factories.department(session, f"WL{next(_codes)}")


def _appointment(
    session: Session,
    department: Department,
    *,
    day: dt.date | None = None,
    status: str = "booked",
    patient: Patient | None = None,
) -> Appointment:
    at = dt.datetime.combine(day or local_today(), dt.time(10, 0), tzinfo=local_zone())
    row = Appointment(
        patient_id=(patient or factories.patient(session)).id,
        department_id=department.id,
        status=status,
        booked_at=utcnow() - dt.timedelta(days=2),
        scheduled_at=at.astimezone(dt.UTC),
    )
    session.add(row)
    session.flush()
    return row


def _audit_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def test_check_in_gives_the_next_number_of_the_department(session: Session) -> None:
    department, other = _department(session), _department(session)
    nurse = factories.actor(session, "nurse", departments=(department.id,))
    first, second = _appointment(session, department), _appointment(session, department)
    elsewhere = _appointment(session, other)
    numbers = [
        check_in_appointment(session=session, actor=nurse, appointment_id=a.id).queue_number
        for a in (second, first, elsewhere)
    ]
    assert numbers == [1, 2, 1]
    assert (first.status, first.queue_date) == ("checked_in", local_today())
    assert first.checked_in_at is not None
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.patient_id == first.patient_id)
    ).all()
    assert actions == ["appointments.check_in"]


@pytest.mark.parametrize(
    ("status", "days", "problem"),
    [
        ("checked_in", 0, "checkin.not_booked"),
        ("cancelled", 0, "checkin.not_booked"),
        ("seen", 0, "checkin.not_booked"),
        ("booked", 1, "checkin.not_today"),
        ("booked", -1, "checkin.not_today"),
    ],
)
def test_check_in_refusals_write_nothing(
    session: Session, status: str, days: int, problem: str
) -> None:
    department = _department(session)
    nurse = factories.actor(session, "nurse", departments=(department.id,))
    appt = _appointment(
        session, department, status=status, day=local_today() + dt.timedelta(days=days)
    )
    before = _audit_count(session)
    with pytest.raises(CheckInRefused) as refused:
        check_in_appointment(session=session, actor=nurse, appointment_id=appt.id)
    assert refused.value.problems == [problem]
    session.refresh(appt)
    assert (appt.status, appt.queue_number) == (status, None)
    assert _audit_count(session) == before
    with pytest.raises(CheckInRefused) as refused:
        check_in_appointment(session=session, actor=nurse, appointment_id=-1)
    assert refused.value.problems == ["checkin.not_found"]


def test_a_doctor_cannot_check_in(session: Session) -> None:
    department = _department(session)
    doctor = factories.actor(session, "doctor", departments=(department.id,))
    appt = _appointment(session, department)
    with pytest.raises(AccessDenied):
        check_in_appointment(session=session, actor=doctor, appointment_id=appt.id)
    assert appt.status == "booked"


def _ward_bed(session: Session, department: Department) -> Bed:
    n = next(_codes)
    ward = Ward(
        code=f"WLW-{n}", name_zh=f"病区{n}", name_en=f"Ward {n}", department_id=department.id
    )
    session.add(ward)
    session.flush()
    bed = Bed(ward_id=ward.id, code="01")
    session.add(bed)
    session.flush()
    return bed


def test_the_worklist_follows_the_patient_through_the_day(session: Session) -> None:
    department, other = _department(session), _department(session)
    nurse = factories.actor(session, "nurse", departments=(department.id,))
    arriving = _appointment(session, department)
    waiting = _appointment(session, department)
    _appointment(session, department, status="cancelled")
    _appointment(session, department, day=local_today() + dt.timedelta(days=1))
    _appointment(session, other)  # another department's clinic
    check_in_appointment(session=session, actor=nurse, appointment_id=waiting.id)
    inpatient = factories.patient(session)
    bed = _ward_bed(session, department)
    admit_patient(session=session, actor=nurse, patient_id=inpatient.id,
                  department_id=department.id, bed_id=bed.id)  # fmt: skip

    work = nurse_worklist(session=session, actor=nurse, day=local_today())
    assert [r.appointment_id for r in work.to_check_in] == [arriving.id]
    assert [(r.appointment_id, r.queue_number) for r in work.awaiting_vitals] == [(waiting.id, 1)]
    [ward_row] = work.inpatients
    assert (ward_row.patient_id, ward_row.bed, ward_row.last_vitals_at) == (
        inpatient.id,
        "01",
        None,
    )

    record_vitals(session=session, actor=nurse, patient_id=waiting.patient_id, pulse_bpm=80)
    record_vitals(session=session, actor=nurse, patient_id=inpatient.id, temperature_c=36.8)
    work = nurse_worklist(session=session, actor=nurse, day=local_today())
    assert work.awaiting_vitals == []
    assert work.inpatients[0].last_vitals_at is not None
    last = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert (last.action, last.patient_id) == ("records.view_worklist", None)
    assert last.detail == {"to_check_in": 1, "awaiting_vitals": 0, "inpatients": 1}


def test_the_worklist_needs_the_vitals_privilege(session: Session) -> None:
    registrar = factories.actor(session, "registrar")
    with pytest.raises(AccessDenied):
        nurse_worklist(session=session, actor=registrar, day=local_today())


@pytest.fixture(scope="module")
def committed(fresh_database: Callable[[str], str]) -> Iterator[Engine]:
    """A database of its own: the two check-ins must see each other's commits."""
    from cims.security.bootstrap import ensure_roles_and_privileges

    engine = create_engine(fresh_database("checkin_race"))
    with Session(engine) as db:
        ensure_roles_and_privileges(db)
        db.commit()
    yield engine
    engine.dispose()


def test_two_check_ins_at_once_get_distinct_numbers(committed: Engine) -> None:
    with Session(committed) as db:
        department = factories.department(db, "RACE")
        nurses = [factories.actor(db, "nurse", departments=(department.id,)) for _ in range(2)]
        ids = [_appointment(db, department).id for _ in range(2)]
        db.commit()
    barrier = threading.Barrier(2)
    numbers: list[int | None] = []
    errors: list[BaseException] = []

    def check_in(nurse: Actor, appointment_id: int) -> None:
        try:
            with Session(committed) as db:
                barrier.wait()
                done = check_in_appointment(session=db, actor=nurse, appointment_id=appointment_id)
                numbers.append(done.queue_number)
                db.commit()
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [
        threading.Thread(target=check_in, args=pair) for pair in zip(nurses, ids, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(numbers) == [1, 2]  # type: ignore[type-var]
