"""Online consultation (在线咨询): patient ↔ doctor threads, and what a doctor does from one.

A patient reads and writes only their own threads. A clinician reads a thread only for a
patient in their care, or under break-glass (``cims.security.care.clinical_access``). Message
text is encrypted like clinical notes, bound to its row id. From a thread a doctor can issue an
online prescription (在线处方: ``cims.records.orders.prescribe`` on the patient's open encounter
with this doctor, or a new outpatient one, marked ``online``) or book a follow-up visit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

from cims.appointments.booking import book_appointment
from cims.appointments.models import Appointment
from cims.base import utcnow
from cims.clock import to_local
from cims.engagement.errors import refuse_if
from cims.engagement.models import ConsultationMessage, ConsultationThread
from cims.org.models import Department
from cims.patients.models import Patient
from cims.records.attachments import AttachmentFile, read_attachment, store_attachment
from cims.records.encounters import create_encounter
from cims.records.models import Attachment, Encounter, Prescription
from cims.records.orders import prescribe
from cims.security import audit
from cims.security.care import clinical_access
from cims.security.crypto import FieldCipher, load_cipher
from cims.security.models import User
from cims.security.rbac import AccessDenied, Actor, Privilege, requires

MAX_SUBJECT: Final = 120
MAX_BODY: Final = 2000


@dataclass(frozen=True)
class ThreadRow:
    """A thread in a list: who, what, state and how many messages wait for me."""

    thread_id: int
    patient_id: int
    patient_name: str
    mrn: str
    subject: str
    status: str
    doctor_name: str | None
    department_id: int | None
    department_zh: str | None
    department_en: str | None
    opened_at: dt.datetime  # hospital-local
    last_message_at: dt.datetime | None
    unread: int


@dataclass(frozen=True)
class MessageView:
    """One decrypted message, and whether the reader wrote it."""

    message_id: int
    sender_name: str
    mine: bool
    from_patient: bool
    body: str
    sent_at: dt.datetime  # hospital-local
    attachment_id: int | None = None
    attachment_name: str | None = None


@dataclass(frozen=True)
class ThreadView:
    """A thread with its messages (oldest first)."""

    thread: ThreadRow
    messages: list[MessageView]


def _clean(value: str, limit: int, empty: str, long: str) -> tuple[str, list[str]]:
    cleaned = value.strip()
    if not cleaned:
        return cleaned, [empty]
    return cleaned, [long] if len(cleaned) > limit else []


def _post(
    session: Session, cipher: FieldCipher, thread: ConsultationThread, sender: int, body: str
) -> ConsultationMessage:
    # The id comes first: the ciphertext's associated data is bound to it.
    message_id = int(
        session.scalar(
            text("SELECT nextval(pg_get_serial_sequence('consultation_messages', 'id'))")
        )
    )
    now = utcnow()
    message = ConsultationMessage(
        id=message_id,
        thread_id=thread.id,
        sender_user_id=sender,
        body_enc=cipher.encrypt(
            body, table="consultation_messages", column="body", row_id=message_id
        ),
        sent_at=now,
    )
    session.add(message)
    thread.last_message_at = now
    session.flush()
    return message


def _unread_for(actor: Actor) -> ScalarSelect[int]:
    """Count of messages in a thread that others wrote and nobody on my side has read."""
    return (
        select(func.count())
        .where(
            ConsultationMessage.thread_id == ConsultationThread.id,
            ConsultationMessage.sender_user_id != actor.user_id,
            ConsultationMessage.read_at.is_(None),
        )
        .correlate(ConsultationThread)
        .scalar_subquery()
    )


def _rows(session: Session, actor: Actor, *where: ColumnElement[bool]) -> list[ThreadRow]:
    doctor = User.__table__.alias("doctor")
    query = (
        select(
            ConsultationThread,
            Patient.full_name,
            Patient.mrn,
            doctor.c.display_name,
            Department.name_zh,
            Department.name_en,
            _unread_for(actor),
        )
        .join(Patient, Patient.id == ConsultationThread.patient_id)
        .outerjoin(doctor, doctor.c.id == ConsultationThread.doctor_id)
        .outerjoin(Department, Department.id == ConsultationThread.department_id)
        .where(*where)
        .order_by(
            func.coalesce(ConsultationThread.last_message_at, ConsultationThread.opened_at).desc()
        )
        .limit(200)
    )
    return [
        ThreadRow(
            thread_id=t.id,
            patient_id=t.patient_id,
            patient_name=name,
            mrn=mrn,
            subject=t.subject,
            status=t.status,
            doctor_name=doctor_name,
            department_id=t.department_id,
            department_zh=zh,
            department_en=en,
            opened_at=to_local(t.opened_at) or t.opened_at,
            last_message_at=to_local(t.last_message_at),
            unread=int(unread or 0),
        )
        for t, name, mrn, doctor_name, zh, en, unread in session.execute(query)
    ]


def _my_patient_id(actor: Actor) -> int:
    if actor.patient_id is None:
        raise AccessDenied(Privilege.PORTAL_SELF, actor)
    return actor.patient_id


def _my_thread(session: Session, actor: Actor, thread_id: int) -> ConsultationThread:
    """The patient's own thread; another patient's is as absent as a missing one."""
    thread = session.get(ConsultationThread, thread_id, with_for_update=True)
    if thread is None or thread.patient_id != _my_patient_id(actor):
        raise LookupError(thread_id)
    return thread


def _thread_in_care(session: Session, actor: Actor, thread_id: int) -> ConsultationThread:
    """The thread, once the clinician passes the care (or break-glass) check."""
    thread = session.get(ConsultationThread, thread_id, with_for_update=True)
    if thread is None:
        raise LookupError(thread_id)
    clinical_access(session, actor, thread.patient_id)
    return thread


def _read(session: Session, actor: Actor, thread: ConsultationThread) -> ThreadView:
    """Decrypt the messages and mark the other side's as read."""
    session.execute(
        update(ConsultationMessage)
        .where(
            ConsultationMessage.thread_id == thread.id,
            ConsultationMessage.sender_user_id != actor.user_id,
            ConsultationMessage.read_at.is_(None),
        )
        .values(read_at=utcnow())
    )
    patient_users = select(User.id).where(User.patient_id == thread.patient_id)
    rows = session.execute(
        select(ConsultationMessage, User.display_name, User.id.in_(patient_users))
        .join(User, User.id == ConsultationMessage.sender_user_id)
        .where(ConsultationMessage.thread_id == thread.id)
        .order_by(ConsultationMessage.sent_at, ConsultationMessage.id)
    ).all()
    cipher = load_cipher(session) if rows else None
    messages = []
    for message, sender, from_patient in rows:
        assert cipher is not None
        body = cipher.decrypt_text(
            message.body_enc, table="consultation_messages", column="body", row_id=message.id
        )
        attached = session.get(Attachment, message.attachment_id) if message.attachment_id else None
        messages.append(
            MessageView(
                message_id=message.id,
                sender_name=sender,
                mine=message.sender_user_id == actor.user_id,
                from_patient=bool(from_patient),
                body=body,
                sent_at=to_local(message.sent_at) or message.sent_at,
                attachment_id=attached.id if attached and not attached.voided else None,
                attachment_name=attached.filename if attached and not attached.voided else None,
            )
        )
    [row] = _rows(session, actor, ConsultationThread.id == thread.id)
    return ThreadView(thread=row, messages=messages)


