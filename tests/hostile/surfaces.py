"""Every service that accepts user text, as a surface a hostile value can be pushed through.

A surface takes the session, the world and one value and returns the call to make plus a
check of what was stored (None when the call stores nothing to read back).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics import console
from analytics.service import save_query
from cims.appointments.booking import book_appointment, cancel_appointment
from cims.appointments.models import Appointment
from cims.billing.catalogue import change_price
from cims.billing.charges import void_charge
from cims.billing.invoices import void_invoice
from cims.billing.models import Charge
from cims.billing.refunds import request_refund
from cims.engagement.assistant import ask_assistant
from cims.engagement.consultation import (
    open_my_thread,
    read_my_thread,
    read_thread,
    reply_to_thread,
)
from cims.engagement.surveys import submit_survey
from cims.interop.fhir_import import import_fhir_bundle
from cims.interop.synthea import import_synthea
from cims.patients.duplicates import merge_patients
from cims.patients.editing import save_changes
from cims.patients.review import mark_not_duplicate
from cims.patients.schemas import PatientInput
from cims.patients.search import search_patients
from cims.patients.service import get_patient, register_patient, void_patient
from cims.records.attachments import store_attachment
from cims.records.codes import search_codes
from cims.records.encounters import add_allergy, create_encounter
from cims.records.notes import add_addendum, void_draft, write_note
from cims.records.orders import create_treatment_plan, place_order, prescribe, record_result
from cims.security.audit_views import search_audit
from cims.security.care import open_break_glass
from cims.security.incidents import start_lockdown
from cims.security.reviews import start_access_review
from hostile.harness import checkpoint, reads_back
from hostile.world import World

Call = Callable[[], Any]
Check = Callable[[Any], str | None] | None
Surface = Callable[[Session, World, str], tuple[Call, Check]]
TODAY = dt.date(2026, 11, 26)


def _stored(expected: str, *, collapse: bool = False) -> Callable[[Any], str | None]:
    return lambda actual: reads_back(expected, actual, collapse=collapse)


def note_title(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return write_note(
            session=s, actor=w.doctor, patient_id=w.patient_id, title=v, assessment="ok"
        )

    return call, lambda note: reads_back(v, note.title)


def note_section(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return write_note(
            session=s, actor=w.doctor, patient_id=w.patient_id, title="病程记录", subjective=v
        )

    return call, lambda note: reads_back(v, note.soap.subjective)


def note_addendum(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return add_addendum(session=s, actor=w.doctor, note_id=w.signed_note_id, text=v)

    return call, lambda note: reads_back(v, note.text)


def note_void_reason(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        draft = write_note(
            session=s, actor=w.doctor, patient_id=w.patient_id, title="草稿", plan="x"
        )
        checkpoint(s)
        return void_draft(session=s, actor=w.doctor, note_id=draft.id, reason=v)

    return call, None


def thread_subject(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return open_my_thread(
            session=s, actor=w.portal, department_id=w.department_id, subject=v, body="血糖偏高"
        )

    return call, lambda thread: reads_back(v, thread.subject)


def thread_body(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        thread = open_my_thread(
            session=s, actor=w.portal, department_id=w.department_id, subject="问题", body=v
        )
        return read_my_thread(session=s, actor=w.portal, thread_id=thread.id).messages[0].body

    return call, _stored(v)


def thread_reply(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        thread = open_my_thread(
            session=s, actor=w.portal, department_id=w.department_id, subject="问题", body="x"
        )
        checkpoint(s)
        reply_to_thread(session=s, actor=w.doctor, thread_id=thread.id, body=v)
        return read_thread(session=s, actor=w.doctor, thread_id=thread.id).messages[-1].body

    return call, _stored(v)


def booking_reason(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return book_appointment(
            session=s, actor=w.registrar, patient_id=w.patient_id, slot_id=w.slot_id, reason=v
        )

    return call, lambda row: None if not v.strip() else reads_back(v, row.reason)


def cancel_reason(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        row = book_appointment(
            session=s, actor=w.registrar, patient_id=w.patient_id, slot_id=w.slot_id
        )
        checkpoint(s)
        cancel_appointment(session=s, actor=w.registrar, appointment_id=row.id, reason=v)
        return s.get(Appointment, row.id)

    return call, lambda row: reads_back(v, row.cancel_reason)


def survey_comment(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return submit_survey(
            session=s, actor=w.portal, encounter_id=w.closed_encounter_id, waiting=4, doctor=5,
            environment=4, billing=3, recommend=9, comment=v,
        )  # fmt: skip

    return call, lambda row: None if not v.split() else reads_back(v, row.comment, collapse=True)


def assistant_question(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return ask_assistant(session=s, actor=w.portal, question=v, language="en")

    return call, None


def refund_reason(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return request_refund(
            session=s, actor=w.finance, payment_id=w.payment_id, amount=Decimal("5.00"),
            reason=v, idempotency_key=f"hostile-{hash(v)}",
        )  # fmt: skip

    return call, lambda row: reads_back(v, row.reason)


def refund_amount(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return request_refund(
            session=s, actor=w.finance, payment_id=w.payment_id, amount=v,  # type: ignore[arg-type]
            reason="charged twice", idempotency_key="hostile-refund-amount",
        )  # fmt: skip

    return call, lambda row: None if Decimal("0") < row.amount <= 100 else f"amount {row.amount}"


def refund_key(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return request_refund(
            session=s, actor=w.finance, payment_id=w.payment_id, amount=Decimal("1.00"),
            reason="charged twice", idempotency_key=v,
        )  # fmt: skip

    return call, None


def charge_void_reason(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        void_charge(session=s, actor=w.finance, charge_id=w.charge_id, reason=v)
        return s.get(Charge, w.charge_id)

    return call, lambda row: reads_back(v, row.void_reason)


def invoice_void_reason(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        invoice_id = _unpaid_invoice(s)
        checkpoint(s)
        return void_invoice(session=s, actor=w.finance, invoice_id=invoice_id, reason=v)

    return call, None


def _unpaid_invoice(s: Session) -> int:
    import factories

    return factories.issued_invoice(s, amount="30.00")


def price_code(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return change_price(
            session=s, actor=w.finance if _can_price(w.finance) else w.admin, code=v,
            new_price=Decimal("10.00"), effective_from=dt.date.today() + dt.timedelta(days=1),
        )  # fmt: skip

    return call, None


def price_amount(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return change_price(
            session=s, actor=w.finance if _can_price(w.finance) else w.admin,
            code="HOSTILE-ITEM", new_price=v,  # type: ignore[arg-type]
            effective_from=dt.date.today() + dt.timedelta(days=1),
        )  # fmt: skip

    return call, lambda row: None if row.unit_price >= 0 else f"negative price {row.unit_price}"


def _can_price(actor: Any) -> bool:
    from cims.security.rbac import Privilege

    return bool(actor.can(Privilege.MANAGE_PRICES))


def saved_query_name(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return save_query(session=s, actor=w.analyst, name=v, sql="SELECT 1")

    return call, lambda row: reads_back(v, row.name)


def saved_query_twice(s: Session, w: World, v: str) -> tuple[Call, Check]:
    """The same name saved twice (once padded) is one query, not two or an error."""

    def call() -> Any:
        save_query(session=s, actor=w.analyst, name=v, sql="SELECT 1")
        return save_query(session=s, actor=w.analyst, name=f" {v} ", sql="SELECT 2")

    return call, lambda row: reads_back(v, row.name)


def saved_query_sql(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return save_query(session=s, actor=w.analyst, name="hostile", sql=v)

    return call, lambda row: None if row.sql == v else "sql changed"


def console_check(s: Session, w: World, v: str) -> tuple[Call, Check]:
    return (lambda: console.check_select(v)), None


def patient_search(s: Session, w: World, v: str) -> tuple[Call, Check]:
    return (lambda: search_patients(session=s, actor=w.registrar, query=v)), None


def code_search(s: Session, w: World, v: str) -> tuple[Call, Check]:
    return (lambda: search_codes(session=s, actor=w.doctor, query=v)), None


def audit_search(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        end = dt.datetime.now(dt.UTC)
        return search_audit(
            session=s, actor=w.admin, start=end - dt.timedelta(days=1), end=end,
            mrn=v, username=v, action_prefix=v,
        )  # fmt: skip

    return call, None


def _registration(**fields: Any) -> PatientInput:
    base: dict[str, Any] = {
        "family_name": "王",
        "given_name": "小明",
        "sex": "M",
        "birth_date": dt.date(1985, 3, 12),
        "id_type": "passport",
        "national_id": "E12345678",
        "nationality": "US",
        "insurance_type": "self_pay",
    }
    return PatientInput(**{**base, **fields})


def _register_field(field: str) -> Surface:
    def surface(s: Session, w: World, v: str) -> tuple[Call, Check]:
        def call() -> Any:
            view = register_patient(
                session=s, actor=w.registrar, data=_registration(**{field: v}),
                confirm_not_duplicate=True, today=TODAY,
            )  # fmt: skip
            return get_patient(session=s, actor=w.registrar, patient_id=view.id)

        def check(view: Any) -> str | None:
            if field in ("family_name", "given_name"):
                return None if v.strip() in view.full_name else f"name {view.full_name!r}"
            shown = getattr(view, {"mobile": "phone"}.get(field, field), None)
            return None if shown is None else reads_back(v, shown)

        return call, check

    surface.__name__ = f"register_{field}"
    return surface


def edit_field(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return save_changes(
            session=s, actor=w.registrar, patient_id=w.patient_id,
            changes={"address": v, "given_name": v}, reason=v, today=TODAY,
        )  # fmt: skip

    return call, None


def patient_void_reason(s: Session, w: World, v: str) -> tuple[Call, Check]:
    import factories

    def call() -> Any:
        patient_id = factories.patient(s).id
        checkpoint(s)
        return void_patient(session=s, actor=w.registrar, patient_id=patient_id, reason=v)

    return call, None


def merge_reason(s: Session, w: World, v: str) -> tuple[Call, Check]:
    import factories

    def call() -> Any:
        first, second = factories.patient(s).id, factories.patient(s).id
        checkpoint(s)
        return merge_patients(
            session=s, actor=w.registrar, survivor_id=first, merged_id=second, reason=v
        )

    return call, None


def not_duplicate_reason(s: Session, w: World, v: str) -> tuple[Call, Check]:
    import factories

    def call() -> Any:
        first, second = factories.patient(s).id, factories.patient(s).id
        checkpoint(s)
        return mark_not_duplicate(
            session=s, actor=w.registrar, first_id=first, second_id=second, reason=v
        )

    return call, None


def encounter_complaint(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return create_encounter(
            session=s, actor=w.doctor, patient_id=w.patient_id, encounter_type="outpatient",
            department_id=w.department_id, chief_complaint=v,
        )  # fmt: skip

    return call, None


def allergy_text(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return add_allergy(
            session=s, actor=w.doctor, patient_id=w.patient_id, substance=v, reaction=v
        )

    return call, None


def order_description(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return place_order(
            session=s, actor=w.doctor, encounter_id=w.encounter_id, order_type="lab",
            code="LAB-GLU", description=v,
        )  # fmt: skip

    return call, None


def prescription_text(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return prescribe(
            session=s, actor=w.doctor, encounter_id=w.encounter_id, drug_code="METF",
            drug_name=v, dose="500", dose_unit="mg", route="oral", frequency="bid",
            duration_days=30, quantity="60", override_reason=v,
        )  # fmt: skip

    return call, None


def prescription_dose(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return prescribe(
            session=s, actor=w.doctor, encounter_id=w.encounter_id, drug_code="METF",
            drug_name="Metformin", dose=v, dose_unit="mg", route="oral", frequency="bid",
            duration_days=30, quantity=v,
        )  # fmt: skip

    return call, None


def lab_result(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return record_result(
            session=s, actor=w.doctor, encounter_id=w.encounter_id, code="GLU",
            name="Glucose", value=v, unit="mmol/L", ref_low="3.9", ref_high="6.1",
        )  # fmt: skip

    return call, None


def lab_text(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return record_result(
            session=s, actor=w.doctor, encounter_id=w.encounter_id, code=v,
            name=v, value="5.5", unit=v,
        )  # fmt: skip

    return call, None


def treatment_plan(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return create_treatment_plan(
            session=s, actor=w.doctor, encounter_id=w.encounter_id, title=v, goals=v,
            follow_ups=[(TODAY + dt.timedelta(days=7), v)], today=TODAY,
        )  # fmt: skip

    return call, None


def break_glass_reason(s: Session, w: World, v: str) -> tuple[Call, Check]:
    import factories

    def call() -> Any:
        patient_id = factories.patient(s).id
        checkpoint(s)
        return open_break_glass(session=s, actor=w.doctor, patient_id=patient_id, reason=v)

    return call, lambda grant: reads_back(v, grant.reason)


def lockdown_reason(s: Session, w: World, v: str) -> tuple[Call, Check]:
    return (lambda: start_lockdown(session=s, actor=w.admin, reason=v)), None


def access_review_note(s: Session, w: World, v: str) -> tuple[Call, Check]:
    return (lambda: start_access_review(session=s, actor=w.admin, note=v)), None


def attachment_name(s: Session, w: World, v: str) -> tuple[Call, Check]:
    def call() -> Any:
        return store_attachment(
            s, w.nurse, patient_id=w.patient_id, encounter_id=None, filename=v,
            content_type="application/pdf", data=b"%PDF-1.7 scan",
        )  # fmt: skip

    def check(row: Any) -> str | None:
        name = row.filename
        unsafe = any(c in name for c in "/\\\x00<>") or name.startswith(".") or len(name) > 120
        return f"unsafe stored file name {name!r}" if unsafe else None

    return call, check


_BUNDLE = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [{"resource": {"resourceType": "Patient", "id": "hostile-1", "gender": "female"}}],
}


def fhir_file_name(s: Session, w: World, v: str) -> tuple[Call, Check]:
    """An uploaded bundle's file name becomes the import run's label."""

    def call() -> Any:
        return import_fhir_bundle(session=s, actor=w.admin, bundle=dict(_BUNDLE), label=v)

    return call, None


def fhir_bundle_text(s: Session, w: World, v: str) -> tuple[Call, Check]:
    """An uploaded file's content that is not a bundle at all."""
    return (lambda: import_fhir_bundle(session=s, actor=w.admin, bundle=v, label="x.json")), None


