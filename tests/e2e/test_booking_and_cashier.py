"""A registrar books a visit; a cashier takes a payment and closes the day."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from cims.appointments.models import Appointment, Slot
from cims.base import utcnow
from cims.billing.models import Invoice
from cims.clock import to_local
from cims.org.models import Department
from cims.patients.models import Patient
from journeys import sign_in_with_totp, type_date, wait_for_session_cookie


def _sign_in(page: Page, server: str, username: str, totp: Callable[[str], str]) -> None:
    sign_in_with_totp(page, server, username, totp)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=30_000)
    wait_for_session_cookie(page)


def _choose(page: Page, label: str, option: str) -> None:
    """Pick ``option`` in the Streamlit selectbox labelled ``label``."""
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option).first.click()


def _scenario(url: str) -> tuple[str, str, dt.date, str, str]:
    """A patient with one open bill and no future booking, and a department with a free place."""
    engine = create_engine(url)
    with Session(engine) as db:
        slot, department = db.execute(
            select(Slot, Department)
            .join(Department, Department.id == Slot.department_id)
            .where(
                Slot.starts_at > utcnow() + dt.timedelta(days=1),
                Slot.booked_count < Slot.capacity,
                Slot.status == "open",
            )
            .order_by(Slot.starts_at)
            .limit(1)
        ).one()
        booked = select(Appointment.patient_id).where(Appointment.scheduled_at > utcnow())
        open_bills = (
            select(Invoice.patient_id)
            .where(Invoice.status.in_(("issued", "partly_paid")), ~Invoice.voided)
            .group_by(Invoice.patient_id)
            .having(func.count() == 1)
        )
        mrn, invoice_no = db.execute(
            select(Patient.mrn, Invoice.invoice_no)
            .join(Invoice, Invoice.patient_id == Patient.id)
            .where(
                Patient.id.in_(open_bills),
                Patient.id.not_in(booked),
                Invoice.status.in_(("issued", "partly_paid")),
            )
            .order_by(Patient.id)
            .limit(1)
        ).one()
    engine.dispose()
    local = to_local(slot.starts_at)
    assert local is not None
    return mrn, department.name_en, local.date(), f"{local:%H:%M}", invoice_no


def test_registrar_books_then_cashier_takes_payment_and_closes_the_day(
    server: str, e2e_db: str, browser: Browser, totp_for: Callable[[str], str], shots: Path
) -> None:
    mrn, department, day, time, invoice_no = _scenario(e2e_db)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _sign_in(page, server, "registrar", totp_for)
    page.goto(f"{server}/appointments_desk")
    page.get_by_role("textbox", name=re.compile("^Find the patient")).fill(mrn)
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_text(mrn).first).to_be_visible(timeout=30_000)
    _choose(page, "Department", department)
    type_date(page, "Day", day)
    page.get_by_role("heading", name="Book an appointment").click()
    times = page.get_by_role("combobox", name="Time and doctor")
    expect(times).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1500)  # let the rerun that the new date caused finish drawing
    times.click()
    page.get_by_role("option", name=re.compile(f"^{time}")).first.click()
    page.get_by_role("button", name="Book", exact=True).click()
    expect(page.get_by_text(re.compile("^Booked: "))).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "booking.png"), full_page=True)
    page.close()

    cashier = browser.new_page(viewport={"width": 1400, "height": 1100})
    _sign_in(cashier, server, "finance", totp_for)
    cashier.goto(f"{server}/cashier")
    cashier.get_by_role("textbox", name=re.compile("^Find a patient")).fill(mrn)
    cashier.get_by_role("button", name="Search").click()
    expect(cashier.get_by_text("Invoices", exact=True)).to_be_visible(timeout=30_000)
    _choose(cashier, "Invoice", re.compile(re.escape(invoice_no)))  # type: ignore[arg-type]
    cashier.get_by_role("button", name="Take payment").click()
    expect(cashier.get_by_text("Payment taken.")).to_be_visible(timeout=30_000)
    cashier.screenshot(path=str(shots / "cashier.png"), full_page=True)

    cashier.goto(f"{server}/finance_settlement")
    expect(cashier.get_by_text("My net takings today")).to_be_visible(timeout=30_000)
    cashier.get_by_text("I have counted the cash and want to close the day").click()
    cashier.get_by_role("button", name="Close and lock the day").click()
    expect(cashier.get_by_text(re.compile("^Day closed"))).to_be_visible(timeout=30_000)
    cashier.screenshot(path=str(shots / "settlement.png"), full_page=True)
    cashier.close()
