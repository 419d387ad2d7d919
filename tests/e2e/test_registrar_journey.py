"""A registrar registers a new patient at the desk and books their first appointment."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, expect
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from cims.appointments.models import Appointment, Slot
from cims.base import utcnow
from cims.clock import to_local
from cims.org.models import Department
from cims.patients.models import Patient
from cims.patients.resident_id import check_digit
from journeys import choose, new_page, open_page, settled, sign_in, type_date

FIRST17 = "11010519790614" + "358"


def _free_place(url: str) -> tuple[str, dt.date, str]:
    """(department, day, time) of the earliest open place in Cardiology from tomorrow on."""
    engine = create_engine(url)
    with Session(engine) as db:
        starts, department = db.execute(
            select(Slot.starts_at, Department.name_en)
            .join(Department, Department.id == Slot.department_id)
            .where(
                Department.code == "CARD",
                Slot.starts_at > utcnow() + dt.timedelta(days=1),
                Slot.booked_count < Slot.capacity,
                Slot.status == "open",
            )
            .order_by(Slot.starts_at)
            .limit(1)
        ).one()
    engine.dispose()
    local = to_local(starts)
    assert local is not None
    return department, local.date(), f"{local:%H:%M}"


def test_registrar_registers_a_patient_and_books_their_first_visit(
    server: str, e2e_db: str, browser: Browser, totp_for: Callable[[str], str], shots: Path
) -> None:
    department, day, time = _free_place(e2e_db)
    page = new_page(browser, 1400, 1100)
    sign_in(page, server, "registrar", totp_for)

    open_page(page, server, "patient_register")
    page.get_by_role("textbox", name="Family name").fill("司马")
    page.get_by_role("textbox", name="Given name").fill("远航")
    choose(page, "Sex", "Female")  # as the resident ID says (its 17th digit is even)
    page.get_by_role("textbox", name="ID number").fill(FIRST17 + check_digit(FIRST17))
    page.get_by_role("textbox", name="Mobile").fill("13712345608")
    page.get_by_role("button", name="Register").click()
    registered = page.get_by_text(re.compile(r"Registered: MRN \d{10}\."))
    expect(registered).to_be_visible(timeout=30_000)
    mrn = re.search(r"\d{10}", registered.inner_text()).group(0)  # type: ignore[union-attr]

    open_page(page, server, "appointments_desk")
    page.get_by_role("textbox", name=re.compile("^Find the patient")).fill(mrn)
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_text(re.compile(f"^{mrn} · 司马远航"))).to_be_visible(timeout=30_000)
    settled(page)
    choose(page, "Department", department)
    type_date(page, "Day", day)
    page.get_by_role("heading", name="Book an appointment").click()
    settled(page)
    choose(page, "Time and doctor", re.compile(f"^{time} · "))
    page.get_by_role("textbox", name="Reason for the visit (optional)").fill("Palpitations")
    page.get_by_role("button", name="Book", exact=True).click()
    expect(page.get_by_text(re.compile("^Booked: 司马远航, "))).to_be_visible(timeout=30_000)
    settled(page)
    expect(
        page.get_by_text(re.compile(f"^{day.isoformat()} {time} · {department}"))
    ).to_be_visible()
    page.screenshot(path=str(shots / "registrar_booked.png"), full_page=True)
    page.context.close()

    engine = create_engine(e2e_db)
    with Session(engine) as db:
        booked = db.scalars(
            select(Appointment.status)
            .join(Patient, Patient.id == Appointment.patient_id)
            .where(Patient.mrn == mrn)
        ).all()
    engine.dispose()
    assert booked == ["booked"]