def fhir_nested_json(s: Session, w: World, v: str) -> tuple[Call, Check]:
    """Deeply nested JSON (a parser bomb) wrapped around the hostile value."""
    bomb = "[" * 100_000 + json.dumps(v) + "]" * 100_000
    return (lambda: import_fhir_bundle(session=s, actor=w.admin, bundle=bomb, label="x")), None


def synthea_folder(s: Session, w: World, v: str) -> tuple[Call, Check]:
    """The import page's folder box: traversal and nonsense must be refused, not crash."""
    return (lambda: import_synthea(session=s, actor=w.admin, folder=Path(v.strip()))), None


def backup_file_name(s: Session, w: World, v: str) -> tuple[Call, Check]:
    """The backups page verifies a file by name: traversal must stay inside the folder."""
    import tempfile

    from cims.ops.backup_service import verify_backup_file

    folder = Path(tempfile.mkdtemp(prefix="cims-hostile-backup-"))
    return (lambda: verify_backup_file(session=s, actor=w.admin, name=v, target_dir=folder)), None


def sign_in(s: Session, w: World, v: str) -> tuple[Call, Check]:
    """The sign-in form: any username/password pair is just a wrong one."""
    from cims.security.signin import check_password

    def check(result: Any) -> str | None:
        return None if result.error == "signin.invalid" else f"error {result.error}"

    return (lambda: check_password(session=s, username=v, password=v)), check


