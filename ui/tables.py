"""Turning service rows into translated tables."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from cims.appointments.service import DayAppointment
from cims.records.service import Inpatient
from ui.format import hhmm, localised, when
from ui.i18n import tr


def appointment_table(rows: Sequence[DayAppointment], *, with_doctor: bool) -> pd.DataFrame:
    """A day list of appointments with translated headers and statuses."""
    records = []
    for row in rows:
        record = {
            tr("col.time"): hhmm(row.scheduled_at),
            # Text columns throughout: a dash for "none yet" must not mix with numbers.
            tr("col.queue"): "—" if row.queue_number is None else str(row.queue_number),
            tr("col.mrn"): row.mrn,
            tr("col.name"): row.patient_name,
            tr("col.sex"): tr(f"sex.{row.sex}"),
            tr("col.age"): "—" if row.age is None else str(row.age),
            tr("col.department"): localised(row.department_zh, row.department_en),
            tr("col.status"): tr(f"appointment.{row.status}"),
            tr("col.checked_in"): hhmm(row.checked_in_at),
        }
        if with_doctor:
            record[tr("col.doctor")] = row.doctor_name or "—"
        records.append(record)
    return pd.DataFrame.from_records(records)


def table_height(rows: int, *, max_rows: int = 25) -> int:
    """Pixel height that shows up to ``max_rows`` rows without an inner scroll bar."""
    return 38 + 35 * max(1, min(rows, max_rows))


def inpatient_table(rows: Sequence[Inpatient]) -> pd.DataFrame:
    """The ward census: bed, patient, admission time and complaint."""
    return pd.DataFrame.from_records(
        [
            {
                tr("col.bed"): f"{localised(row.ward_zh, row.ward_en)} {row.bed}",
                tr("col.mrn"): row.mrn,
                tr("col.name"): row.patient_name,
                tr("col.age"): "—" if row.age is None else str(row.age),
                tr("col.admitted"): when(row.admitted_at),
                tr("col.complaint"): row.chief_complaint or "—",
            }
            for row in rows
        ]
    )
