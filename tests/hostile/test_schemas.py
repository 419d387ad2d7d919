"""The whole fixed corpus through every pure validator (fast), and uploads through storage.

The pydantic patient form, the console's SELECT check, the file-name sanitiser and the
money parser see every hostile value; each must accept it or name translated problems.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError
from sqlalchemy.orm import Session

from analytics import console
from cims.billing.catalogue import to_money
from cims.engagement.consultation import attach_to_my_thread, open_my_thread, read_my_thread
from cims.patients.schemas import PatientInput
from cims.records.attachments import download_attachment, sanitise_filename, upload_attachment
from hostile.corpus import (
    AMOUNTS,
    DATE_VALUES,
    DATES,
    FILENAMES,
    MOBILES,
    MRNS,
    NATIONAL_IDS,
    TEXTS,
    UPLOADS,
    Upload,
    corpus_size,
    hostile_text,
)
from hostile.harness import LEDGER, assert_clean, attempt, checkpoint, missing_translations
from hostile.world import World

TODAY = dt.date(2026, 11, 26)
TEXT_FIELDS = (
    "family_name",
    "given_name",
    "national_id",
    "nationality",
    "mobile",
    "address",
    "emergency_contact_name",
    "emergency_contact_relation",
    "emergency_contact_phone",
    "insurance_number",
    "mother_mrn",
    "sex",
    "id_type",
    "insurance_type",
    "blood_type",
)
BASE: dict[str, Any] = {
    "family_name": "王",
    "given_name": "小明",
    "sex": "M",
    "birth_date": dt.date(1985, 3, 12),
    "id_type": "passport",
    "national_id": "E12345678",
    "nationality": "US",
}


def _judge_form(surface: str, value: object, **fields: Any) -> None:
    """A form either validates clean or lists translated problems; never raises."""
    try:
        problems = PatientInput(**{**BASE, **fields}).problems(TODAY)
        _ = PatientInput(**{**BASE, **fields}).full_name
    except Exception as error:
        LEDGER.failures.append(f"{surface}: {value!r:.80} -> {type(error).__name__}: {error}")
        LEDGER.note(surface, "failed")
        return
    missing = missing_translations(problems)
    if missing:
        LEDGER.failures.append(f"{surface}: {value!r:.80} -> untranslated {missing}")
    LEDGER.note(surface, "refused:" + problems[0] if problems else "stored")


def test_the_corpus_holds_at_least_500_hostile_values() -> None:
    assert corpus_size() >= 500, corpus_size()
    categories = {item.category for item in TEXTS}
    assert categories >= {"sql", "html", "markdown", "control", "bidi", "unicode", "overlong"}
    assert any("𠮷" in item.value for item in TEXTS)
    assert any("\x00" in item.value for item in TEXTS)
    assert any("\u202e" in item.value for item in TEXTS)


def test_every_text_through_every_patient_form_field() -> None:
    for field in TEXT_FIELDS:
        for item in TEXTS:
            _judge_form(f"form.patient.{field}", item.value, **{field: item.value})
    for value in NATIONAL_IDS:
        _judge_form("form.patient.resident_id", value, id_type="resident_id", national_id=value)
    for value in MOBILES:
        _judge_form(
            "form.patient.mobile_format", value, mobile=value, emergency_contact_phone=value
        )
    for value in MRNS:
        _judge_form("form.patient.mother_mrn_format", value, is_newborn=True, mother_mrn=value)
    for day in DATE_VALUES:
        _judge_form("form.patient.birth_date", day, birth_date=day)
    assert_clean("form.")


@pytest.mark.parametrize("value", DATES)
def test_malformed_date_text_never_reaches_the_form(value: str) -> None:
    """Pages hand the form date objects (st.date_input); a string that is not a real date
    is rejected by pydantic before any rule runs, and a real one is then judged as usual."""
    try:
        form = PatientInput(**{**BASE, "birth_date": value})
    except ValidationError:
        LEDGER.note("form.patient.birth_date_text", "refused:pydantic.date")
        return
    assert form.birth_date is not None
    _judge_form("form.patient.birth_date_text", value, birth_date=value)
    assert_clean("form.")


def test_every_text_through_the_console_check() -> None:
    for item in TEXTS:
        try:
            console.check_select(item.value)
        except console.QueryRefused as refusal:
            assert not missing_translations([refusal.reason]), refusal.reason
            LEDGER.note("console.check_select", "refused:" + refusal.reason)
        else:
            LEDGER.note("console.check_select", "stored")


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(value=hostile_text)
def test_generated_text_through_the_console_check(value: str) -> None:
    try:
        console.check_select(value)
    except console.QueryRefused as refusal:
        assert not missing_translations([refusal.reason])


def _safe_name(name: str) -> bool:
    return (
        0 < len(name) <= 120
        and not name.startswith(".")
        and not any(c in name for c in '/\\<>:"|?*')
        and not any(ord(c) < 32 or ord(c) == 127 for c in name)
    )


@pytest.mark.parametrize("content_type", ["application/pdf", "image/png", "text/plain"])
def test_every_file_name_is_made_safe(content_type: str) -> None:
    for name in (*FILENAMES, *(item.value for item in TEXTS)):
        safe = sanitise_filename(name, content_type)
        assert _safe_name(safe), (name, safe)
        assert safe.lower().endswith({"application/pdf": ".pdf", "image/png": ".png"}.get(
            content_type, ".txt"))  # fmt: skip
        LEDGER.note("attachments.sanitise_filename", "stored")


def test_every_amount_is_money_or_refused() -> None:
    for value in AMOUNTS:
        try:
            amount = to_money(value)
        except ValueError as refusal:
            assert not missing_translations([str(refusal)])
            LEDGER.note("billing.to_money", "refused:" + str(refusal))
        else:
            assert amount.as_tuple().exponent == -2 and abs(amount) < 10**10, amount
            LEDGER.note("billing.to_money", "stored")


def _upload(session: Session, world: World, upload: Upload) -> None:
    def call() -> Any:
        view = upload_attachment(
            session=session, actor=world.nurse, patient_id=world.patient_id,
            filename=upload.filename, content_type=upload.content_type, data=upload.data,
        )  # fmt: skip
        found = download_attachment(session=session, actor=world.doctor, attachment_id=view.id)
        return view, found

    def check(result: Any) -> str | None:
        view, found = result
        if found.data != upload.data:
            return "downloaded bytes differ"
        if not _safe_name(view.filename):
            return f"unsafe stored name {view.filename!r}"
        return None

    attempt(session, f"upload.{upload.label}", upload.filename, call, check)


def _thread_upload(session: Session, world: World, upload: Upload) -> None:
    def call() -> Any:
        thread = open_my_thread(
            session=session, actor=world.portal, department_id=world.department_id,
            subject="文件", body="见附件",
        )  # fmt: skip
        checkpoint(session)
        attach_to_my_thread(
            session=session, actor=world.portal, thread_id=thread.id,
            filename=upload.filename, content_type=upload.content_type, data=upload.data,
        )  # fmt: skip
        return read_my_thread(session=session, actor=world.portal, thread_id=thread.id)

    def check(view: Any) -> str | None:
        names = [m.attachment_name for m in view.messages if m.attachment_name]
        return None if names and all(_safe_name(n) for n in names) else f"names {names!r}"

    attempt(session, f"thread_upload.{upload.label}", upload.filename, call, check)


def test_uploads_are_checked_by_content_and_stored_safely(hostile: tuple[Session, World]) -> None:
    session, world = hostile
    for upload in UPLOADS:
        _upload(session, world, upload)
        _thread_upload(session, world, upload)
    assert_clean("upload.")
    assert_clean("thread_upload.")
    outcomes = LEDGER.by_surface
    # A renamed executable, HTML posing as an image and an oversized file are refused ...
    for label in ("exe_as_pdf", "html_as_png", "oversized", "html_type", "svg_type", "exe_type"):
        assert "stored" not in outcomes[f"upload.{label}"], label
    # ... and a real document with a hostile name is kept under a safe name.
    for label in ("good_pdf", "traversal_name", "rtl_name", "long_name", "script_name"):
        assert outcomes[f"upload.{label}"] == {"stored": 1}, (label, outcomes[f"upload.{label}"])


@settings(
    max_examples=8,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(name=hostile_text)
def test_generated_file_names_upload_safely(name: str, hostile: tuple[Session, World]) -> None:
    session, world = hostile
    _upload(session, world, Upload("generated_name", name, "image/png", UPLOADS[2].data))
    assert_clean("upload.generated_name")
