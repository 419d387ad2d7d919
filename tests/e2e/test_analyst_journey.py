"""Data staff run the no-show risk report for next week's bookings and export it as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from cims.appointments.models import Appointment
from cims.base import utcnow
from cims.patients.models import Patient
from cims.security.models import AuditEvent, User
from cims.security.signin import build_actor
from journeys import choose, new_page, open_page, settled, sign_in

COHORT = "Appointment no-show · Booked for the next 7 days"


@pytest.fixture(scope="module")
def no_show_model(e2e_db: str) -> None:
    """An active no-show model (trained and promoted as the analyst would on Risk models)."""
    from models.registry import active_version, promote, train_model

    engine = create_engine(e2e_db)
    with Session(engine) as db:
        if active_version(db, "no_show") is None:
            analyst = db.scalar(select(User).where(User.username == "analyst"))
            assert analyst is not None
            actor = build_actor(db, analyst)
            version = train_model(session=db, actor=actor, model_name="no_show", kind="lr")
            promote(session=db, actor=actor, version_id=version.id)
            db.commit()
    engine.dispose()


def test_analyst_runs_a_risk_report_and_exports_it(
    server: str,
    e2e_db: str,
    browser: Browser,
    totp_for: Callable[[str], str],
    no_show_model: None,
    shots: Path,
) -> None:
    page = new_page(browser, 1400, 1100)
    sign_in(page, server, "analyst", totp_for)
    open_page(page, server, "risk_report")
    choose(page, "Cohort", COHORT)
    page.get_by_role("button", name="Run the report").click()
    expect(page.get_by_text("Appointment no-show v")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    choose(page, "Export format", "CSV")
    page.get_by_role("button", name="Prepare export").click()
    download_button = page.get_by_test_id("stDownloadButton").get_by_role("button")
    expect(download_button).to_be_visible(timeout=30_000)
    settled(page)
    page.screenshot(path=str(shots / "analyst_risk_report.png"), full_page=True)
    with page.expect_download(timeout=30_000) as started:
        download_button.click()
    download = started.value
    assert download.suggested_filename == "risk-booked_next_7d.csv"
    text = Path(download.path()).read_text("utf-8-sig")
    page.context.close()

    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Rank", "MRN", "Name", "Discharged / booked", "Risk", "Main factors"]
    body = rows[1:]
    assert body, "the exported report has no rows"
    assert [int(r[0]) for r in body] == list(range(1, len(body) + 1))
    engine = create_engine(e2e_db)
    with Session(engine) as db:
        booked = set(
            db.scalars(
                select(Patient.mrn)
                .join(Appointment, Appointment.patient_id == Patient.id)
                .where(Appointment.status == "booked", Appointment.scheduled_at > utcnow())
            )
        )
        exported = db.scalar(
            select(AuditEvent.id).where(
                AuditEvent.action == "models.export_report",
                AuditEvent.actor_username == "analyst",
            )
        )
    engine.dispose()
    assert {r[1] for r in body} <= booked  # everyone listed really is booked ahead
    assert exported is not None  # the export is on the audit trail
