"""Printable PDFs: CJK text (rare characters too) extractable, font embedded, QR of the MRN,
both languages, and the services' privilege, care and audit checks."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pypdf
import pytest
from PIL import Image, ImageChops
from sqlalchemy import select
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.i18n import LANGUAGES, catalog
from cims.printables import documents as docs
from cims.printables import service as printing
from cims.records.models import (
    DISPOSITIONS,
    ENCOUNTER_TYPES,
    ORDER_STATUSES,
    ORDER_TYPES,
    Allergy,
    Diagnosis,
    Encounter,
    Order,
    Prescription,
)
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor

RARE = "𠮷"  # U+20BB7, outside the Basic Multilingual Plane
PATIENT = docs.PatientLine("𠮷田张三", "0000900123", "M", 66, dt.date(1960, 5, 1))
METFORMIN = docs.DrugLine(
    "二甲双胍 / Metformin", Decimal("0.500"), "g", "oral", "bid", 30, Decimal("60")
)


def _text(pdf: bytes) -> str:
    """All page text. pypdf reads fpdf2's inline CMap as one-byte codes: drop the NULs."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return "".join(page.extract_text() for page in reader.pages).replace("\x00", "")


def _embedded_fonts(pdf: bytes) -> list[str]:
    """Names of the fonts whose program is embedded (FontFile, FontFile2 or FontFile3)."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    found = []
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            for descendant in font.get("/DescendantFonts", [font]):
                descriptor = descendant.get_object()["/FontDescriptor"].get_object()
                if any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                    found.append(str(descriptor["/FontName"]))
    return found


def _sheet() -> docs.PrescriptionSheet:
    return docs.PrescriptionSheet(
        patient=PATIENT,
        department="内分泌科",
        doctor="李医生",
        diagnoses=("2型糖尿病 / Type 2 diabetes",),
        drugs=(METFORMIN,),
        issued_at=dt.datetime(2026, 11, 26, 9, 30),
        number="0000900123-7",
    )


def _visit() -> docs.VisitSummary:
    return docs.VisitSummary(
        patient=PATIENT,
        encounter_type="outpatient",
        department="内分泌科",
        attending="李医生",
        started_at=dt.datetime(2026, 11, 26, 9, 0),
        ended_at=None,
        chief_complaint="口干多饮三月",
        disposition="home",
        diagnoses=(("E11.9", "2型糖尿病 / Type 2 diabetes", "primary"),),
        drugs=(METFORMIN,),
        orders=(("lab", "糖化血红蛋白 / HbA1c", "ordered"),),
    )


def test_prescription_prints_every_name_with_the_font_embedded() -> None:
    pdf = docs.prescription_pdf(_sheet(), "zh")
    text = _text(pdf)
    for expected in (RARE, "张三", "处方笺", "二甲双胍", "李医生", "0000900123"):
        assert expected in text, expected
    assert "Metformin" not in text  # the Chinese half of bilingual names only
    [font] = _embedded_fonts(pdf)
    assert "NotoSansCJK" in font
    english = _text(docs.prescription_pdf(_sheet(), "en"))
    assert "Prescription" in english and "Metformin" in english and RARE in english


def test_wristband_carries_a_qr_code_of_the_mrn() -> None:
    band = docs.Wristband(PATIENT, "A+", ("青霉素 / Penicillin",))
    pdf = docs.wristband_pdf(band, "zh")
    text = _text(pdf)
    for expected in (RARE, "张三", "0000900123", "过敏：青霉素"):
        assert expected in text, expected
    assert _embedded_fonts(pdf)
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    [image] = reader.pages[0].images
    printed = image.image
    assert printed is not None
    # The printed picture is exactly the QR code that encodes the MRN.
    expected = docs._qr_image("0000900123").convert("L")
    assert ImageChops.difference(printed.convert("L"), expected).getbbox() is None
    other = docs._qr_image("0000900124").convert("L")
    assert ImageChops.difference(printed.convert("L"), other).getbbox() is not None
    assert isinstance(printed, Image.Image)


def test_visit_summary_in_both_languages() -> None:
    chinese = _text(docs.visit_summary_pdf(_visit(), "zh"))
    for expected in ("就诊小结", RARE, "E11.9", "2型糖尿病", "二甲双胍", "糖化血红蛋白", "门诊"):
        assert expected in chinese, expected
    english = _text(docs.visit_summary_pdf(_visit(), "en"))
    for expected in ("Visit summary", "Type 2 diabetes", "Metformin", "HbA1c", "Outpatient"):
        assert expected in english, expected


def test_runtime_print_keys_exist_in_both_catalogs() -> None:
    keys = [f"print.type_{kind}" for kind in ENCOUNTER_TYPES]
    keys += [f"print.disposition_{d}" for d in DISPOSITIONS]
    keys += [f"print.order_{kind}" for kind in ORDER_TYPES]
    keys += [f"print.status_{status}" for status in ORDER_STATUSES]
    keys += ["print.rank_primary", "print.rank_secondary"]
    for language in LANGUAGES:
        assert [k for k in keys if k not in catalog(language)] == []


def _visit_rows(session: Session) -> tuple[Encounter, Actor]:
    department = factories.department(session, "ENDO")
    doctor = factories.actor(session, "doctor", departments=(department.id,))
    patient = factories.patient(session, full_name="𠮷田", family_name="𠮷", given_name="田")
    now = utcnow()
    visit = Encounter(
        patient_id=patient.id,
        encounter_type="outpatient",
        department_id=department.id,
        attending_id=doctor.user_id,
        started_at=now,
        chief_complaint="口干多饮",
    )
    session.add(visit)
    session.flush()
    session.add_all(
        [
            Diagnosis(
                patient_id=patient.id,
                encounter_id=visit.id,
                code="E11.9",
                description="2型糖尿病 / Type 2 diabetes",
                diagnosed_at=now,
            ),
            Prescription(
                patient_id=patient.id,
                encounter_id=visit.id,
                prescriber_id=doctor.user_id,
                drug_code="A10BA02",
                drug_name="二甲双胍 / Metformin",
                dose=Decimal("0.5"),
                dose_unit="g",
                route="oral",
                frequency="bid",
                duration_days=30,
                quantity=Decimal("60"),
                prescribed_at=now,
            ),
            Order(
                patient_id=patient.id,
                encounter_id=visit.id,
                order_type="lab",
                code="4548-4",
                description="糖化血红蛋白 / HbA1c",
                ordered_at=now,
            ),
            Allergy(patient_id=patient.id, substance="青霉素 / Penicillin", noted_at=now),
        ]
    )
    session.flush()
    return visit, doctor


def test_print_services_gather_check_care_and_audit(session: Session) -> None:
    visit, doctor = _visit_rows(session)
    before = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) or 0
    rx = printing.print_prescription(
        session=session, actor=doctor, encounter_id=visit.id, language="zh"
    )
    assert all(s in _text(rx) for s in ("𠮷田", "二甲双胍", "2型糖尿病", doctor.display_name))
    band = printing.print_wristband(
        session=session, actor=doctor, patient_id=visit.patient_id, language="en"
    )
    assert "Allergies: Penicillin" in _text(band)
    summary = printing.print_visit_summary(
        session=session, actor=doctor, encounter_id=visit.id, language="en"
    )
    assert all(s in _text(summary) for s in ("E11.9", "Metformin", "HbA1c", "口干多饮"))
    visits = printing.list_visits(session=session, actor=doctor, patient_id=visit.patient_id)
    assert [v.id for v in visits] == [visit.id]
    rows = session.execute(
        select(AuditEvent.action, AuditEvent.patient_id)
        .where(AuditEvent.id > before)
        .order_by(AuditEvent.id)
    ).all()
    assert [a for a, _ in rows] == [
        "records.print_prescription",
        "records.print_wristband",
        "records.print_visit_summary",
        "records.list_encounters",
    ]
    assert {p for _, p in rows} == {visit.patient_id}


def test_print_services_refuse_strangers_and_other_roles(session: Session) -> None:
    visit, _ = _visit_rows(session)
    stranger = factories.actor(session, "doctor")
    with pytest.raises(AccessDenied):
        printing.print_prescription(
            session=session, actor=stranger, encounter_id=visit.id, language="zh"
        )
    with pytest.raises(AccessDenied):
        printing.print_wristband(
            session=session, actor=stranger, patient_id=visit.patient_id, language="zh"
        )
    registrar = factories.actor(session, "registrar")
    with pytest.raises(AccessDenied):
        printing.print_visit_summary(
            session=session, actor=registrar, encounter_id=visit.id, language="zh"
        )
    nurse = factories.actor(session, "nurse")
    with pytest.raises(printing.NothingToPrint):
        printing.print_visit_summary(session=session, actor=nurse, encounter_id=-1, language="zh")
