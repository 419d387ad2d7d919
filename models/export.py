"""Exports of a risk report: CSV, Excel (openpyxl) and PDF (the embedded CJK font)."""

from __future__ import annotations

import csv
import datetime as dt
import io

from openpyxl import Workbook
from sqlalchemy.orm import Session

from cims.clock import local_zone
from cims.i18n import t
from cims.printables.documents import _document, _finish, _line, _table
from cims.security import audit
from cims.security.incidents import require_no_lockdown
from cims.security.rbac import Actor, Privilege, requires
from models.predict import RiskReport

FORMATS = ("csv", "xlsx", "pdf")
COLUMNS = ("rank", "mrn", "name", "when", "score", "reasons")


def _local(moment: dt.datetime) -> str:
    return moment.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M")


def report_table(report: RiskReport, language: str) -> list[tuple[str, ...]]:
    """Header and rows of the report as text, in ``language``."""
    head = tuple(t(f"models.col.{c}", language) for c in COLUMNS)
    rows = [head]
    for row in report.rows:
        reasons = "; ".join(f.zh if language == "zh" else f.en for f in row.factors)
        when = _local(row.index_time)
        rows.append((str(row.rank), row.mrn, row.name, when, f"{row.score:.1%}", reasons))
    return rows


def _csv(table: list[tuple[str, ...]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(table)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")  # BOM: Excel opens it as UTF-8


def _xlsx(table: list[tuple[str, ...]], title: str) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]
    for values in table:
        sheet.append(list(values))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _pdf(report: RiskReport, table: list[tuple[str, ...]], language: str) -> bytes:
    pdf = _document(language, format="A4")
    pdf.add_page(orientation="L")
    title = t("models.report_title", language)
    _line(pdf, title, size=14, height=8)
    _line(
        pdf,
        t(
            "models.report_subtitle",
            language,
            model=t(f"models.name.{report.model_name}", language),
            version=report.version,
            cohort=t(f"models.cohort.{report.cohort}", language),
            when=_local(report.generated_at),
        ),
    )
    _table(pdf, table, (12, 30, 30, 34, 18, 150))
    return _finish(pdf, title)


@requires(Privilege.EXPORT_DATA)
def export_report(
    *, session: Session, actor: Actor, report: RiskReport, fmt: str, language: str
) -> bytes:
    """The report as a file; refused during a lockdown; the export is audited."""
    require_no_lockdown(session)
    if fmt not in FORMATS:
        raise ValueError(fmt)
    table = report_table(report, language)
    if fmt == "csv":
        data = _csv(table)
    elif fmt == "xlsx":
        data = _xlsx(table, report.cohort)
    else:
        data = _pdf(report, table, language)
    audit.record(
        session,
        actor,
        "models.export_report",
        object_type="risk_report",
        object_id=report.cohort,
        detail={"format": fmt, "rows": len(report.rows), "version": report.version},
    )
    return data
