"""The RBAC matrix: every privileged service function, run as every role.

Every function decorated with ``@requires`` is discovered; each must have an entry here
(so a new service cannot slip past the matrix). Run as every role, exactly the roles whose
default grants hold the function's privileges succeed; every other role is refused, and
each success leaves exactly the expected audit rows (``AUDITED_AS``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import itertools
import pkgutil
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import cims
import factories
from cims.base import utcnow
from cims.clock import local_today
from cims.security.models import AccessReviewItem, AuditEvent, Permission, Role, RolePermission
from cims.security.rbac import ROLE_DEFAULTS, ROLES, AccessDenied, Actor, Privilege

TODAY = dt.date(2026, 11, 26)
Args = Callable[[Session, Actor], dict[str, Any]]


def _privileged_functions() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for info in pkgutil.walk_packages(cims.__path__, "cims."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            decorated = callable(value) and hasattr(value, "__cims_privileges__")
            if decorated and getattr(value, "__module__", "") == info.name:
                found[f"{info.name}.{name}"] = value
    return found


def _user_id(session: Session, _actor: Actor) -> dict[str, Any]:
    return {"user_id": factories.user(session, "nurse").id}


def _patient(session: Session, _actor: Actor) -> dict[str, Any]:
    return {"patient_id": factories.patient(session).id, "reason": "unconscious in the ED"}


def _grant(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.security.care import open_break_glass

    doctor = factories.actor(session, "doctor")
    patient = factories.patient(session)
    grant = open_break_glass(
        session=session, actor=doctor, patient_id=patient.id, reason="unconscious in the ED"
    )
    return {"grant_id": grant.id, "justified": True}


def _review_item(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.security.reviews import start_access_review

    review = start_access_review(session=session, actor=factories.actor(session, "admin"))
    item = session.scalars(
        select(AccessReviewItem).where(AccessReviewItem.review_id == review.id)
    ).first()
    assert item is not None
    return {"item_id": item.id, "certify": True}


def _lifted(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.security.incidents import start_lockdown

    start_lockdown(session=session, actor=factories.actor(session, "admin"), reason="drill")
    return {"note": "drill over"}


def _registration(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.patients.resident_id import check_digit
    from cims.patients.schemas import PatientInput

    first17 = "110101" + "19850312" + f"{next(_serial) % 1000:03d}"
    return {
        "data": PatientInput(
            family_name="王",
            given_name="小明",
            sex="M" if int(first17[-1]) % 2 else "F",
            birth_date=dt.date(1985, 3, 12),
            national_id=first17 + check_digit(first17),
            mobile="13912345678",
            insurance_type="self_pay",
        ),
        "confirm_not_duplicate": True,
        "today": TODAY,
    }


def _demographics(session: Session, actor: Actor) -> dict[str, Any]:
    patient = factories.patient(session)
    data = _registration(session, actor)["data"]
    return {"patient_id": patient.id, "data": data, "reason": "typo", "today": TODAY}


def _two_patients(session: Session, _actor: Actor) -> dict[str, Any]:
    return {
        "survivor_id": factories.patient(session).id,
        "merged_id": factories.patient(session).id,
        "reason": "same person",
    }


def _merge(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.patients.duplicates import merge_patients

    merge = merge_patients(
        session=session,
        actor=factories.actor(session, "registrar"),
        **_two_patients(session, _actor),
    )
    return {"merge_id": merge.id}


def _temporary(session: Session, _actor: Actor) -> dict[str, Any]:
    unknown = factories.patient(session, is_unidentified=True, temporary_label="无名氏-急诊-0001")
    return {"temporary_id": unknown.id, "patient_id": factories.patient(session).id}


def _in_care(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.records.models import Encounter

    department = factories.department(session, "ENDO")
    patient = factories.patient(session)
    session.add(
        Encounter(
            patient_id=patient.id,
            encounter_type="outpatient",
            department_id=department.id,
            attending_id=actor.user_id,
            started_at=utcnow(),
            status="open",
        )
    )
    session.flush()
    return {"patient_id": patient.id, "today": TODAY}


def _edit(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.patients.resident_id import check_digit

    first17 = "110101" + "19600501" + f"{next(_serial) % 1000:03d}"
    return {
        "patient_id": factories.patient(session).id,
        "changes": {"national_id": first17 + check_digit(first17), "blood_type": "B+"},
        "reason": "typo",
        "today": TODAY,
    }


def _slot(session: Session, _actor: Actor) -> dict[str, Any]:
    return {"slot_id": factories.future_slot(session).id}


def _booking(session: Session, _actor: Actor) -> dict[str, Any]:
    return {**_slot(session, _actor), "patient_id": factories.patient(session).id}


def _booked(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.appointments.booking import book_appointment

    appointment = book_appointment(
        session=session, actor=factories.actor(session, "registrar"), **_booking(session, _actor)
    )
    return {"appointment_id": appointment.id}


def _my_booking(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.appointments.booking import book_appointment

    patient_id = actor.patient_id or factories.patient(session).id
    appointment = book_appointment(
        session=session,
        actor=factories.actor(session, "registrar"),
        patient_id=patient_id,
        **_slot(session, actor),
    )
    return {"appointment_id": appointment.id, "reason": "feeling better"}


def _bed(session: Session) -> int:
    from cims.org.models import Bed, Ward

    department = factories.department(session, "ENDO")
    ward = Ward(
        code=f"RBAC-{next(_serial)}", name_zh="病区", name_en="Ward", department_id=department.id
    )
    session.add(ward)
    session.flush()
    bed = Bed(ward_id=ward.id, code="01")
    session.add(bed)
    session.flush()
    return bed.id


def _admit(session: Session, actor: Actor) -> dict[str, Any]:
    department = factories.department(session, "ENDO")
    return {
        "patient_id": _in_care(session, actor)["patient_id"],
        "department_id": department.id,
        "bed_id": _bed(session),
    }


def _ward_of(session: Session, bed_id: int) -> int:
    from cims.org.models import Bed

    bed = session.get(Bed, bed_id)
    assert bed is not None
    return bed.ward_id


def _admission(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.records.beds import admit_patient

    department = factories.department(session, "ENDO")
    nurse = factories.actor(session, "nurse", departments=(department.id,))
    encounter = admit_patient(
        session=session,
        actor=nurse,
        patient_id=factories.patient(session).id,
        department_id=department.id,
        bed_id=_bed(session),
        attending_id=actor.user_id,  # the actor's own patient
    )
    return {"encounter_id": encounter.id}


def _booked_today(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.appointments.models import Appointment
    from cims.clock import local_today, local_zone

    appointment = Appointment(
        patient_id=factories.patient(session).id,
        department_id=factories.department(session, "ENDO").id,
        booked_at=utcnow(),
        scheduled_at=dt.datetime.combine(local_today(), dt.time(10), tzinfo=local_zone()),
    )
    session.add(appointment)
    session.flush()
    return {"appointment_id": appointment.id}


def _cared_patient(session: Session, actor: Actor) -> dict[str, Any]:
    return {"patient_id": _in_care(session, actor)["patient_id"]}


def _own_note(session: Session, actor: Actor, status: str = "draft") -> dict[str, Any]:
    """A SOAP note written by ``actor`` for a patient in their care (rows, not services)."""
    from cims.records.models import ClinicalNote
    from cims.security.crypto import load_cipher

    patient_id = _in_care(session, actor)["patient_id"]
    note = ClinicalNote(
        patient_id=patient_id,
        author_id=actor.user_id,
        title="门诊病历",
        body_enc=b"-",
        is_soap=True,
        written_at=utcnow(),
        status=status,
        signed_at=utcnow() if status == "signed" else None,
    )
    session.add(note)
    session.flush()
    note.body_enc = load_cipher(session).encrypt(
        '{"assessment": "2型糖尿病"}', table="clinical_notes", column="body", row_id=note.id
    )
    session.flush()
    return {"note_id": note.id}


def _attachment(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.records.models import Attachment
    from cims.security.crypto import load_cipher

    patient_id = _in_care(session, actor)["patient_id"]
    data = b"%PDF-1.7 report"
    row = Attachment(
        patient_id=patient_id,
        filename="report.pdf",
        content_type="application/pdf",
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_enc=b"-",
    )
    session.add(row)
    session.flush()
    row.content_enc = load_cipher(session).encrypt(
        data, table="attachments", column="content", row_id=row.id
    )
    session.flush()
    return {"attachment_id": row.id}


def _cared_visit(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.records.models import Encounter

    patient_id = _in_care(session, actor)["patient_id"]
    visit = session.scalars(select(Encounter).where(Encounter.patient_id == patient_id)).one()
    return {"encounter_id": visit.id, "language": "zh"}


def _charting(session: Session, actor: Actor) -> Any:
    """An open encounter attended by ``actor`` (so the care check passes)."""
    from cims.records.models import Encounter

    encounter = Encounter(
        patient_id=factories.patient(session).id,
        encounter_type="outpatient",
        department_id=factories.department(session, "ENDO").id,
        attending_id=actor.user_id,
        started_at=utcnow(),
        chief_complaint="headache",
        status="open",
    )
    session.add(encounter)
    session.flush()
    return encounter


def _test_code(session: Session) -> str:
    from sqlalchemy.dialects.postgresql import insert

    from cims.records.models import ClinicalCode

    row = {"code_system": "ICD-10", "code": "U99.9", "title_en": "Test", "search_text": "u99.9"}
    session.execute(insert(ClinicalCode).values(**row, source="test").on_conflict_do_nothing())
    return "U99.9"


def _charted(kind: str) -> Args:
    """Build one charted row of ``kind`` on an encounter in the actor's care."""

    def build(session: Session, actor: Actor) -> dict[str, Any]:
        from cims.records import models as m

        enc = _charting(session, actor)
        now, ids = utcnow(), {"patient_id": enc.patient_id, "encounter_id": enc.id}
        rows: dict[str, Any] = {
            "diagnosis": m.Diagnosis(**ids, code="I10", description="x", diagnosed_at=now),
            "allergy": m.Allergy(patient_id=enc.patient_id, substance="花生", noted_at=now),
            "problem": m.Problem(patient_id=enc.patient_id, code="I10", description="x"),
            "prescription": m.Prescription(
                **ids, drug_code="METF", drug_name="Metformin", dose=500, dose_unit="mg",
                route="oral", frequency="bid", duration_days=30, quantity=60, prescribed_at=now,
            ),
            "order": m.Order(**ids, order_type="lab", code="LAB-GLU", description="x",
                             ordered_at=now),
        }  # fmt: skip
        row = rows[kind]
        session.add(row)
        session.flush()
        if kind == "problem":
            return {"problem_id": row.id}
        return {f"{kind}_id": row.id, "reason": "entered in error"}

    return build


