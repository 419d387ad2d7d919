"""Spreadsheet exports (CSV and Excel) with localised headers: patient list and visit list.

Exports are audited (``interop.export_spreadsheet``), need EXPORT_DATA, and are blocked
during a lockdown. The patient list is masked exactly as the screen masks it for the
exporting role (phone numbers in full only with VIEW_SENSITIVE_IDS).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any, Final

from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.clock import day_bounds, local_zone
from cims.i18n import t
from cims.org.models import Department
from cims.patients.models import Patient
from cims.patients.service import build_view
from cims.records.models import Encounter
from cims.security import audit
from cims.security.crypto import load_cipher
from cims.security.incidents import require_no_lockdown
from cims.security.rbac import Actor, Privilege, requires

FORMATS: Final = ("csv", "xlsx")
MAX_ROWS: Final = 100_000
PATIENT_COLUMNS: Final = ("mrn", "name", "sex", "birth_date", "phone", "insurance")
VISIT_COLUMNS: Final = ("started", "mrn", "name", "visit_type", "department", "status")


class InvalidExport(ValueError):
    """Bad export request; ``problems`` are message keys."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(", ".join(problems))


def table_bytes(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, title: str = "CIMS"
) -> bytes:
    """Any table as CSV (UTF-8 with BOM, so Excel reads Chinese) or as an .xlsx workbook."""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(headers)
        writer.writerows(rows)
        return ("\ufeff" + out.getvalue()).encode("utf-8")
    if fmt != "xlsx":
        raise InvalidExport(["interop.bad_format"])
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31])
    sheet.append(list(headers))
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _headers(columns: Sequence[str], language: str) -> list[str]:
    return [t(f"interop.col_{name}", language) for name in columns]


def _finish(session: Session, actor: Actor, sheet: str, fmt: str, rows: int, masked: bool) -> None:
    audit.record(
        session,
        actor,
        "interop.export_spreadsheet",
        object_type="spreadsheet",
        object_id=sheet,
        detail={"format": fmt, "rows": rows, "masked": masked},
    )


@requires(Privilege.EXPORT_DATA)
def export_patient_list(
    *, session: Session, actor: Actor, fmt: str = "xlsx", language: str = "zh"
) -> bytes:
    """Live patients (MRN, name, sex, birth date, phone, insurance), masked per role."""
    if fmt not in FORMATS:
        raise InvalidExport(["interop.bad_format"])
    require_no_lockdown(session)
    cipher = load_cipher(session)
    patients = session.scalars(
        select(Patient)
        .where(Patient.voided.is_(False), Patient.merged_into_id.is_(None))
        .order_by(Patient.id)
        .limit(MAX_ROWS)
    )
    rows: list[list[Any]] = []
    masked = True
    for patient in patients:
        view = build_view(cipher, actor, patient)
        masked = view.masked
        rows.append(
            [
                view.mrn,
                view.full_name,
                t(f"sex.{view.sex}", language),
                view.birth_date.isoformat() if view.birth_date else "",
                view.phone,
                t(f"insurance.{view.insurance_type}", language),
            ]
        )
    _finish(session, actor, "patients", fmt, len(rows), masked)
    return table_bytes(_headers(PATIENT_COLUMNS, language), rows, fmt, "patients")


@requires(Privilege.EXPORT_DATA)
def export_visit_list(
    *,
    session: Session,
    actor: Actor,
    fmt: str = "xlsx",
    language: str = "zh",
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> bytes:
    """Visits (time, MRN, name, type, department, status), optionally within local dates."""
    if fmt not in FORMATS:
        raise InvalidExport(["interop.bad_format"])
    require_no_lockdown(session)
    query = (
        select(
            Encounter.started_at,
            Patient.mrn,
            Patient.full_name,
            Encounter.encounter_type,
            Department.name_zh,
            Department.name_en,
            Encounter.status,
        )
        .join(Patient, Patient.id == Encounter.patient_id)
        .join(Department, Department.id == Encounter.department_id)
        .where(Encounter.voided.is_(False))
        .order_by(Encounter.started_at.desc())
        .limit(MAX_ROWS)
    )
    if start is not None:
        query = query.where(Encounter.started_at >= day_bounds(start)[0])
    if end is not None:
        query = query.where(Encounter.started_at < day_bounds(end)[1])
    rows = [
        [
            started.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M"),
            mrn,
            name,
            t(f"interop.visit_{kind}", language),
            name_zh if language == "zh" else name_en,
            t(f"interop.status_{status}", language),
        ]
        for started, mrn, name, kind, name_zh, name_en, status in session.execute(query)
    ]
    _finish(session, actor, "visits", fmt, len(rows), False)
    return table_bytes(_headers(VISIT_COLUMNS, language), rows, fmt, "visits")