def sign_in_code(s: Session, w: World, v: str) -> tuple[Call, Check]:
    from cims.security.signin import check_totp

    def call() -> Any:
        return check_totp(session=s, user_id=w.doctor.user_id, code=v)

    return call, lambda ok: "hostile code accepted" if ok else None


def portal_signup(s: Session, w: World, v: str) -> tuple[Call, Check]:
    from cims.security.portal_accounts import start_signup

    return (lambda: start_signup(session=s, mrn=v, id_or_phone=v)), None


def password_reset(s: Session, w: World, v: str) -> tuple[Call, Check]:
    from cims.security.portal_accounts import start_password_reset

    return (lambda: start_password_reset(session=s, username=v, mrn=v)), None


def new_password(s: Session, w: World, v: str) -> tuple[Call, Check]:
    import factories
    from cims.security.signin import change_password

    def call() -> Any:
        return change_password(
            session=s, user_id=w.nurse.user_id, current=factories.PASSWORD, new=v
        )

    def check(problems: list[str]) -> str | None:
        from hostile.harness import missing_translations

        missing = missing_translations(problems)
        return f"untranslated {missing}" if missing else None

    return call, check


def account_names(s: Session, w: World, v: str) -> tuple[Call, Check]:
    from cims.security.accounts import create_account

    def call() -> Any:
        return create_account(
            session=s, username=v, display_name=v, password="Correct-Horse-42x", roles=["nurse"]
        )

    return call, None