def _new_visit(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.appointments.models import Appointment

    department, patient = factories.department(session, "ENDO"), factories.patient(session)
    booking = Appointment(
        patient_id=patient.id, department_id=department.id, doctor_id=actor.user_id,
        booked_at=utcnow(), scheduled_at=utcnow(),
    )  # fmt: skip
    session.add(booking)
    session.flush()
    return {
        "patient_id": patient.id, "encounter_type": "outpatient",
        "department_id": department.id, "chief_complaint": "headache",
        "appointment_id": booking.id,
    }  # fmt: skip


def _closable(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.records.models import Diagnosis

    enc = _charting(session, actor)
    session.add(
        Diagnosis(
            patient_id=enc.patient_id, encounter_id=enc.id, code="I10", description="x",
            diagnosed_at=utcnow(),
        )
    )  # fmt: skip
    session.flush()
    return {"encounter_id": enc.id, "disposition": "home"}


_PRESCRIPTION = {
    "drug_code": "METF", "drug_name": "二甲双胍片 / Metformin", "dose": "500", "dose_unit": "mg",
    "route": "oral", "frequency": "bid", "duration_days": 30, "quantity": "60",
}  # fmt: skip


def _online_invoice(session: Session, actor: Actor) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    from cims.billing.models import Invoice
    from cims.billing.sandbox import SandboxProvider

    invoice = Invoice(
        invoice_no=f"M{next(_serial)}",
        patient_id=actor.patient_id or factories.patient(session).id,
        status="issued",
        total_amount=factories.money("50.00"),
        insurance_amount=factories.money("0"),
        patient_amount=factories.money("50.00"),
        paid_amount=factories.money("0"),
    )
    session.add(invoice)
    session.flush()
    ledger = Path(tempfile.mkdtemp()) / "ledger.sqlite3"
    return {"invoice_id": invoice.id, "provider": SandboxProvider(ledger, lambda b, s: None)}


def _online_payment(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.billing.online import start_online_payment

    if actor.patient_id is None:
        return {"payment_id": 0}
    checkout = start_online_payment(
        session=session, actor=actor, method="wechat", **_online_invoice(session, actor)
    )
    return {"payment_id": checkout.payment_id}


def _invoice(session: Session, actor: Actor) -> dict[str, Any]:
    return {"invoice_id": factories.issued_invoice(session, patient_id=actor.patient_id)}


def _charged(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.billing.charges import post_charge

    patient = factories.patient(session, insurance_type="self_pay")
    factories.price_item(session, "RBAC-ITEM", unit_price="12.00")
    charge = post_charge(
        session=session,
        actor=factories.actor(session, "finance"),
        patient_id=patient.id,
        encounter_id=None,
        price_code="RBAC-ITEM",
        quantity=Decimal("1"),
        source_type="manual",
        source_id=None,
        service_date=TODAY,
    )
    return {"patient_id": patient.id, "charge_id": charge.id}


def _draft(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.billing.invoices import create_invoice

    patient_id = _charged(session, actor)["patient_id"]
    draft = create_invoice(
        session=session, actor=factories.actor(session, "finance"), patient_id=patient_id
    )
    return {"invoice_id": draft.invoice_id}


def _paid(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.billing.payments import take_payment

    invoice_id = _invoice(session, actor)["invoice_id"]
    payment = take_payment(
        session=session,
        actor=factories.actor(session, "finance"),
        invoice_id=invoice_id,
        amount=Decimal("100.00"),
        method="cash",
        idempotency_key=f"rbac-pay-{next(_serial)}",
    )
    return {"payment_id": payment.id}


def _refund_asked(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.billing.refunds import request_refund

    refund = request_refund(
        session=session,
        actor=factories.actor(session, "finance"),  # someone else asked
        payment_id=_paid(session, actor)["payment_id"],
        amount=Decimal("10.00"),
        reason="charged twice",
        idempotency_key=f"rbac-refund-{next(_serial)}",
    )
    return {"refund_id": refund.id}


def _encounter(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.records.models import Encounter

    encounter = Encounter(
        patient_id=factories.patient(session).id,
        encounter_type="emergency",
        department_id=factories.department(session, "ENDO").id,
        started_at=utcnow(),
    )
    session.add(encounter)
    session.flush()
    return {"encounter_id": encounter.id}


def _payment_request(session: Session, actor: Actor) -> dict[str, Any]:
    return {
        **_invoice(session, actor),
        "amount": Decimal("20.00"),
        "method": "wechat",
        "idempotency_key": f"rbac-online-{next(_serial)}",
        "provider": "sandbox",
    }


def _printable_bill(session: Session, actor: Actor) -> dict[str, Any]:
    from test_billing_printables import _paid_bill

    invoice, payment = _paid_bill(session)
    if actor.patient_id is not None:  # a portal patient prints their own
        invoice.patient_id = payment.patient_id = actor.patient_id
        session.flush()
    return {"invoice_id": invoice.id, "payment_id": payment.id, "language": "zh"}


def _printable_invoice(session: Session, actor: Actor) -> dict[str, Any]:
    args = _printable_bill(session, actor)
    return {"invoice_id": args["invoice_id"], "language": "zh"}


def _printable_receipt(session: Session, actor: Actor) -> dict[str, Any]:
    args = _printable_bill(session, actor)
    return {"payment_id": args["payment_id"], "language": "zh"}


def _thread_for(session: Session, patient_id: int) -> dict[str, Any]:
    """A consultation thread (rows, not services) with the patient's first message."""
    from cims.engagement.models import ConsultationMessage, ConsultationThread
    from cims.security.crypto import load_cipher

    thread = ConsultationThread(
        patient_id=patient_id,
        department_id=factories.department(session, "ENDO").id,
        subject="血糖",
        status="open",
        opened_at=utcnow(),
    )
    session.add(thread)
    session.flush()
    from cims.security.models import User

    sender = session.scalar(select(User.id).where(User.patient_id == patient_id))
    sender = sender or factories.user(session, "patient", patient_id=patient_id).id
    message = ConsultationMessage(thread_id=thread.id, sender_user_id=sender, body_enc=b"-")
    session.add(message)
    session.flush()
    message.body_enc = load_cipher(session).encrypt(
        "空腹血糖 8.0", table="consultation_messages", column="body", row_id=message.id
    )
    session.flush()
    return {"thread_id": thread.id}


def _my_thread(session: Session, actor: Actor) -> dict[str, Any]:
    return _thread_for(session, actor.patient_id or factories.patient(session).id)


def _cared_thread(session: Session, actor: Actor) -> dict[str, Any]:
    return _thread_for(session, _in_care(session, actor)["patient_id"])


_PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))


def _with_file(session: Session, actor: Actor, args: dict[str, Any]) -> dict[str, Any]:
    """A file posted in the thread (rows written directly, whoever the role is)."""
    from cims.engagement.models import ConsultationMessage, ConsultationThread
    from cims.records.attachments import store_attachment

    thread = session.get(ConsultationThread, args["thread_id"])
    assert thread is not None
    stored = store_attachment(
        session, actor, patient_id=thread.patient_id, encounter_id=None,
        filename="rash.png", content_type="image/png", data=_PNG,
    )  # fmt: skip
    first = session.scalar(
        select(ConsultationMessage).where(ConsultationMessage.thread_id == thread.id)
    )
    assert first is not None
    first.attachment_id = stored.id
    session.flush()
    return {**args, "attachment_id": stored.id}


def _my_reminder(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.engagement.models import Reminder

    reminder = Reminder(
        rule_code="refill_due",
        event_key=f"rbac:{next(_serial)}",
        recipient_user_id=actor.user_id,
        message_key="reminder.refill_due",
        params={"drug": "Metformin", "date": "2026-12-01"},
    )
    session.add(reminder)
    session.flush()
    return {"reminder_id": reminder.id}


def _visit_to_rate(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.records.models import Encounter

    visit = Encounter(
        patient_id=actor.patient_id or factories.patient(session).id,
        encounter_type="outpatient",
        department_id=factories.department(session, "ENDO").id,
        started_at=utcnow() - dt.timedelta(hours=2),
        ended_at=utcnow() - dt.timedelta(hours=1),
        status="closed",
    )
    session.add(visit)
    session.flush()
    return {
        "encounter_id": visit.id,
        "waiting": 4,
        "doctor": 5,
        "environment": 4,
        "billing": 4,
        "recommend": 9,
    }


_serial = itertools.count(101, 2)


def _backup_folder(_session: Session, _actor: Actor) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    return {"target_dir": Path(tempfile.mkdtemp(prefix="cims-rbac-backup-"))}


def _synthea_folder(_session: Session, _actor: Actor) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="cims-rbac-synthea-"))
    (folder / "patients.csv").write_text(
        "Id,BIRTHDATE,FIRST,LAST,GENDER\nrbac-1,1970-01-01,Ann,Lee,F\n", encoding="utf-8"
    )
    return {"folder": folder}


_FHIR_BUNDLE = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [{"resource": {"resourceType": "Patient", "id": "rbac-1", "gender": "female"}}],
}


def _hl7_message(session: Session, _actor: Actor) -> dict[str, Any]:
    mrn = factories.patient(session).mrn
    return {
        "data": "MSH|^~\\&|LIS|LAB|CIMS|HOSP|20261120091500||ORU^R01|RBAC-1|P|2.5.1\r"
        f"PID|1||{mrn}^^^HOSP^MR\rOBR|1||F-1|2345-7^Glucose^LN\r"
        "OBX|1|NM|2345-7^Glucose^LN||5.2|mmol/L|3.9-6.1|N|||F\r"
    }


def _hl7_run(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.governance.models import ImportRun

    run = ImportRun(source_system="hl7", source_label="lab.hl7", rejected={"rows": {}})
    session.add(run)
    session.flush()
    return {"run_id": run.id}


ARGS: dict[str, Args] = {
    "cims.billing.charges.post_pending_charges": lambda s, a: {
        "patient_id": factories.patient(s).id
    },
    "cims.records.summary.my_summary": lambda s, a: {"today": TODAY},
    "cims.interop.synthea.import_synthea": _synthea_folder,
    "cims.interop.synthea.list_import_runs": lambda s, a: {},
    "cims.interop.fhir_import.import_fhir_bundle": lambda s, a: {"bundle": _FHIR_BUNDLE},
    "cims.interop.hl7_oru.import_hl7": _hl7_message,
    "cims.interop.hl7_runs.list_hl7_runs": lambda s, a: {},
    "cims.interop.hl7_runs.export_hl7_unmatched": _hl7_run,
    "cims.interop.fhir_export.export_patient_fhir": lambda s, a: {
        "patient_id": factories.patient(s).id
    },
    "cims.interop.fhir_export.export_all_fhir": lambda s, a: {},
    "cims.interop.spreadsheets.export_patient_list": lambda s, a: {"fmt": "csv"},
    "cims.interop.spreadsheets.export_visit_list": lambda s, a: {"fmt": "csv"},
    "cims.patients.review.mark_not_duplicate": lambda s, a: {
        "first_id": factories.patient(s).id,
        "second_id": factories.patient(s).id,
        "reason": "twins",
    },
    "cims.ops.backup_service.backup_overview": _backup_folder,
    "cims.ops.backup_service.back_up_now": _backup_folder,
    "cims.ops.backup_service.verify_backup_file": lambda s, a: {
        **_backup_folder(s, a),
        "name": "missing.cimsbak",
    },
    "cims.billing.printing.print_invoice": _printable_invoice,
    "cims.billing.printing.print_receipt": _printable_receipt,
    "cims.billing.printing.print_my_invoice": _printable_invoice,
    "cims.billing.printing.print_my_receipt": _printable_receipt,
    "cims.billing.online.start_online_payment": lambda s, a: {
        **_online_invoice(s, a),
        "method": "wechat",
    },
    "cims.billing.online.online_payment_status": _online_payment,
    "cims.appointments.booking.list_open_slots": lambda s, a: {
        "department_id": factories.department(s).id,
        "day": TODAY,
    },
    "cims.appointments.booking.list_open_slots_for_me": lambda s, a: {
        "department_id": factories.department(s).id,
        "day": TODAY,
    },
    "cims.appointments.booking.book_appointment": _booking,
    "cims.appointments.booking.list_patient_appointments": lambda s, a: {
        "patient_id": factories.patient(s).id
    },
    "cims.appointments.booking.list_my_appointments": lambda s, a: {},
    "cims.appointments.booking.list_bookable_departments": lambda s, a: {},
    "cims.appointments.booking.book_my_appointment": _slot,
    "cims.appointments.booking.cancel_appointment": lambda s, a: {
        **_booked(s, a),
        "reason": "feeling better",
    },
    "cims.appointments.booking.cancel_my_appointment": _my_booking,
    "cims.appointments.booking.reschedule_appointment": lambda s, a: {
        **_booked(s, a),
        **_slot(s, a),
    },
    "cims.patients.duplicates.find_duplicates": lambda s, a: {
        "patient_id": factories.patient(s).id
    },
    "cims.patients.duplicates.identify_unidentified": _temporary,
    "cims.patients.duplicates.merge_patients": _two_patients,
    "cims.patients.duplicates.undo_merge": _merge,
    "cims.patients.editing.get_edit_form": lambda s, a: {"patient_id": factories.patient(s).id},
    "cims.patients.editing.save_changes": _edit,
    "cims.patients.history.list_patient_changes": lambda s, a: {
        "patient_id": factories.patient(s).id
    },
    "cims.patients.review.list_duplicate_pairs": lambda s, a: {},
    "cims.patients.review.list_recent_merges": lambda s, a: {},
    "cims.patients.review.list_unidentified": lambda s, a: {},
    "cims.patients.search.search_patients": lambda s, a: {"query": "张三"},
    "cims.patients.service.get_patient": lambda s, a: {"patient_id": factories.patient(s).id},
    "cims.patients.service.register_patient": _registration,
    "cims.patients.service.update_demographics": _demographics,
    "cims.patients.service.void_patient": lambda s, a: {
        "patient_id": factories.patient(s).id,
        "reason": "registered in error",
    },
    "cims.records.summary.build_summary": _in_care,
    "cims.records.codes.search_codes": lambda s, a: {"query": "I10"},
    "cims.records.encounters.create_encounter": _new_visit,
    "cims.records.encounters.close_encounter": _closable,
    "cims.records.encounters.add_diagnosis": lambda s, a: {
        "encounter_id": _charting(s, a).id,
        "code": _test_code(s),
    },
    "cims.records.encounters.void_diagnosis": _charted("diagnosis"),
    "cims.records.encounters.add_allergy": lambda s, a: {
        "patient_id": _charting(s, a).patient_id,
        "substance": "花生 / Peanut",
    },
    "cims.records.encounters.void_allergy": _charted("allergy"),
    "cims.records.encounters.add_problem": lambda s, a: {
        "patient_id": _charting(s, a).patient_id,
        "code": _test_code(s),
    },
    "cims.records.encounters.resolve_problem": _charted("problem"),
    "cims.records.encounters.list_encounter": lambda s, a: {"encounter_id": _charting(s, a).id},
    "cims.records.encounters.list_open_encounters": lambda s, a: {
        "patient_id": _charting(s, a).patient_id
    },
    "cims.records.encounters.list_clinical_departments": lambda s, a: {},
    "cims.records.orders.prescribe": lambda s, a: {
        "encounter_id": _charting(s, a).id,
        **_PRESCRIPTION,
    },
    "cims.records.orders.stop_prescription": _charted("prescription"),
    "cims.records.orders.place_order": lambda s, a: {
        "encounter_id": _charting(s, a).id,
        "order_type": "lab",
        "code": "LAB-GLU",
        "description": "空腹血糖 / Fasting glucose",
    },
    "cims.records.orders.cancel_order": _charted("order"),
    "cims.records.orders.record_result": lambda s, a: {
        "encounter_id": _charting(s, a).id,
        "code": "2823-3",
        "name": "血钾 / Potassium",
        "value": "4.1",
        "unit": "mmol/L",
        "ref_low": "3.5",
        "ref_high": "5.3",
    },
    "cims.records.orders.create_treatment_plan": lambda s, a: {
        "encounter_id": _charting(s, a).id,
        "title": "糖尿病管理",
        "goals": "HbA1c < 7%",
        "follow_ups": [(dt.date.today() + dt.timedelta(days=30), "复查")],
    },
    "cims.records.notes.write_note": lambda s, a: {
        **_cared_patient(s, a),
        "title": "门诊病历",
        "assessment": "2型糖尿病",
    },
    "cims.records.notes.update_draft": lambda s, a: {
        **_own_note(s, a),
        "title": "门诊病历",
        "plan": "复诊",
    },
    "cims.records.notes.sign_note": _own_note,
    "cims.records.notes.void_draft": lambda s, a: {**_own_note(s, a), "reason": "wrong patient"},
    "cims.records.notes.add_addendum": lambda s, a: {
        **_own_note(s, a, "signed"),
        "text": "补充",
    },
    "cims.records.notes.list_notes": _cared_patient,
    "cims.records.attachments.upload_attachment": lambda s, a: {
        **_cared_patient(s, a),
        "filename": "scan.png",
        "content_type": "image/png",
        "data": b"\x89PNG\r\n\x1a\nscan",
    },
    "cims.records.attachments.download_attachment": _attachment,
    "cims.records.attachments.list_attachments": _cared_patient,
    "cims.records.attachments.void_attachment": lambda s, a: {
        **_attachment(s, a),
        "reason": "wrong patient",
    },
    "cims.printables.service.list_visits": _cared_patient,
    "cims.printables.service.print_prescription": _cared_visit,
    "cims.printables.service.print_visit_summary": _cared_visit,
    "cims.printables.service.print_wristband": lambda s, a: {
        **_cared_patient(s, a),
        "language": "en",
    },
    "cims.appointments.service.list_my_clinic": lambda s, a: {"day": TODAY},
    "cims.appointments.service.list_front_desk_day": lambda s, a: {"day": TODAY},
    "cims.appointments.service.list_departments": lambda s, a: {},
    "cims.records.service.list_my_inpatients": lambda s, a: {"today": TODAY},
    "cims.records.beds.admit_patient": _admit,
    "cims.records.beds.transfer_bed": lambda s, a: {**_admission(s, a), "bed_id": _bed(s)},
    "cims.records.beds.discharge_patient": lambda s, a: {**_admission(s, a), "disposition": "home"},
    "cims.records.beds.list_wards": lambda s, a: {},
    "cims.records.beds.bed_board": lambda s, a: {"ward_id": _ward_of(s, _bed(s))},
    "cims.records.vitals.record_vitals": lambda s, a: {
        "patient_id": _in_care(s, a)["patient_id"],
        "pulse_bpm": 72,
    },
    "cims.records.worklist.nurse_worklist": lambda s, a: {"day": TODAY},
    "cims.appointments.service.check_in_appointment": _booked_today,
    "cims.billing.service.takings_for_day": lambda s, a: {"day": TODAY},
    "cims.billing.catalogue.list_prices": lambda s, a: {"day": TODAY},
    "cims.billing.catalogue.change_price": lambda s, a: {
        "code": factories.price_item(s, f"RBAC-P{next(_serial)}").code,
        "new_price": Decimal("60.00"),
        "effective_from": local_today() + dt.timedelta(days=1),
    },
    "cims.billing.charges.post_charge": lambda s, a: {
        "patient_id": factories.patient(s).id,
        "encounter_id": None,
        "price_code": factories.price_item(s, "RBAC-ITEM").code,
        "quantity": Decimal("2"),
        "source_type": "order",
        "source_id": next(_serial),
        "service_date": TODAY,
    },
    "cims.billing.charges.post_charges_for_encounter": _encounter,
    "cims.billing.charges.void_charge": lambda s, a: {
        "charge_id": _charged(s, a)["charge_id"],
        "reason": "posted in error",
    },
    "cims.billing.invoices.create_invoice": lambda s, a: {
        "patient_id": _charged(s, a)["patient_id"]
    },
    "cims.billing.invoices.issue_invoice": _draft,
    "cims.billing.invoices.void_invoice": lambda s, a: {**_draft(s, a), "reason": "wrong bill"},
    "cims.billing.invoices.get_invoice": _invoice,
    "cims.billing.invoices.list_open_invoices": lambda s, a: {},
    "cims.billing.invoices.list_invoices": lambda s, a: {"patient_id": factories.patient(s).id},
    "cims.billing.invoices.list_uninvoiced_charges": lambda s, a: {
        "patient_id": _charged(s, a)["patient_id"]
    },
    "cims.billing.invoices.ar_aging": lambda s, a: {"today": TODAY},
    "cims.billing.payments.take_payment": lambda s, a: {
        **_invoice(s, a),
        "amount": Decimal("40.00"),
        "method": "cash",
        "idempotency_key": f"rbac-cash-{next(_serial)}",
    },
    "cims.billing.payments.start_provider_payment": _payment_request,
    "cims.billing.payments.start_my_provider_payment": _payment_request,
    "cims.billing.refunds.request_refund": lambda s, a: {
        **_paid(s, a),
        "amount": Decimal("5.00"),
        "reason": "charged twice",
        "idempotency_key": f"rbac-ask-{next(_serial)}",
    },
    "cims.billing.refunds.approve_refund": _refund_asked,
    "cims.billing.refunds.reject_refund": _refund_asked,
    "cims.billing.refunds.list_waiting_refunds": lambda s, a: {},
    "cims.billing.settlement.settlement_preview": lambda s, a: {"day": local_today()},
    "cims.billing.settlement.close_day": lambda s, a: {
        "day": local_today(),
        "counted": {"cash": Decimal("0.00")},
    },
    "cims.reporting.service.headline": lambda s, a: {"today": TODAY},
    "cims.portal.service.portal_overview": lambda s, a: {"now": utcnow()},
    "cims.security.admin.list_accounts": lambda s, a: {"now": utcnow()},
    "cims.security.admin.unlock_account": _user_id,
    "cims.security.admin.reset_mfa": _user_id,
    "cims.security.admin.sign_out_everywhere": _user_id,
    "cims.security.admin.set_account_active": lambda s, a: {
        **_user_id(s, a),
        "active": False,
        "reason": "left the hospital",
    },
    "cims.security.care.open_break_glass": _patient,
    "cims.security.care.list_break_glass_for_review": lambda s, a: {},
    "cims.security.care.review_break_glass": _grant,
    "cims.security.incidents.start_lockdown": lambda s, a: {"reason": "drill"},
    "cims.security.incidents.lift_lockdown": _lifted,
    "cims.security.incidents.list_incidents": lambda s, a: {},
    "cims.security.reviews.start_access_review": lambda s, a: {},
    "cims.security.reviews.decide": _review_item,
    "cims.security.reviews.open_review": lambda s, a: {},
    "cims.security.reviews.security_report": lambda s, a: {
        "start": utcnow() - dt.timedelta(days=1),
        "end": utcnow(),
    },
    "cims.security.roles.privilege_matrix": lambda s, a: {},
    "cims.security.audit_views.search_audit": lambda s, a: {
        "start": utcnow() - dt.timedelta(days=1),
        "end": utcnow(),
        "mrn": "0000000018",
    },
    "cims.security.audit_views.verify_audit_chain": lambda s, a: {},
    "cims.engagement.reminders.list_my_reminders": lambda s, a: {},
    "cims.engagement.reminders.count_unread_reminders": lambda s, a: {},
    "cims.engagement.reminders.acknowledge_reminder": _my_reminder,
    "cims.engagement.reminders.snooze_reminder": _my_reminder,
    "cims.engagement.consultation.attach_to_my_thread": lambda s, a: {
        **_my_thread(s, a),
        "filename": "rash.png",
        "content_type": "image/png",
        "data": _PNG,
    },
    "cims.engagement.consultation.attach_to_thread": lambda s, a: {
        **_cared_thread(s, a),
        "filename": "advice.png",
        "content_type": "image/png",
        "data": _PNG,
    },
    "cims.engagement.consultation.download_my_thread_file": lambda s, a: _with_file(
        s, a, _my_thread(s, a)
    ),
    "cims.engagement.consultation.download_thread_file": lambda s, a: _with_file(
        s, a, _cared_thread(s, a)
    ),
    "cims.engagement.consultation.open_my_thread": lambda s, a: {
        "department_id": factories.department(s, "ENDO").id,
        "subject": "血糖",
        "body": "空腹血糖 8.0",
    },
    "cims.engagement.consultation.list_my_threads": lambda s, a: {},
    "cims.engagement.consultation.count_my_unread_replies": lambda s, a: {},
    "cims.engagement.consultation.read_my_thread": _my_thread,
    "cims.engagement.consultation.reply_to_my_thread": lambda s, a: {
        **_my_thread(s, a),
        "body": "谢谢",
    },
    "cims.engagement.consultation.close_my_thread": _my_thread,
    "cims.engagement.consultation.list_consultation_queue": lambda s, a: {},
    "cims.engagement.consultation.read_thread": _cared_thread,
    "cims.engagement.consultation.reply_to_thread": lambda s, a: {
        **_cared_thread(s, a),
        "body": "请复诊",
    },
    "cims.engagement.consultation.close_thread": _cared_thread,
    "cims.engagement.consultation.prescribe_online": lambda s, a: {
        **_cared_thread(s, a),
        **_PRESCRIPTION,
    },
    "cims.engagement.consultation.book_follow_up_from_thread": lambda s, a: {
        **_cared_thread(s, a),
        **_slot(s, a),
    },
    "cims.engagement.consultation.response_times": lambda s, a: {
        "start": utcnow() - dt.timedelta(days=30),
        "end": utcnow(),
    },
    "cims.engagement.surveys.list_visits_to_rate": lambda s, a: {},
    "cims.engagement.surveys.submit_survey": _visit_to_rate,
    "cims.engagement.surveys.survey_results": lambda s, a: {
        "start": TODAY - dt.timedelta(days=60),
        "end": TODAY,
    },
    "cims.engagement.assistant.ask_assistant": lambda s, a: {"question": "门诊几点开门？"},
    "cims.security.roles.set_grant": lambda s, a: {
        "role": "manager",
        "privilege": Privilege.EXPORT_DATA,
        "granted": True,
    },
}
# Exactly the audit rows one successful call leaves, in order (one per patient touched).
# Reference data without patient or financial content is privileged but not audited: ().
AUDITED_AS: dict[str, tuple[str, ...]] = {
    "cims.billing.charges.post_pending_charges": ("billing.post_pending_charges",),
    "cims.records.summary.my_summary": ("portal.view_record",),
    "cims.interop.synthea.import_synthea": ("interop.import_synthea",),
    "cims.interop.synthea.list_import_runs": (),
    "cims.interop.fhir_import.import_fhir_bundle": ("interop.import_fhir",),
    "cims.interop.hl7_oru.import_hl7": ("interop.import_hl7_result", "interop.import_hl7"),
    "cims.interop.hl7_runs.list_hl7_runs": (),
    "cims.interop.hl7_runs.export_hl7_unmatched": ("interop.export_hl7_unmatched",),
    "cims.interop.fhir_export.export_patient_fhir": ("interop.export_fhir",),
    "cims.interop.fhir_export.export_all_fhir": ("interop.export_fhir_all",),
    "cims.interop.spreadsheets.export_patient_list": ("interop.export_spreadsheet",),
    "cims.interop.spreadsheets.export_visit_list": ("interop.export_spreadsheet",),
    "cims.patients.review.mark_not_duplicate": ("patients.mark_not_duplicate",) * 2,
    "cims.ops.backup_service.backup_overview": ("backup.view",),
    "cims.ops.backup_service.back_up_now": ("backup.create",),
    "cims.ops.backup_service.verify_backup_file": ("backup.verify",),
    "cims.billing.printing.print_invoice": ("billing.print_invoice",),
    "cims.billing.printing.print_receipt": ("billing.print_receipt",),
    "cims.billing.printing.print_my_invoice": ("billing.print_invoice",),
    "cims.billing.printing.print_my_receipt": ("billing.print_receipt",),
    "cims.billing.online.start_online_payment": ("billing.start_provider_payment",),
    "cims.billing.online.online_payment_status": ("billing.view_payment",),
    "cims.appointments.booking.list_open_slots": (),
    "cims.appointments.booking.list_open_slots_for_me": (),
    "cims.appointments.booking.book_appointment": ("appointments.book",),
    "cims.appointments.booking.list_patient_appointments": ("appointments.list_patient",),
    "cims.appointments.booking.list_my_appointments": ("appointments.list_patient",),
    "cims.appointments.booking.list_bookable_departments": (),
    "cims.appointments.booking.book_my_appointment": ("appointments.book",),
    "cims.appointments.booking.cancel_appointment": ("appointments.cancel",),
    "cims.appointments.booking.cancel_my_appointment": ("appointments.cancel",),
    "cims.appointments.booking.reschedule_appointment": ("appointments.reschedule",),
    "cims.appointments.service.list_departments": (),
    "cims.appointments.service.list_front_desk_day": ("appointments.list_day",),
    "cims.appointments.service.list_my_clinic": ("appointments.list_clinic",),
    "cims.billing.service.takings_for_day": ("billing.view_takings",),
    "cims.billing.catalogue.list_prices": (),
    "cims.billing.catalogue.change_price": ("billing.change_price",),
    "cims.billing.charges.post_charge": ("billing.post_charge",),
    "cims.billing.charges.post_charges_for_encounter": ("billing.post_encounter_charges",),
    "cims.billing.charges.void_charge": ("billing.void_charge",),
    "cims.billing.invoices.create_invoice": ("billing.create_invoice",),
    "cims.billing.invoices.issue_invoice": ("billing.issue_invoice",),
    "cims.billing.invoices.void_invoice": ("billing.void_invoice",),
    "cims.billing.invoices.get_invoice": ("billing.view_invoice",),
    "cims.billing.invoices.list_open_invoices": ("billing.list_open_invoices",),
    "cims.billing.invoices.list_invoices": ("billing.list_invoices",),
    "cims.billing.invoices.list_uninvoiced_charges": ("billing.list_charges",),
    "cims.billing.invoices.ar_aging": ("billing.ar_aging",),
    "cims.billing.payments.take_payment": ("billing.take_payment",),
    "cims.billing.payments.start_provider_payment": ("billing.start_provider_payment",),
    "cims.billing.payments.start_my_provider_payment": ("billing.start_provider_payment",),
    "cims.billing.refunds.request_refund": ("billing.request_refund",),
    "cims.billing.refunds.approve_refund": ("billing.approve_refund",),
    "cims.billing.refunds.reject_refund": ("billing.reject_refund",),
    "cims.billing.refunds.list_waiting_refunds": ("billing.list_refunds",),
    "cims.billing.settlement.settlement_preview": ("billing.settlement_preview",),
    "cims.billing.settlement.close_day": ("billing.close_day",),
    "cims.patients.duplicates.find_duplicates": ("patients.find_duplicates",),
    "cims.patients.duplicates.identify_unidentified": ("patients.identify_unidentified",) * 2,
    "cims.patients.duplicates.merge_patients": ("patients.merge",) * 2,
    "cims.patients.duplicates.undo_merge": ("patients.undo_merge",) * 2,
    "cims.patients.editing.get_edit_form": ("patients.view",),
    "cims.patients.editing.save_changes": ("patients.update_demographics",),
    "cims.patients.history.list_patient_changes": ("patients.view_history",),
    "cims.patients.review.list_duplicate_pairs": ("patients.review_duplicates",),
    "cims.patients.review.list_recent_merges": ("patients.list_merges",),
    "cims.patients.review.list_unidentified": ("patients.list_unidentified",),
    "cims.patients.search.search_patients": ("patients.search",),
    "cims.patients.service.get_patient": ("patients.view",),
    "cims.patients.service.register_patient": ("patients.register",),
    "cims.patients.service.update_demographics": ("patients.update_demographics",),
    "cims.patients.service.void_patient": ("patients.void",),
    "cims.portal.service.portal_overview": ("portal.view_overview",),
    "cims.records.service.list_my_inpatients": ("records.list_inpatients",),
    "cims.records.beds.admit_patient": ("records.admit",),
    "cims.records.beds.transfer_bed": ("records.transfer_bed",),
    "cims.records.beds.discharge_patient": ("records.discharge",),
    "cims.records.beds.list_wards": (),
    "cims.records.beds.bed_board": ("records.view_bed_board",),
    "cims.records.vitals.record_vitals": ("records.record_vitals",),
    "cims.records.worklist.nurse_worklist": ("records.view_worklist",),
    "cims.appointments.service.check_in_appointment": ("appointments.check_in",),
    "cims.records.summary.build_summary": ("records.view_summary",),
    "cims.records.codes.search_codes": (),
    "cims.records.encounters.create_encounter": ("records.create_encounter",),
    "cims.records.encounters.close_encounter": ("records.close_encounter",),
    "cims.records.encounters.add_diagnosis": ("records.add_diagnosis",),
    "cims.records.encounters.void_diagnosis": ("records.void_diagnosis",),
    "cims.records.encounters.add_allergy": ("records.add_allergy",),
    "cims.records.encounters.void_allergy": ("records.void_allergy",),
    "cims.records.encounters.add_problem": ("records.add_problem",),
    "cims.records.encounters.resolve_problem": ("records.resolve_problem",),
    "cims.records.encounters.list_encounter": ("records.view_encounter",),
    "cims.records.encounters.list_open_encounters": ("records.list_encounters",),
    "cims.records.encounters.list_clinical_departments": (),
    "cims.records.orders.prescribe": ("records.prescribe",),
    "cims.records.orders.stop_prescription": ("records.stop_prescription",),
    "cims.records.orders.place_order": ("records.place_order",),
    "cims.records.orders.cancel_order": ("records.cancel_order",),
    "cims.records.orders.record_result": ("records.record_result",),
    "cims.records.orders.create_treatment_plan": ("records.create_plan",),
    "cims.records.notes.write_note": ("records.write_note",),
    "cims.records.notes.update_draft": ("records.update_note",),
    "cims.records.notes.sign_note": ("records.sign_note",),
    "cims.records.notes.void_draft": ("records.void_note",),
    "cims.records.notes.add_addendum": ("records.add_addendum",),
    "cims.records.notes.list_notes": ("records.view_notes",),
    "cims.records.attachments.upload_attachment": ("records.upload_attachment",),
    "cims.records.attachments.download_attachment": ("records.download_attachment",),
    "cims.records.attachments.list_attachments": ("records.list_attachments",),
    "cims.records.attachments.void_attachment": ("records.void_attachment",),
    "cims.printables.service.list_visits": ("records.list_encounters",),
    "cims.printables.service.print_prescription": ("records.print_prescription",),
    "cims.printables.service.print_visit_summary": ("records.print_visit_summary",),
    "cims.printables.service.print_wristband": ("records.print_wristband",),
    "cims.reporting.service.headline": ("reporting.view_headline",),
    "cims.security.admin.list_accounts": ("admin.list_accounts",),
    "cims.security.admin.reset_mfa": ("admin.mfa_reset",),
    "cims.security.admin.set_account_active": ("admin.disable",),
    "cims.security.admin.sign_out_everywhere": ("admin.sign_out_everywhere",),
    "cims.security.admin.unlock_account": ("admin.unlock",),
    "cims.security.audit_views.search_audit": ("audit.search",),
    "cims.security.audit_views.verify_audit_chain": ("audit.verify",),
    "cims.security.care.list_break_glass_for_review": ("audit.list_break_glass",),
    "cims.security.care.open_break_glass": ("clinical.break_glass",),
    "cims.security.care.review_break_glass": ("audit.review_break_glass",),
    "cims.security.incidents.lift_lockdown": ("incident.lockdown_lifted",),
    "cims.security.incidents.list_incidents": ("incident.list",),
    "cims.security.incidents.start_lockdown": ("incident.lockdown_started",),
    "cims.security.reviews.decide": ("access_review.certify",),
    "cims.security.reviews.open_review": ("access_review.view",),
    "cims.security.reviews.security_report": ("audit.security_report",),
    "cims.security.reviews.start_access_review": ("access_review.start",),
    "cims.security.roles.privilege_matrix": ("roles.view_matrix",),
    "cims.engagement.reminders.list_my_reminders": ("engagement.list_reminders",),
    "cims.engagement.reminders.count_unread_reminders": (),
    "cims.engagement.reminders.acknowledge_reminder": ("engagement.acknowledge_reminder",),
    "cims.engagement.reminders.snooze_reminder": ("engagement.snooze_reminder",),
    "cims.engagement.consultation.attach_to_my_thread": ("engagement.attach",),
    "cims.engagement.consultation.attach_to_thread": ("engagement.attach",),
    "cims.engagement.consultation.download_my_thread_file": ("engagement.download_attachment",),
    "cims.engagement.consultation.download_thread_file": ("engagement.download_attachment",),
    "cims.engagement.consultation.open_my_thread": ("engagement.open_consultation",),
    "cims.engagement.consultation.list_my_threads": ("engagement.list_consultations",),
    "cims.engagement.consultation.count_my_unread_replies": (),
    "cims.engagement.consultation.read_my_thread": ("engagement.read_consultation",),
    "cims.engagement.consultation.reply_to_my_thread": ("engagement.reply_consultation",),
    "cims.engagement.consultation.close_my_thread": ("engagement.close_consultation",),
    "cims.engagement.consultation.list_consultation_queue": ("engagement.list_consultations",),
    "cims.engagement.consultation.read_thread": ("engagement.read_consultation",),
    "cims.engagement.consultation.reply_to_thread": ("engagement.reply_consultation",),
    "cims.engagement.consultation.close_thread": ("engagement.close_consultation",),
    "cims.engagement.consultation.prescribe_online": (
        "records.prescribe",
        "engagement.online_prescription",
    ),
    "cims.engagement.consultation.book_follow_up_from_thread": (
        "appointments.book",
        "engagement.book_follow_up",
    ),
    "cims.engagement.consultation.response_times": ("engagement.view_response_times",),
    "cims.engagement.surveys.list_visits_to_rate": ("engagement.list_surveys",),
    "cims.engagement.surveys.submit_survey": ("engagement.submit_survey",),
    "cims.engagement.surveys.survey_results": ("engagement.view_survey_results",),
    "cims.engagement.assistant.ask_assistant": ("engagement.ask_assistant",),
    "cims.security.roles.set_grant": ("roles.grant",),
}
FUNCTIONS = _privileged_functions()


def test_every_privileged_function_is_in_the_matrix() -> None:
    assert sorted(set(FUNCTIONS) - set(ARGS)) == []
    assert sorted(set(ARGS) - set(FUNCTIONS)) == []
    assert sorted(set(ARGS) ^ set(AUDITED_AS)) == []


def test_database_grants_match_the_defaults(session: Session) -> None:
    rows = session.execute(
        select(Role.code, Permission.code)
        .join(RolePermission, RolePermission.role_id == Role.id)
        .join(Permission, Permission.id == RolePermission.permission_id)
    ).all()
    stored: dict[str, set[str]] = {role: set() for role in ROLES}
    for role, privilege in rows:
        stored[role].add(privilege)
    assert stored == {role: {p.value for p in grants} for role, grants in ROLE_DEFAULTS.items()}


def _actor_for(session: Session, role: str) -> Actor:
    if role == "patient":
        return factories.actor(session, role, patient_id=factories.patient(session).id)
    return factories.actor(session, role)


@pytest.mark.parametrize("name", sorted(ARGS))
def test_exactly_the_privileged_roles_succeed(session: Session, name: str) -> None:
    function = FUNCTIONS[name]
    needed = set(function.__cims_privileges__)
    succeeded = set()
    for role in ROLES:
        savepoint = session.begin_nested()
        actor = _actor_for(session, role)
        kwargs = ARGS[name](session, actor)
        before = session.scalar(select(func.max(AuditEvent.id))) or 0
        try:
            function(session=session, actor=actor, **kwargs)
        except AccessDenied:
            savepoint.rollback()
            continue
        succeeded.add(role)
        session.flush()
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.id > before).order_by(AuditEvent.id)
        ).all()
        assert tuple(actions) == AUDITED_AS[name], (name, role, actions)
        savepoint.rollback()
    expected = {role for role, grants in ROLE_DEFAULTS.items() if needed <= grants}
    assert succeeded == expected