def _audit(session: Session, actor: Actor, action: str, thread: ConsultationThread) -> None:
    audit.record(
        session,
        actor,
        action,
        patient_id=thread.patient_id,
        object_type="consultation",
        object_id=thread.id,
    )


# ---- the patient's side -----------------------------------------------------------------


@requires(Privilege.PORTAL_SELF)
def open_my_thread(
    *,
    session: Session,
    actor: Actor,
    department_id: int,
    subject: str,
    body: str,
    doctor_id: int | None = None,
) -> ConsultationThread:
    """A patient asks a department (or a doctor who has seen them) a question."""
    patient_id = _my_patient_id(actor)
    subject_text, problems = _clean(
        subject, MAX_SUBJECT, "engagement.subject_required", "engagement.subject_too_long"
    )
    body_text, body_problems = _clean(
        body, MAX_BODY, "engagement.body_required", "engagement.body_too_long"
    )
    department = session.get(Department, department_id)
    if department is None or not department.active or department.kind != "clinical":
        problems.append("engagement.bad_department")
    refuse_if(problems + body_problems)
    if doctor_id is None:  # the doctor who last saw me in that department, if any
        doctor_id = session.scalar(
            select(Encounter.attending_id)
            .where(
                Encounter.patient_id == patient_id,
                Encounter.department_id == department_id,
                Encounter.voided.is_(False),
                Encounter.attending_id.is_not(None),
            )
            .order_by(Encounter.started_at.desc())
            .limit(1)
        )
    thread = ConsultationThread(
        patient_id=patient_id,
        doctor_id=doctor_id,
        department_id=department_id,
        subject=subject_text,
        status="open",
        opened_at=utcnow(),
    )
    session.add(thread)
    session.flush()
    _post(session, load_cipher(session), thread, actor.user_id, body_text)
    _audit(session, actor, "engagement.open_consultation", thread)
    return thread