def portal_booking_reason(s: Session, w: World, v: str) -> tuple[Call, Check]:
    from cims.appointments.booking import book_my_appointment, cancel_my_appointment

    def call() -> Any:
        row = book_my_appointment(session=s, actor=w.portal, slot_id=w.slot_id, reason=v)
        return cancel_my_appointment(session=s, actor=w.portal, appointment_id=row.id, reason=v)

    return call, None


def draft_update(s: Session, w: World, v: str) -> tuple[Call, Check]:
    from cims.records.notes import update_draft

    def call() -> Any:
        draft = write_note(
            session=s, actor=w.doctor, patient_id=w.patient_id, title="草稿", plan="x"
        )
        checkpoint(s)
        return update_draft(
            session=s, actor=w.doctor, note_id=draft.id, title=v, subjective=v, objective=v,
            assessment=v, plan=v,
        )  # fmt: skip

    return call, lambda note: reads_back(v, note.title)


def clinical_reasons(s: Session, w: World, v: str) -> tuple[Call, Check]:
    """Stop a prescription and cancel an order, both with the hostile reason."""
    from cims.records.orders import cancel_order, stop_prescription

    def call() -> Any:
        order = place_order(
            session=s, actor=w.doctor, encounter_id=w.encounter_id, order_type="lab",
            code="LAB-GLU", description="glucose",
        )  # fmt: skip
        drug = prescribe(
            session=s, actor=w.doctor, encounter_id=w.encounter_id, drug_code="METF",
            drug_name="Metformin", dose="500", dose_unit="mg", route="oral", frequency="bid",
            duration_days=30, quantity="60",
        )  # fmt: skip
        checkpoint(s)
        cancel_order(session=s, actor=w.doctor, order_id=order.id, reason=v)
        return stop_prescription(session=s, actor=w.doctor, prescription_id=drug.id, reason=v)

    return call, None


