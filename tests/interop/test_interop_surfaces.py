"""The command line, the import page (AppTest) and the spreadsheet exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session
from test_pages import _signed_in_page
from typer.testing import CliRunner

import factories
from cims.cli import app
from cims.config import shared_data_dir
from cims.interop.spreadsheets import InvalidExport, export_patient_list, export_visit_list
from cims.security.crypto import load_cipher
from cims.security.incidents import LockdownActive, start_lockdown
from cims.security.rbac import AccessDenied

PAGE = "pages/admin_import.py"
SAMPLE_C = shared_data_dir() / "synthea" / "sample_c"


@pytest.mark.parametrize(
    "command", [["import", "synthea"], ["import", "fhir"], ["export", "fhir"], ["import", "codes"]]
)
def test_commands_have_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.fixture(scope="module")
def seeded_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small demo hospital that the page under test is pointed at."""
    with seeded_app_database("interop_pages", patients=200, seed=11) as url:
        yield url


def test_admin_imports_a_synthea_folder_from_the_page(seeded_url: str) -> None:
    at = _signed_in_page(seeded_url, "admin", PAGE)
    assert not at.exception, at.exception
    assert at.title[0].value == "Data import"
    at.text_input(key="import_folder").input(str(SAMPLE_C))
    at = at.button(key="import_go").click().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    [done] = at.success
    assert done.value.startswith("Import finished:") and "0 rejected" in done.value
    # The CLI runs the same import: everything is already there, nothing is added.
    result = CliRunner().invoke(app, ["import", "synthea", str(SAMPLE_C), "--as", "admin"])
    assert result.exit_code == 0, result.output
    assert "added encounters" in result.output and "already imported" in result.output
    assert "on 2 connections" in result.output  # checked aside by the stager


def test_import_page_refuses_a_nurse(seeded_url: str) -> None:
    at = _signed_in_page(seeded_url, "nurse", PAGE)
    assert not at.exception
    assert [e.value for e in at.error] == ["Your role is not allowed to do this."]
    assert not at.text_input


def test_page_refuses_a_folder_that_is_not_an_export(seeded_url: str, tmp_path: Path) -> None:
    at = _signed_in_page(seeded_url, "analyst", PAGE)
    at.text_input(key="import_folder").input(str(tmp_path))
    at = at.button(key="import_go").click().run()
    assert [e.value for e in at.error] == ["The folder has no patients.csv: not a Synthea export."]


def test_patient_list_is_masked_localised_and_audited(session: Session) -> None:
    cipher = load_cipher(session)
    patient = factories.patient(session, full_name="王五")
    patient.phone_enc = cipher.encrypt(
        "13912345678", table="patients", column="phone", row_id=patient.id
    )
    session.flush()
    staff = factories.actor(session, "data_staff")
    book = load_workbook(io.BytesIO(export_patient_list(session=session, actor=staff)))
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0] == ("病历号", "姓名", "性别", "出生日期", "手机号", "医保类型")
    [mine] = [r for r in rows if r[0] == patient.mrn]
    assert mine[4] == "139****5678"
    text = export_patient_list(session=session, actor=staff, fmt="csv", language="en")
    header = next(csv.reader(io.StringIO(text.decode("utf-8-sig"))))
    assert header[0] == "MRN"
    visits = export_visit_list(session=session, actor=staff, fmt="csv", language="en")
    assert visits.decode("utf-8-sig").startswith("Visit time,MRN,Name")
    with pytest.raises(InvalidExport):
        export_visit_list(session=session, actor=staff, fmt="pdf")
    with pytest.raises(AccessDenied):
        export_patient_list(session=session, actor=factories.actor(session, "nurse"))
    start_lockdown(session=session, actor=factories.actor(session, "admin"), reason="drill")
    with pytest.raises(LockdownActive):
        export_patient_list(session=session, actor=staff)
