"""PDF builders as pure functions: data in, PDF bytes out, in Chinese or English.

Labels come from the UI catalogs (``print.*`` keys), so a printout reads like the
screen it was printed from. Every text is set in the embedded CJK font.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import qrcode
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace
from PIL import Image

from cims.i18n import t
from cims.printables.fonts import cjk_font
from cims.records.narrative import localise_name

FONT = "cjk"


@dataclass(frozen=True)
class PatientLine:
    """Who the printout is about."""

    name: str
    mrn: str
    sex: str  # M, F, U
    age: int | None
    birth_date: dt.date | None


@dataclass(frozen=True)
class DrugLine:
    """One prescribed drug."""

    name: str
    dose: Decimal
    dose_unit: str
    route: str
    frequency: str
    duration_days: int
    quantity: Decimal


@dataclass(frozen=True)
class PrescriptionSheet:
    """A 处方笺: the drugs of one visit with the prescriber."""

    patient: PatientLine
    department: str
    doctor: str
    diagnoses: tuple[str, ...]
    drugs: tuple[DrugLine, ...]
    issued_at: dt.datetime  # local time
    number: str  # the visit's reference


@dataclass(frozen=True)
class Wristband:
    """A patient identification band with a QR code of the MRN."""

    patient: PatientLine
    blood_type: str
    allergies: tuple[str, ...]


@dataclass(frozen=True)
class VisitSummary:
    """One encounter with its diagnoses, prescriptions and orders."""

    patient: PatientLine
    encounter_type: str
    department: str
    attending: str
    started_at: dt.datetime  # local time
    ended_at: dt.datetime | None
    chief_complaint: str
    disposition: str | None
    diagnoses: tuple[tuple[str, str, str], ...]  # code, description, rank
    drugs: tuple[DrugLine, ...]
    orders: tuple[tuple[str, str, str], ...]  # type, description, status


def _document(language: str, *, format: str | tuple[float, float] = "A4") -> FPDF:
    path, face = cjk_font()
    pdf = FPDF(format=format)
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_font(FONT, fname=str(path), collection_font_number=face)
    pdf.set_font(FONT, size=10)
    pdf.set_lang("zh-CN" if language == "zh" else "en")
    return pdf


def _line(pdf: FPDF, text: str, *, size: float = 10, height: float = 6) -> None:
    pdf.set_font(FONT, size=size)
    pdf.multi_cell(0, height, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "—"


def _patient_line(patient: PatientLine, language: str) -> str:
    age = "—" if patient.age is None else str(patient.age)
    return t(
        "print.patient_line",
        language,
        name=patient.name,
        sex=t(f"sex.{patient.sex}", language),
        age=age,
        mrn=patient.mrn,
    )


def _drug_rows(drugs: tuple[DrugLine, ...], language: str) -> list[tuple[str, ...]]:
    head = tuple(
        t(f"print.col_{name}", language)
        for name in ("drug", "dose", "route", "frequency", "days", "quantity")
    )
    rows = [head]
    for drug in drugs:
        rows.append(
            (
                localise_name(drug.name, language),
                f"{drug.dose.normalize():f} {drug.dose_unit}",
                drug.route,
                drug.frequency,
                str(drug.duration_days),
                f"{drug.quantity.normalize():f}",
            )
        )
    return rows


def _table(pdf: FPDF, rows: list[tuple[str, ...]], widths: tuple[int, ...]) -> None:
    pdf.set_font(FONT, size=9)
    # One regular face only: headings are shaded, not bold.
    heading = FontFace(emphasis="", fill_color=(235, 235, 235))
    with pdf.table(
        col_widths=widths, text_align="LEFT", line_height=6, headings_style=heading
    ) as table:
        for values in rows:
            row = table.row()
            for value in values:
                row.cell(value)


def _finish(pdf: FPDF, title: str) -> bytes:
    pdf.set_title(title)
    pdf.set_creator("CIMS")
    return bytes(pdf.output())


def prescription_pdf(sheet: PrescriptionSheet, language: str) -> bytes:
    """The prescription slip (处方笺) of one visit."""
    pdf = _document(language, format=(148, 210))  # A5
    pdf.add_page()
    title = t("print.prescription_title", language)
    _line(pdf, t("app.title", language), size=12, height=7)
    _line(pdf, title, size=16, height=9)
    _line(pdf, t("print.number", language, number=sheet.number), size=9)
    _line(pdf, _patient_line(sheet.patient, language))
    _line(pdf, t("print.department_line", language, department=sheet.department))
    diagnoses = "; ".join(localise_name(d, language) for d in sheet.diagnoses) or "—"
    _line(pdf, t("print.diagnoses_line", language, diagnoses=diagnoses))
    _line(pdf, "Rp.", size=14, height=8)
    if sheet.drugs:
        _table(pdf, _drug_rows(sheet.drugs, language), (34, 18, 12, 14, 10, 12))
    else:
        _line(pdf, t("print.no_drugs", language))
    pdf.ln(4)
    _line(pdf, t("print.doctor_line", language, doctor=sheet.doctor, at=_when(sheet.issued_at)))
    _line(pdf, t("print.pharmacist_line", language), size=9)
    return _finish(pdf, title)


def _qr_image(mrn: str) -> Image.Image:
    code = qrcode.QRCode(border=1, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(mrn)
    code.make(fit=True)
    image: Image.Image = code.make_image().get_image()
    return image


def wristband_pdf(band: Wristband, language: str) -> bytes:
    """A 25 × 3 cm identification band: name, sex, age, MRN, allergies and a QR code."""
    pdf = _document(language, format=(30, 250))
    pdf.set_auto_page_break(auto=False)
    pdf.set_margins(4, 3, 4)
    pdf.add_page(orientation="L")
    pdf.image(_qr_image(band.patient.mrn), x=4, y=3, w=24, h=24)
    pdf.set_xy(32, 3)
    pdf.set_font(FONT, size=13)
    pdf.cell(0, 7, band.patient.name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    birth = band.patient.birth_date.isoformat() if band.patient.birth_date else "—"
    details = t(
        "print.band_line",
        language,
        sex=t(f"sex.{band.patient.sex}", language),
        age="—" if band.patient.age is None else str(band.patient.age),
        birth=birth,
        blood=band.blood_type,
    )
    pdf.set_x(32)
    pdf.set_font(FONT, size=8)
    pdf.cell(0, 5, details, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_x(32)
    pdf.set_font(FONT, size=10)
    pdf.cell(0, 6, f"MRN {band.patient.mrn}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    allergies = "; ".join(localise_name(a, language) for a in band.allergies)
    pdf.set_x(32)
    pdf.set_font(FONT, size=8)
    if allergies:
        pdf.set_text_color(200, 0, 0)
    pdf.cell(
        0, 5, t("print.allergies_line", language, allergies=allergies or t("print.none", language))
    )
    pdf.set_text_color(0, 0, 0)
    return _finish(pdf, t("print.wristband_title", language))


def visit_summary_pdf(visit: VisitSummary, language: str) -> bytes:
    """One visit on a page: who, when, where, diagnoses, prescriptions and orders."""
    pdf = _document(language)
    pdf.add_page()
    title = t("print.visit_title", language)
    _line(pdf, t("app.title", language), size=12, height=7)
    _line(pdf, title, size=16, height=9)
    _line(pdf, _patient_line(visit.patient, language))
    _line(
        pdf,
        t(
            "print.visit_line",
            language,
            kind=t(f"print.type_{visit.encounter_type}", language),
            department=visit.department,
            attending=visit.attending or "—",
            start=_when(visit.started_at),
            end=_when(visit.ended_at),
        ),
    )
    _line(pdf, t("print.complaint_line", language, complaint=visit.chief_complaint or "—"))
    if visit.disposition:
        disposition = t(f"print.disposition_{visit.disposition}", language)
        _line(pdf, t("print.disposition_line", language, disposition=disposition))
    _line(pdf, t("print.diagnoses", language), size=12, height=8)
    if visit.diagnoses:
        rows = [tuple(t(f"print.col_{c}", language) for c in ("code", "description", "rank"))]
        rows += [
            (code, localise_name(description, language), t(f"print.rank_{rank}", language))
            for code, description, rank in visit.diagnoses
        ]
        _table(pdf, rows, (25, 120, 25))
    else:
        _line(pdf, t("print.none", language))
    _line(pdf, t("print.prescriptions", language), size=12, height=8)
    if visit.drugs:
        _table(pdf, _drug_rows(visit.drugs, language), (60, 25, 20, 20, 15, 20))
    else:
        _line(pdf, t("print.none", language))
    _line(pdf, t("print.orders", language), size=12, height=8)
    if visit.orders:
        rows = [
            tuple(t(f"print.col_{c}", language) for c in ("order_type", "description", "status"))
        ]
        rows += [
            (
                t(f"print.order_{kind}", language),
                localise_name(description, language),
                t(f"print.status_{status}", language),
            )
            for kind, description, status in visit.orders
        ]
        _table(pdf, rows, (30, 110, 30))
    else:
        _line(pdf, t("print.none", language))
    return _finish(pdf, title)
