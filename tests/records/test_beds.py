"""Admit, transfer, discharge and the bed board: rules, refusals that write nothing, audit."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.org.models import Bed, Department, Ward
from cims.patients.models import Patient
from cims.records import beds as bed_service
from cims.records.beds import (
    BedRefused,
    admit_patient,
    bed_board,
    discharge_patient,
    list_wards,
    transfer_bed,
)
from cims.records.models import BedAssignment, Encounter
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor

_codes = itertools.count(1)
WardNurse = tuple[Actor, Department, Ward, list[Bed]]


def _ward(session: Session, department: Department, beds: int = 3) -> tuple[Ward, list[Bed]]:
    n = next(_codes)
    ward = Ward(code=f"TW-{n}", name_zh=f"测试{n}病区", name_en=f"Test Ward {n}",
                department_id=department.id)  # fmt: skip
    session.add(ward)
    session.flush()
    rows = [Bed(ward_id=ward.id, code=f"{i + 1:02d}") for i in range(beds)]
    session.add_all(rows)
    session.flush()
    return ward, rows


@pytest.fixture
def ward_nurse(session: Session) -> WardNurse:
    """A nurse of a department with a three-bed ward."""
    department = factories.department(session, "ENDO")
    ward, rows = _ward(session, department)
    nurse = factories.actor(session, "nurse", departments=(department.id,))
    return nurse, department, ward, rows


def _counts(session: Session) -> tuple[int, int, int]:
    """Encounters, bed assignments and successful audit rows: a refusal changes none."""
    return (
        session.scalar(select(func.count()).select_from(Encounter)) or 0,
        session.scalar(select(func.count()).select_from(BedAssignment)) or 0,
        session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome == "success")
        )
        or 0,
    )


def _admit(
    session: Session, actor: Actor, patient: Patient, bed: Bed, **extra: object
) -> Encounter:
    ward = session.get(Ward, bed.ward_id)
    assert ward is not None
    return admit_patient(
        session=session,
        actor=actor,
        patient_id=patient.id,
        department_id=ward.department_id,
        bed_id=bed.id,
        **extra,  # type: ignore[arg-type]
    )


def _actions(session: Session, patient_id: int | None = None) -> list[str]:
    query = select(AuditEvent.action).order_by(AuditEvent.id)
    if patient_id is not None:
        query = query.where(AuditEvent.patient_id == patient_id)
    return list(session.scalars(query))


def test_admit_opens_an_inpatient_encounter_in_the_bed(
    session: Session, ward_nurse: WardNurse
) -> None:
    nurse, department, ward, rows = ward_nurse
    doctor = factories.user(session, "doctor", departments=(department.id,))
    patient = factories.patient(session)
    encounter = _admit(session, nurse, patient, rows[0], attending_id=doctor.id,
                       chief_complaint="  胸闷三天 ")  # fmt: skip
    assert (encounter.encounter_type, encounter.status) == ("inpatient", "open")
    assert encounter.chief_complaint == "胸闷三天"
    [stay] = session.scalars(
        select(BedAssignment).where(BedAssignment.encounter_id == encounter.id)
    )
    assert (stay.bed_id, stay.reason, stay.end_at) == (rows[0].id, "admit", None)
    assert _actions(session, patient.id) == ["records.admit"]

    board = bed_board(session=session, actor=nurse, ward_id=ward.id)
    assert [t.status for t in board.beds] == ["occupied", "free", "free"]
    occupant = board.beds[0].occupant
    assert occupant is not None
    assert (occupant.mrn, occupant.name, occupant.days_in) == (patient.mrn, "张三", 0)
    assert occupant.attending == "Test doctor"
    [wards] = [w for w in list_wards(session=session, actor=nurse) if w.ward_id == ward.id]
    assert (wards.beds, wards.occupied, wards.mine) == (3, 1, True)


def test_the_bed_board_is_audited_once_without_a_patient(
    session: Session, ward_nurse: WardNurse
) -> None:
    nurse, _, ward, rows = ward_nurse
    _admit(session, nurse, factories.patient(session), rows[1])
    before = session.scalar(select(func.max(AuditEvent.id)))
    bed_board(session=session, actor=nurse, ward_id=ward.id)
    [row] = session.scalars(select(AuditEvent).where(AuditEvent.id > before))
    assert (row.action, row.patient_id, row.object_id) == (
        "records.view_bed_board",
        None,
        str(ward.id),
    )
    assert row.detail == {"beds": 3, "occupied": 1}


def test_an_occupied_bed_is_refused_and_nothing_written(
    session: Session, ward_nurse: WardNurse
) -> None:
    nurse, _, _, rows = ward_nurse
    _admit(session, nurse, factories.patient(session), rows[0])
    other = factories.patient(session)
    before = _counts(session)
    with pytest.raises(BedRefused) as refused:
        _admit(session, nurse, other, rows[0])
    assert refused.value.problems == ["beds.bed_occupied"]
    assert _counts(session) == before


def test_a_closed_bed_or_ward_is_refused(session: Session, ward_nurse: WardNurse) -> None:
    nurse, _, ward, rows = ward_nurse
    patient = factories.patient(session)
    rows[0].active = False
    session.flush()
    before = _counts(session)
    with pytest.raises(BedRefused) as refused:
        _admit(session, nurse, patient, rows[0])
    assert refused.value.problems == ["beds.bed_closed"]
    ward.active = False
    session.flush()
    with pytest.raises(BedRefused) as refused:
        _admit(session, nurse, patient, rows[1])
    assert refused.value.problems == ["beds.bed_closed"]
    assert _counts(session) == before


def test_a_patient_already_admitted_is_refused(session: Session, ward_nurse: WardNurse) -> None:
    nurse, _, _, rows = ward_nurse
    patient = factories.patient(session)
    _admit(session, nurse, patient, rows[0])
    before = _counts(session)
    with pytest.raises(BedRefused) as refused:
        _admit(session, nurse, patient, rows[1])
    assert refused.value.problems == ["beds.already_admitted"]
    assert _counts(session) == before


@pytest.mark.parametrize("state", ["voided", "merged", "deceased"])
def test_a_voided_merged_or_dead_patient_is_refused(
    session: Session, ward_nurse: WardNurse, state: str
) -> None:
    nurse, _, _, rows = ward_nurse
    survivor = factories.patient(session)
    fields: dict[str, object] = {
        "voided": {"voided": True, "voided_at": utcnow(), "void_reason": "error"},
        "merged": {"merged_into_id": survivor.id},
        "deceased": {"death_date": dt.date(2026, 1, 1)},
    }[state]  # type: ignore[assignment]
    patient = factories.patient(session, **fields)
    before = _counts(session)
    with pytest.raises(BedRefused) as refused:
        _admit(session, nurse, patient, rows[0])
    expected = "beds.patient_deceased" if state == "deceased" else "beds.patient_inactive"
    assert refused.value.problems == [expected]
    assert _counts(session) == before


def test_bad_admission_details_each_have_a_message(session: Session, ward_nurse: WardNurse) -> None:
    nurse, _, _, rows = ward_nurse
    patient = factories.patient(session)
    before = _counts(session)
    with pytest.raises(BedRefused) as refused:
        admit_patient(session=session, actor=nurse, patient_id=patient.id, department_id=-1,
                      bed_id=rows[0].id, attending_id=-5, chief_complaint="x" * 501)  # fmt: skip
    assert refused.value.problems == [
        "beds.department_invalid",
        "beds.attending_invalid",
        "beds.complaint_too_long",
    ]
    with pytest.raises(BedRefused) as refused:
        _admit(session, nurse, patient, rows[0], from_encounter_id=-1)
    assert refused.value.problems == ["beds.source_encounter_invalid"]
    assert _counts(session) == before


def test_admitting_from_the_emergency_visit_closes_it(
    session: Session, ward_nurse: WardNurse
) -> None:
    nurse, department, _, rows = ward_nurse
    patient = factories.patient(session)
    er = Encounter(patient_id=patient.id, encounter_type="emergency", department_id=department.id,
                   started_at=utcnow() - dt.timedelta(hours=3), status="open")  # fmt: skip
    session.add(er)
    session.flush()
    _admit(session, nurse, patient, rows[0], from_encounter_id=er.id)
    assert (er.status, er.disposition) == ("closed", "admitted")


def test_admitting_outside_ones_wards_needs_care(session: Session, ward_nurse: WardNurse) -> None:
    _, _, _, rows = ward_nurse
    elsewhere = factories.department(session, "ORTH")
    stranger = factories.actor(session, "nurse", departments=(elsewhere.id,))
    patient = factories.patient(session)
    before = _counts(session)
    with pytest.raises(AccessDenied):
        _admit(session, stranger, patient, rows[0])
    assert _counts(session) == before
    registrar = factories.actor(session, "registrar")
    with pytest.raises(AccessDenied):
        _admit(session, registrar, patient, rows[0])
    # The patient's doctor (care relationship) may admit to any ward.
    doctor = factories.actor(session, "doctor", departments=(elsewhere.id,))
    session.add(Encounter(patient_id=patient.id, encounter_type="outpatient",
                          department_id=elsewhere.id, attending_id=doctor.user_id,
                          started_at=utcnow(), status="open"))  # fmt: skip
    session.flush()
    assert _admit(session, doctor, patient, rows[0]).status == "open"


def test_transfer_moves_the_patient_and_frees_the_old_bed(
    session: Session, ward_nurse: WardNurse
) -> None:
    nurse, _, ward, rows = ward_nurse
    patient = factories.patient(session)
    encounter = _admit(session, nurse, patient, rows[0])
    moved = transfer_bed(session=session, actor=nurse, encounter_id=encounter.id, bed_id=rows[2].id)
    assert (moved.bed_id, moved.reason, moved.end_at) == (rows[2].id, "transfer", None)
    stays = session.scalars(
        select(BedAssignment).where(BedAssignment.encounter_id == encounter.id)
        .order_by(BedAssignment.id)
    ).all()  # fmt: skip
    assert [s.end_at is None for s in stays] == [False, True]
    board = bed_board(session=session, actor=nurse, ward_id=ward.id)
    assert [t.status for t in board.beds] == ["free", "free", "occupied"]
    assert _actions(session, patient.id) == ["records.admit", "records.transfer_bed"]


def test_transfer_refusals_write_nothing(session: Session, ward_nurse: WardNurse) -> None:
    nurse, _, _, rows = ward_nurse
    encounter = _admit(session, nurse, factories.patient(session), rows[0])
    _admit(session, nurse, factories.patient(session), rows[1])
    before = _counts(session)
    for bed, problem in ((rows[0], "beds.same_bed"), (rows[1], "beds.bed_occupied")):
        with pytest.raises(BedRefused) as refused:
            transfer_bed(session=session, actor=nurse, encounter_id=encounter.id, bed_id=bed.id)
        assert refused.value.problems == [problem]
    with pytest.raises(BedRefused) as refused:
        transfer_bed(session=session, actor=nurse, encounter_id=-1, bed_id=rows[2].id)
    assert refused.value.problems == ["beds.not_admitted"]
    assert _counts(session) == before
    [live] = session.scalars(
        select(BedAssignment).where(BedAssignment.encounter_id == encounter.id)
    ).all()
    assert (live.bed_id, live.end_at) == (rows[0].id, None)


def test_discharge_closes_the_stay_and_frees_the_bed(
    session: Session, ward_nurse: WardNurse
) -> None:
    nurse, _, ward, rows = ward_nurse
    patient = factories.patient(session)
    encounter = _admit(session, nurse, patient, rows[0])
    done = discharge_patient(session=session, actor=nurse, encounter_id=encounter.id,
                             disposition="home")  # fmt: skip
    assert (done.status, done.disposition) == ("closed", "home")
    assert done.ended_at is not None
    board = bed_board(session=session, actor=nurse, ward_id=ward.id)
    assert all(t.status == "free" for t in board.beds)
    assert _actions(session, patient.id) == ["records.admit", "records.discharge"]
    # Discharged: the same patient may be admitted again.
    assert _admit(session, nurse, patient, rows[0]).id != encounter.id


def test_discharge_refusals_write_nothing(session: Session, ward_nurse: WardNurse) -> None:
    nurse, _, _, rows = ward_nurse
    encounter = _admit(session, nurse, factories.patient(session), rows[0])
    before = _counts(session)
    cases = [
        ({"disposition": "admitted"}, ["beds.disposition_invalid"]),
        ({"disposition": "nowhere"}, ["beds.disposition_invalid"]),
        (
            {"disposition": "home", "ended_at": utcnow() + dt.timedelta(hours=1)},
            ["beds.discharge_time_invalid"],
        ),
        (
            {"disposition": "home", "ended_at": utcnow() - dt.timedelta(days=3)},
            ["beds.discharge_time_invalid"],
        ),
    ]
    for kwargs, problems in cases:
        with pytest.raises(BedRefused) as refused:
            discharge_patient(session=session, actor=nurse, encounter_id=encounter.id, **kwargs)  # type: ignore[arg-type]
        assert refused.value.problems == problems
    assert _counts(session) == before
    assert encounter.status == "open"
    discharge_patient(session=session, actor=nurse, encounter_id=encounter.id, disposition="home")
    with pytest.raises(BedRefused) as refused:
        discharge_patient(session=session, actor=nurse, encounter_id=encounter.id,
                          disposition="home")  # fmt: skip
    assert refused.value.problems == ["beds.not_admitted"]


def test_a_lost_race_for_the_bed_reads_as_occupied(session: Session, ward_nurse: WardNurse) -> None:
    """The unique index behind the lock: its violation becomes the same refusal."""
    nurse, _, _, rows = ward_nurse
    first = _admit(session, nurse, factories.patient(session), rows[0])
    savepoint = session.begin_nested()
    session.add(BedAssignment(encounter_id=first.id, patient_id=first.patient_id,
                              bed_id=rows[0].id, start_at=utcnow()))  # fmt: skip
    with pytest.raises(IntegrityError) as race:
        session.flush()
    savepoint.rollback()
    translated = bed_service._occupied_or(race.value)
    assert isinstance(translated, BedRefused)
    assert translated.problems == ["beds.bed_occupied"]


@pytest.fixture(scope="module")
def committed(fresh_database: Callable[[str], str]) -> Iterator[Engine]:
    """A database of its own for tests that need committed rows seen by two sessions."""
    from cims.security.bootstrap import ensure_roles_and_privileges

    engine = create_engine(fresh_database("beds_race"))
    with Session(engine) as db:
        ensure_roles_and_privileges(db)
        db.commit()
    yield engine
    engine.dispose()


def test_two_nurses_racing_for_one_bed_one_wins(committed: Engine) -> None:
    with Session(committed) as db:
        department = factories.department(db, "RACE")
        _, rows = _ward(db, department, beds=1)
        nurses = [factories.actor(db, "nurse", departments=(department.id,)) for _ in range(2)]
        patients = [factories.patient(db).id for _ in range(2)]
        bed_id, department_id = rows[0].id, department.id
        db.commit()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def admit(nurse: Actor, patient_id: int) -> None:
        with Session(committed) as db:
            barrier.wait()
            try:
                admit_patient(session=db, actor=nurse, patient_id=patient_id,
                              department_id=department_id, bed_id=bed_id)  # fmt: skip
                db.commit()
                outcomes.append("admitted")
            except BedRefused as refused:
                outcomes.extend(refused.problems)

    threads = [
        threading.Thread(target=admit, args=pair) for pair in zip(nurses, patients, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["admitted", "beds.bed_occupied"]
