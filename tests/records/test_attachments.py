"""Attachments: type and size limits, safe names, encrypted storage, checked downloads."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.config import get_settings
from cims.patients.models import Patient
from cims.records import attachments as files
from cims.records import notes
from cims.records.models import Attachment, Encounter
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"CIMS-PNG-MARKER-7731" * 4
PDF = b"%PDF-1.7\n% scanned outside report\n" + "外院检查报告 CIMS-PDF-MARKER-5512".encode()
TEXT = "出院带药清单：二甲双胍 CIMS-TEXT-MARKER-9025\n".encode()


def _in_care(session: Session, *roles: str) -> tuple[Patient, list[Actor]]:
    department = factories.department(session, "ENDO")
    actors = [factories.actor(session, role, departments=(department.id,)) for role in roles]
    patient = factories.patient(session)
    session.add(
        Encounter(
            patient_id=patient.id,
            encounter_type="outpatient",
            department_id=department.id,
            started_at=utcnow(),
        )
    )
    session.flush()
    return patient, actors


def _counts(session: Session) -> tuple[int, int]:
    rows = session.scalar(select(func.count()).select_from(Attachment)) or 0
    audits = session.scalar(select(func.max(AuditEvent.id))) or 0
    return rows, audits


def _upload(session: Session, actor: Actor, patient: Patient, **kw: object) -> files.AttachmentView:
    values: dict[str, object] = {
        "filename": "化验单.png",
        "content_type": "image/png",
        "data": PNG,
    }
    values.update(kw)
    return files.upload_attachment(session=session, actor=actor, patient_id=patient.id, **values)  # type: ignore[arg-type]


def test_round_trip_keeps_bytes_name_type_and_hash(session: Session) -> None:
    patient, (doctor, nurse) = _in_care(session, "doctor", "nurse")
    view = _upload(session, nurse, patient)  # nurses file documents too
    assert (view.filename, view.content_type, view.size_bytes) == (
        "化验单.png",
        "image/png",
        len(PNG),
    )
    assert view.sha256 == hashlib.sha256(PNG).hexdigest()
    row = session.get(Attachment, view.id)
    assert row is not None and b"CIMS-PNG-MARKER" not in row.content_enc
    got = files.download_attachment(session=session, actor=doctor, attachment_id=view.id)
    assert (got.data, got.filename, got.content_type) == (PNG, "化验单.png", "image/png")
    listed = files.list_attachments(session=session, actor=doctor, patient_id=patient.id)
    assert [a.id for a in listed] == [view.id]
    actions = session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.object_type == "attachment", AuditEvent.patient_id == patient.id)
        .order_by(AuditEvent.id)
    ).all()
    assert actions == [
        "records.upload_attachment",
        "records.download_attachment",
        "records.list_attachments",
    ]


@pytest.mark.parametrize(
    ("content_type", "data", "problem"),
    [
        ("application/pdf", b"MZ\x90\x00 not a pdf at all", "attachments.content_mismatch"),
        ("image/png", b"\xff\xd8\xff\xe0 a jpeg called png", "attachments.content_mismatch"),
        ("text/plain", b"\x7fELF\x02\x01\x01\x00binary", "attachments.content_mismatch"),
        ("application/zip", b"PK\x03\x04zipped", "attachments.type_not_allowed"),
        ("application/x-msdownload", b"MZ\x90\x00", "attachments.type_not_allowed"),
        ("image/png", b"", "attachments.empty"),
    ],
)
def test_wrong_types_and_empty_files_are_refused_and_write_nothing(
    session: Session, content_type: str, data: bytes, problem: str
) -> None:
    patient, (doctor,) = _in_care(session, "doctor")
    before = _counts(session)
    with pytest.raises(files.InvalidAttachment) as refused:
        _upload(session, doctor, patient, content_type=content_type, data=data)
    assert problem in refused.value.problems
    assert _counts(session) == before


def test_files_over_the_size_limit_are_refused(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient, (doctor,) = _in_care(session, "doctor")
    monkeypatch.setattr(get_settings(), "attachment_max_mb", 1)
    before = _counts(session)
    big = PDF + b"0" * (1024 * 1024)
    with pytest.raises(files.InvalidAttachment) as refused:
        _upload(session, doctor, patient, content_type="application/pdf", data=big)
    assert refused.value.problems == ["attachments.too_large"]
    assert _counts(session) == before
    ok = _upload(session, doctor, patient, content_type="application/pdf", data=PDF)
    assert ok.size_bytes == len(PDF)


def test_the_type_allow_list_is_a_setting(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient, (doctor,) = _in_care(session, "doctor")
    monkeypatch.setattr(get_settings(), "attachment_types", ("application/pdf",))
    with pytest.raises(files.InvalidAttachment) as refused:
        _upload(session, doctor, patient, content_type="text/plain", data=TEXT)
    assert refused.value.problems == ["attachments.type_not_allowed"]


@pytest.mark.parametrize(
    ("given", "content_type", "expected"),
    [
        ("../../etc/passwd.pdf", "application/pdf", "passwd.pdf"),
        ("C:\\scans\\报告.PDF", "application/pdf", "报告.PDF"),
        ("report", "application/pdf", "report.pdf"),
        ("photo.exe", "image/jpeg", "photo.exe.jpg"),
        ('a<b>c:"d|e?f*.txt', "text/plain", "a_b_c__d_e_f_.txt"),
        ("...", "image/png", "attachment.png"),
        ("x" * 300 + ".png", "image/png", "x" * 116 + ".png"),
    ],
)
def test_filenames_are_sanitised(given: str, content_type: str, expected: str) -> None:
    assert files.sanitise_filename(given, content_type) == expected


def test_tampered_bytes_fail_the_check(session: Session) -> None:
    patient, (doctor,) = _in_care(session, "doctor")
    view = _upload(session, doctor, patient, content_type="text/plain", data=TEXT)
    row = session.get(Attachment, view.id)
    assert row is not None
    row.sha256 = hashlib.sha256(b"something else").hexdigest()
    session.flush()
    with pytest.raises(files.InvalidAttachment) as refused:
        files.download_attachment(session=session, actor=doctor, attachment_id=view.id)
    assert refused.value.problems == ["attachments.corrupt"]


def test_voided_attachments_vanish_but_stay_stored(session: Session) -> None:
    patient, (doctor,) = _in_care(session, "doctor")
    view = _upload(session, doctor, patient)
    with pytest.raises(files.InvalidAttachment):
        files.void_attachment(session=session, actor=doctor, attachment_id=view.id, reason=" ")
    files.void_attachment(session=session, actor=doctor, attachment_id=view.id, reason="传错患者")
    assert files.list_attachments(session=session, actor=doctor, patient_id=patient.id) == []
    with pytest.raises(files.InvalidAttachment):
        files.download_attachment(session=session, actor=doctor, attachment_id=view.id)
    row = session.get(Attachment, view.id)
    assert row is not None and row.voided and row.void_reason == "传错患者"


def test_wrong_roles_and_strangers_are_refused(session: Session) -> None:
    patient, (doctor,) = _in_care(session, "doctor")
    view = _upload(session, doctor, patient)
    before = _counts(session)[0]
    for role in ("registrar", "finance", "manager", "data_staff", "admin"):
        outsider = factories.actor(session, role)
        with pytest.raises(AccessDenied):
            _upload(session, outsider, patient)
        with pytest.raises(AccessDenied):
            files.download_attachment(session=session, actor=outsider, attachment_id=view.id)
    stranger = factories.actor(session, "doctor")  # no care relationship
    with pytest.raises(AccessDenied):
        _upload(session, stranger, patient)
    with pytest.raises(AccessDenied):
        files.download_attachment(session=session, actor=stranger, attachment_id=view.id)
    assert _counts(session)[0] == before


def test_attachments_and_notes_are_not_readable_in_a_pg_dump(
    fresh_database: Callable[[str], str],
) -> None:
    from cims.embedded import postgres_bin_dir
    from cims.security.bootstrap import ensure_roles_and_privileges

    url = fresh_database("attachments_dump")
    engine = create_engine(url)
    with Session(engine) as session:
        ensure_roles_and_privileges(session)
        patient, (doctor,) = _in_care(session, "doctor")
        for data, kind in ((PNG, "image/png"), (PDF, "application/pdf"), (TEXT, "text/plain")):
            _upload(session, doctor, patient, content_type=kind, data=data)
        note = notes.write_note(
            session=session,
            actor=doctor,
            patient_id=patient.id,
            title="门诊病历",
            subjective="CIMS-NOTE-MARKER-4410 口干",
        )
        notes.sign_note(session=session, actor=doctor, note_id=note.id)
        session.commit()
    engine.dispose()
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    dump = subprocess.run(
        [str(postgres_bin_dir() / "pg_dump"), "--data-only", "--dbname", plain],
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8", "replace")
    assert "COPY public.attachments" in dump and "COPY public.clinical_notes" in dump
    markers = ["CIMS-PNG-MARKER-7731", "CIMS-PDF-MARKER-5512", "CIMS-TEXT-MARKER-9025"]
    markers.append("CIMS-NOTE-MARKER-4410")
    # bytea is dumped as hex: look for both spellings of every marker.
    leaked = [m for m in markers if m in dump or m.encode().hex() in dump]
    assert leaked == []