def diagnosis_code(s: Session, w: World, v: str) -> tuple[Call, Check]:
    from cims.records.encounters import add_diagnosis

    def call() -> Any:
        return add_diagnosis(
            session=s, actor=w.doctor, encounter_id=w.encounter_id, code=v, rank="primary"
        )

    return call, None


def disposition(s: Session, w: World, v: str) -> tuple[Call, Check]:
    from cims.records.encounters import close_encounter

    def call() -> Any:
        return close_encounter(
            session=s, actor=w.doctor, encounter_id=w.encounter_id, disposition=v
        )

    return call, None


def portal_reply(s: Session, w: World, v: str) -> tuple[Call, Check]:
    from cims.engagement.consultation import reply_to_my_thread

    def call() -> Any:
        thread = open_my_thread(
            session=s, actor=w.portal, department_id=w.department_id, subject="问题", body="x"
        )
        checkpoint(s)
        reply_to_my_thread(session=s, actor=w.portal, thread_id=thread.id, body=v)
        return read_my_thread(session=s, actor=w.portal, thread_id=thread.id).messages[-1].body

    return call, _stored(v)


def account_disable_reason(s: Session, w: World, v: str) -> tuple[Call, Check]:
    from cims.security.admin import set_account_active

    def call() -> Any:
        return set_account_active(
            session=s, actor=w.admin, user_id=w.approver.user_id, active=False, reason=v
        )

    return call, None