@requires(Privilege.PORTAL_SELF)
def list_my_threads(*, session: Session, actor: Actor) -> list[ThreadRow]:
    """The signed-in patient's own threads with unread counts."""
    patient_id = _my_patient_id(actor)
    rows = _rows(session, actor, ConsultationThread.patient_id == patient_id)
    audit.record(
        session,
        actor,
        "engagement.list_consultations",
        patient_id=patient_id,
        object_type="consultation",
        detail={"rows": len(rows)},
    )
    return rows


@requires(Privilege.PORTAL_SELF)
def count_my_unread_replies(*, session: Session, actor: Actor) -> int:
    """How many doctors' messages in my threads I have not read (a badge; not audited)."""
    patient_id = _my_patient_id(actor)
    return int(
        session.scalar(
            select(func.count())
            .select_from(ConsultationMessage)
            .join(ConsultationThread, ConsultationThread.id == ConsultationMessage.thread_id)
            .where(
                ConsultationThread.patient_id == patient_id,
                ConsultationMessage.sender_user_id != actor.user_id,
                ConsultationMessage.read_at.is_(None),
            )
        )
        or 0
    )


@requires(Privilege.PORTAL_SELF)
def read_my_thread(*, session: Session, actor: Actor, thread_id: int) -> ThreadView:
    """One of my threads, its messages, and the doctor's replies marked read."""
    thread = _my_thread(session, actor, thread_id)
    view = _read(session, actor, thread)
    _audit(session, actor, "engagement.read_consultation", thread)
    return view


@requires(Privilege.PORTAL_SELF)
def reply_to_my_thread(*, session: Session, actor: Actor, thread_id: int, body: str) -> None:
    """Add my message to one of my open threads."""
    body_text, problems = _clean(
        body, MAX_BODY, "engagement.body_required", "engagement.body_too_long"
    )
    thread = _my_thread(session, actor, thread_id)
    refuse_if(problems + (["engagement.thread_closed"] if thread.status == "closed" else []))
    _post(session, load_cipher(session), thread, actor.user_id, body_text)
    thread.status = "open"  # waiting for the doctor again
    _audit(session, actor, "engagement.reply_consultation", thread)


@requires(Privilege.PORTAL_SELF)
def close_my_thread(*, session: Session, actor: Actor, thread_id: int) -> None:
    """I have my answer: close my thread."""
    thread = _my_thread(session, actor, thread_id)
    thread.status, thread.closed_at = "closed", utcnow()
    _audit(session, actor, "engagement.close_consultation", thread)


# ---- the clinician's side ---------------------------------------------------------------


@requires(Privilege.ANSWER_CONSULTATIONS)
def list_consultation_queue(
    *, session: Session, actor: Actor, include_closed: bool = False
) -> list[ThreadRow]:
    """Threads addressed to me, or to my departments with no doctor named, newest first."""
    departments = actor.department_ids or (-1,)
    where = [
        or_(
            ConsultationThread.doctor_id == actor.user_id,
            and_(
                ConsultationThread.doctor_id.is_(None),
                ConsultationThread.department_id.in_(departments),
            ),
        )
    ]
    if not include_closed:
        where.append(ConsultationThread.status != "closed")
    rows = _rows(session, actor, *where)
    audit.record(
        session,
        actor,
        "engagement.list_consultations",
        object_type="consultation",
        detail={"rows": len(rows)},
    )
    return rows


@requires(Privilege.ANSWER_CONSULTATIONS)
def read_thread(*, session: Session, actor: Actor, thread_id: int) -> ThreadView:
    """A thread for a patient in my care (or under break-glass); the patient's part marked read."""
    thread = _thread_in_care(session, actor, thread_id)
    view = _read(session, actor, thread)
    _audit(session, actor, "engagement.read_consultation", thread)
    return view


