"""A nurse checks an arriving patient in and records their vitals on the worklist."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, expect
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from cims.appointments.models import Appointment
from cims.clock import day_bounds, local_today
from cims.records.models import Observation
from journeys import arrival_today, choose, new_page, open_page, settled, sign_in

READINGS = {  # label on the form -> what the nurse types
    "Temperature (°C)": "38.6",  # a fever: flagged high
    "Pulse (/min)": "92",
    "Systolic BP (mmHg)": "128",
    "Diastolic BP (mmHg)": "82",
    "SpO2 (%)": "97",
}


def test_nurse_checks_a_patient_in_and_records_vitals(
    server: str, e2e_db: str, browser: Browser, totp_for: Callable[[str], str], shots: Path
) -> None:
    patient_id, mrn, name = arrival_today(e2e_db, last=False)
    page = new_page(browser, 1400, 1200)
    sign_in(page, server, "nurse", totp_for)
    open_page(page, server, "nurse_worklist")

    row = page.get_by_text(re.compile(re.escape(mrn))).first
    expect(row).to_be_visible(timeout=30_000)
    # The "Check in" button sits in the same row as the patient's line.
    line = page.get_by_test_id("stHorizontalBlock").filter(has_text=mrn).first
    line.get_by_role("button", name="Check in").click()
    expect(
        page.get_by_text(re.compile(f"^{re.escape(name)} checked in, queue number \\d+"))
    ).to_be_visible(timeout=30_000)
    settled(page)

    choose(page, "Patient", re.compile(re.escape(f"{name} · {mrn}")), search=mrn)
    for label, value in READINGS.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Save vitals").click()
    saved = page.get_by_text(f"Saved {len(READINGS)} vital signs for {name} · {mrn}.")
    expect(saved).to_be_visible(timeout=30_000)
    expect(page.get_by_text(re.compile("Temperature \\(°C\\): 38.6.* · High"))).to_be_visible()
    settled(page)
    # Saved, so no longer waiting for vitals; the readings are shown above the lists.
    expect(page.locator("[role=gridcell]", has_text=mrn)).to_have_count(0)
    saved.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "nurse_vitals.png"), full_page=True)
    page.context.close()

    start, end = day_bounds(local_today())
    engine = create_engine(e2e_db)
    with Session(engine) as db:
        statuses = db.scalars(
            select(Appointment.status).where(
                Appointment.patient_id == patient_id,
                Appointment.scheduled_at >= start,
                Appointment.scheduled_at < end,
            )
        ).all()
        vitals = db.scalar(
            select(Observation.id)
            .where(
                Observation.patient_id == patient_id,
                Observation.category == "vital",
                Observation.observed_at >= start,
            )
            .limit(1)
        )
    engine.dispose()
    assert "checked_in" in statuses
    assert vitals is not None