def print_language(s: Session, w: World, v: str) -> tuple[Call, Check]:
    """A language that is not zh/en prints in the default language, never fails."""
    from cims.printables.service import print_wristband

    def call() -> Any:
        return print_wristband(session=s, actor=w.doctor, patient_id=w.patient_id, language=v)

    return call, lambda pdf: None if pdf[:5] == b"%PDF-" else "not a PDF"


def export_format(s: Session, w: World, v: str) -> tuple[Call, Check]:
    from cims.interop.spreadsheets import export_patient_list

    return (lambda: export_patient_list(session=s, actor=w.analyst, fmt=v, language=v)), None


def risk_cohort(s: Session, w: World, v: str) -> tuple[Call, Check]:
    from models.predict import risk_report

    return (lambda: risk_report(session=s, actor=w.analyst, cohort=v)), None


TEXT_SURFACES: dict[str, Surface] = {
    f.__name__: f
    for f in (
        note_title,
        note_section,
        note_addendum,
        note_void_reason,
        thread_subject,
        thread_body,
        thread_reply,
        booking_reason,
        cancel_reason,
        survey_comment,
        assistant_question,
        refund_reason,
        refund_key,
        charge_void_reason,
        invoice_void_reason,
        price_code,
        saved_query_name,
        saved_query_twice,
        saved_query_sql,
        console_check,
        patient_search,
        code_search,
        audit_search,
        _register_field("family_name"),
        _register_field("given_name"),
        _register_field("address"),
        _register_field("national_id"),
        _register_field("mobile"),
        _register_field("emergency_contact_name"),
        _register_field("insurance_number"),
        _register_field("mother_mrn"),
        edit_field,
        patient_void_reason,
        merge_reason,
        not_duplicate_reason,
        encounter_complaint,
        allergy_text,
        order_description,
        prescription_text,
        lab_text,
        treatment_plan,
        break_glass_reason,
        lockdown_reason,
        access_review_note,
        attachment_name,
        fhir_file_name,
        fhir_bundle_text,
        fhir_nested_json,
        synthea_folder,
        backup_file_name,
        sign_in,
        sign_in_code,
        portal_signup,
        password_reset,
        new_password,
        account_names,
        portal_booking_reason,
        draft_update,
        clinical_reasons,
        diagnosis_code,
        disposition,
        portal_reply,
        account_disable_reason,
        print_language,
        export_format,
        risk_cohort,
    )
}
AMOUNT_SURFACES: dict[str, Surface] = {
    f.__name__: f for f in (refund_amount, price_amount, prescription_dose, lab_result)
}
__all__ = ["AMOUNT_SURFACES", "TEXT_SURFACES", "select"]