@requires(Privilege.ANSWER_CONSULTATIONS)
def reply_to_thread(*, session: Session, actor: Actor, thread_id: int, body: str) -> None:
    """Answer a patient; the first answer sets the thread's response time."""
    body_text, problems = _clean(
        body, MAX_BODY, "engagement.body_required", "engagement.body_too_long"
    )
    thread = _thread_in_care(session, actor, thread_id)
    refuse_if(problems + (["engagement.thread_closed"] if thread.status == "closed" else []))
    message = _post(session, load_cipher(session), thread, actor.user_id, body_text)
    thread.first_response_at = thread.first_response_at or message.sent_at
    thread.doctor_id = thread.doctor_id or actor.user_id
    thread.status = "answered"
    _audit(session, actor, "engagement.reply_consultation", thread)


@requires(Privilege.ANSWER_CONSULTATIONS)
def close_thread(*, session: Session, actor: Actor, thread_id: int) -> None:
    """Close a thread for a patient in my care."""
    thread = _thread_in_care(session, actor, thread_id)
    thread.status, thread.closed_at = "closed", utcnow()
    _audit(session, actor, "engagement.close_consultation", thread)


def _consultation_encounter(
    session: Session, actor: Actor, thread: ConsultationThread
) -> Encounter:
    """The patient's open encounter with me, or a new outpatient one for this consultation."""
    found = session.scalar(
        select(Encounter)
        .where(
            Encounter.patient_id == thread.patient_id,
            Encounter.attending_id == actor.user_id,
            Encounter.status == "open",
            Encounter.voided.is_(False),
        )
        .order_by(Encounter.started_at.desc())
        .limit(1)
    )
    if found is not None:
        return found
    department_id = thread.department_id or (actor.department_ids or (None,))[0]
    refuse_if([] if department_id is not None else ["engagement.no_department"])
    assert department_id is not None
    return create_encounter(
        session=session,
        actor=actor,
        patient_id=thread.patient_id,
        encounter_type="outpatient",
        department_id=department_id,
        chief_complaint=f"在线咨询 / Online consultation: {thread.subject}"[:500],
    )


@requires(Privilege.PRESCRIBE, Privilege.ANSWER_CONSULTATIONS)
def prescribe_online(
    *,
    session: Session,
    actor: Actor,
    thread_id: int,
    drug_code: str,
    drug_name: str,
    dose: Decimal | float | int | str,
    dose_unit: str,
    route: str,
    frequency: str,
    duration_days: int,
    quantity: Decimal | float | int | str,
    override_reason: str | None = None,
) -> Prescription:
    """An online prescription (在线处方) from a thread; it lands in the record like any other."""
    thread = _thread_in_care(session, actor, thread_id)
    refuse_if(["engagement.thread_closed"] if thread.status == "closed" else [])
    encounter = _consultation_encounter(session, actor, thread)
    prescription = prescribe(
        session=session,
        actor=actor,
        encounter_id=encounter.id,
        drug_code=drug_code,
        drug_name=drug_name,
        dose=dose,
        dose_unit=dose_unit,
        route=route,
        frequency=frequency,
        duration_days=duration_days,
        quantity=quantity,
        override_reason=override_reason,
    )
    prescription.online = True
    dose = f"{prescription.dose.normalize():f} {prescription.dose_unit}"
    note = f"处方 / Prescription: {prescription.drug_name} {dose}"
    _post(session, load_cipher(session), thread, actor.user_id, note)
    thread.first_response_at = thread.first_response_at or utcnow()
    thread.status = "answered"
    session.flush()
    _audit(session, actor, "engagement.online_prescription", thread)
    return prescription


@requires(Privilege.MANAGE_APPOINTMENTS, Privilege.ANSWER_CONSULTATIONS)
def book_follow_up_from_thread(
    *, session: Session, actor: Actor, thread_id: int, slot_id: int
) -> Appointment:
    """Book the patient of a thread into a slot (channel: consultation)."""
    thread = _thread_in_care(session, actor, thread_id)
    appointment = book_appointment(
        session=session,
        actor=actor,
        patient_id=thread.patient_id,
        slot_id=slot_id,
        channel="consultation",
        reason=thread.subject[:MAX_SUBJECT],
    )
    when = to_local(appointment.scheduled_at) or appointment.scheduled_at
    note = f"已预约复诊 / Follow-up booked: {when:%Y-%m-%d %H:%M}"
    _post(session, load_cipher(session), thread, actor.user_id, note)
    thread.first_response_at = thread.first_response_at or utcnow()
    thread.status = "answered"
    _audit(session, actor, "engagement.book_follow_up", thread)
    return appointment


# ---- managers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseTimes:
    """First-response figures for one department over a period."""

    department_id: int | None
    department_zh: str | None
    department_en: str | None
    threads: int
    answered: int
    median_minutes: float | None
    p90_minutes: float | None


