"""A patient books, pays online and asks a question; the doctor replies; the patient reads it."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, expect
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from cims.appointments.models import Slot
from cims.base import utcnow
from cims.clock import to_local
from cims.org.models import Department
from journeys import choose, settled, type_date, wait_for_session_cookie

SUBJECT = "Dizzy after the new tablets"


def _open_place(url: str) -> tuple[dt.date, str]:
    """A day and time with a free place in Endocrinology (the demo doctor's department)."""
    engine = create_engine(url)
    with Session(engine) as db:
        starts = db.scalar(
            select(Slot.starts_at)
            .join(Department, Department.id == Slot.department_id)
            .where(
                Department.code == "ENDO",
                Slot.starts_at > utcnow() + dt.timedelta(days=1),
                Slot.booked_count < Slot.capacity,
                Slot.status == "open",
            )
            .order_by(Slot.starts_at)
            .limit(1)
        )
    engine.dispose()
    local = to_local(starts)
    assert local is not None
    return local.date(), f"{local:%H:%M}"


def test_patient_books_pays_and_messages_then_the_doctor_replies(
    server: str, e2e_db: str, browser: Browser, totp_for: Callable[[str], str], shots: Path
) -> None:
    from cims.demo.seed import DEMO_LOGINS

    day, time = _open_place(e2e_db)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server)
    page.get_by_role("textbox", name="Username").fill("patient")
    page.get_by_role("textbox", name="Password", exact=True).fill(DEMO_LOGINS["patient"][0])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible(timeout=30_000)
    wait_for_session_cookie(page)

    page.goto(f"{server}/portal_book")
    page.get_by_role("combobox", name="Department").click()
    page.get_by_role("option", name="Endocrinology").first.click()
    type_date(page, "Day", day)
    page.get_by_role("heading", name="Book a visit").click()
    choice = page.get_by_text(re.compile(f"^{time} · ")).first
    expect(choice).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1000)
    choice.click()
    page.get_by_role("button", name="Confirm booking").click()
    expect(page.get_by_text(re.compile("^Booked: "))).to_be_visible(timeout=30_000)

    page.goto(f"{server}/portal_pay")
    page.get_by_role("button", name=re.compile("^Pay ¥")).first.click()
    expect(page.get_by_text("WeChat Pay checkout")).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "portal_checkout.png"), full_page=True)
    # The sandbox posts its signed callback to the server's own route, which settles it.
    page.get_by_role("button", name="Pay now").click()
    expect(page.get_by_text(re.compile("^Payment received"))).to_be_visible(timeout=30_000)

    page.goto(f"{server}/portal_messages")
    page.get_by_text("New question").click()
    settled(page)
    # Typed to filter: a long department list draws only the options in view.
    choose(page, "Department", "Endocrinology", search="Endocrinology")
    page.get_by_role("textbox", name="Subject").fill(SUBJECT)
    page.get_by_role("textbox", name="Message").first.fill("Since Monday I feel dizzy.")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_text(re.compile("^Sent"))).to_be_visible(timeout=30_000)

    doctor = browser.new_page(viewport={"width": 1400, "height": 1000})
    doctor.goto(server)
    doctor.get_by_role("textbox", name="Username").fill("doctor")
    doctor.get_by_role("textbox", name="Password", exact=True).fill(DEMO_LOGINS["doctor"][0])
    doctor.get_by_role("button", name="Sign in").click()
    box = doctor.get_by_role("textbox", name="6-digit code from your authenticator app")
    expect(box).to_be_visible(timeout=30_000)
    box.fill(totp_for("doctor"))
    doctor.get_by_role("button", name="Verify").click()
    expect(doctor.get_by_role("button", name="Sign out", exact=True)).to_be_visible(timeout=30_000)
    wait_for_session_cookie(doctor)
    doctor.goto(f"{server}/doctor_consultations")
    doctor.get_by_role("combobox", name="Choose a consultation").click()
    doctor.get_by_role("option", name=re.compile(SUBJECT)).first.click()
    expect(doctor.get_by_text("Since Monday I feel dizzy.")).to_be_visible(timeout=30_000)
    doctor.get_by_role("textbox", name="Message").fill("Stop the new tablets and come in.")
    doctor.get_by_role("button", name="Reply").click()
    expect(doctor.get_by_text(re.compile("^Sent"))).to_be_visible(timeout=30_000)
    doctor.close()

    page.reload()
    expect(page.get_by_text("Stop the new tablets and come in.")).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "portal_messages.png"), full_page=True)
    page.close()