@requires(Privilege.VIEW_ANALYTICS)
def response_times(
    *, session: Session, actor: Actor, start: dt.datetime, end: dt.datetime
) -> list[ResponseTimes]:
    """Median and 90th-percentile first-response time by department for threads opened."""
    minutes = (
        func.extract("epoch", ConsultationThread.first_response_at - ConsultationThread.opened_at)
        / 60.0
    )
    rows = session.execute(
        select(
            ConsultationThread.department_id,
            Department.name_zh,
            Department.name_en,
            func.count(),
            func.count(ConsultationThread.first_response_at),
            func.percentile_cont(0.5).within_group(minutes),
            func.percentile_cont(0.9).within_group(minutes),
        )
        .outerjoin(Department, Department.id == ConsultationThread.department_id)
        .where(ConsultationThread.opened_at >= start, ConsultationThread.opened_at < end)
        .group_by(ConsultationThread.department_id, Department.name_zh, Department.name_en)
        .order_by(Department.name_en)
    ).all()
    audit.record(
        session, actor, "engagement.view_response_times", detail={"departments": len(rows)}
    )
    return [
        ResponseTimes(
            department_id=dept,
            department_zh=zh,
            department_en=en,
            threads=int(total),
            answered=int(answered),
            median_minutes=None if median is None else round(float(median), 1),
            p90_minutes=None if p90 is None else round(float(p90), 1),
        )
        for dept, zh, en, total, answered, median, p90 in rows
    ]


# ---- files in a thread (a photo of a rash, a report from elsewhere) -----------------------


def _attach(
    session: Session,
    actor: Actor,
    thread: ConsultationThread,
    filename: str,
    content_type: str,
    data: bytes,
) -> ConsultationMessage:
    refuse_if(["engagement.thread_closed"] if thread.status == "closed" else [])
    stored = store_attachment(
        session,
        actor,
        patient_id=thread.patient_id,
        encounter_id=None,
        filename=filename,
        content_type=content_type,
        data=data,
    )
    message = _post(
        session,
        load_cipher(session),
        thread,
        actor.user_id,
        f"附件 / Attachment: {stored.filename}",
    )
    message.attachment_id = stored.id
    session.flush()
    _audit(session, actor, "engagement.attach", thread)
    return message


@requires(Privilege.PORTAL_SELF)
def attach_to_my_thread(
    *, session: Session, actor: Actor, thread_id: int, filename: str, content_type: str, data: bytes
) -> ConsultationMessage:
    """A patient adds a file (PDF, PNG, JPEG, text) to their own thread; stored encrypted."""
    return _attach(
        session, actor, _my_thread(session, actor, thread_id), filename, content_type, data
    )


@requires(Privilege.ANSWER_CONSULTATIONS)
def attach_to_thread(
    *, session: Session, actor: Actor, thread_id: int, filename: str, content_type: str, data: bytes
) -> ConsultationMessage:
    """A clinician in the patient's care adds a file to the thread."""
    thread = _thread_in_care(session, actor, thread_id)
    return _attach(session, actor, thread, filename, content_type, data)


def _thread_file(
    session: Session, thread: ConsultationThread, attachment_id: int
) -> AttachmentFile:
    """A file that was posted in this very thread (any other id is as absent as none)."""
    posted = session.scalar(
        select(ConsultationMessage.id).where(
            ConsultationMessage.thread_id == thread.id,
            ConsultationMessage.attachment_id == attachment_id,
        )
    )
    row = session.get(Attachment, attachment_id) if posted is not None else None
    if row is None or row.voided:
        raise LookupError(attachment_id)
    return read_attachment(session, row)


@requires(Privilege.PORTAL_SELF)
def download_my_thread_file(
    *, session: Session, actor: Actor, thread_id: int, attachment_id: int
) -> AttachmentFile:
    """A file from the patient's own thread."""
    thread = _my_thread(session, actor, thread_id)
    found = _thread_file(session, thread, attachment_id)
    _audit(session, actor, "engagement.download_attachment", thread)
    return found


@requires(Privilege.ANSWER_CONSULTATIONS)
def download_thread_file(
    *, session: Session, actor: Actor, thread_id: int, attachment_id: int
) -> AttachmentFile:
    """A file from a thread of a patient in the clinician's care."""
    thread = _thread_in_care(session, actor, thread_id)
    found = _thread_file(session, thread, attachment_id)
    _audit(session, actor, "engagement.download_attachment", thread)
    return found
