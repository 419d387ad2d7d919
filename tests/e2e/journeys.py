"""Small helpers shared by the browser journeys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from re import Pattern

from playwright.sync_api import Browser, Page, expect

IDLE_SECONDS = 12  # the session idle timeout of the ``idle_server`` fixture


def wait_for_session_cookie(page: Page) -> None:
    """The cookie component acts in the browser after sign-in; wait until it has."""
    for _ in range(60):
        if any(c["name"] == "cims_session" for c in page.context.cookies()):
            return
        page.wait_for_timeout(250)
    raise AssertionError("the session cookie was never set")


def sign_in_with_totp(page: Page, server: str, username: str, totp: Callable[[str], str]) -> None:
    """Sign a demo staff member in through the real form: password, then the TOTP code."""
    from cims.demo.seed import DEMO_LOGINS

    page.goto(server)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password", exact=True).fill(DEMO_LOGINS[username][0])
    page.get_by_role("button", name="Sign in").click()
    box = page.get_by_role("textbox", name="6-digit code from your authenticator app")
    expect(box).to_be_visible(timeout=30_000)
    box.fill(totp(username))
    page.get_by_role("button", name="Verify").click()


def type_date(page: Page, label: str, day: dt.date) -> None:
    """Fill a segmented Streamlit date field (year, month, day spin buttons), then close it."""
    for segment, value in (("year", day.year), ("month", day.month), ("day", day.day)):
        page.get_by_role("spinbutton", name=f"{segment}, {label}").click()
        page.keyboard.type(f"{value:02d}")
    page.keyboard.press("Escape")  # close the calendar; leaving the field commits the date


# The app root says whether a script run is going on; elements of the previous run are
# marked stale until the new run has redrawn them; an element whose code the browser is
# still loading shows a skeleton in its place.
_SETTLED_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app !== null
        && app.getAttribute('data-test-script-state') === 'notRunning'
        && app.getAttribute('data-test-connection-state') === 'CONNECTED'
        && document.querySelector('[data-stale="true"]') === null
        && document.querySelector('[data-testid="stSkeleton"]') === null;
}"""


def new_page(browser: Browser, width: int = 1400, height: int = 1000) -> Page:
    """A page in a fresh browser context (its own cookies), patient with a busy machine."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(60_000)
    return context.new_page()


def settled(page: Page, timeout: float = 60_000) -> None:
    """Wait until the app is connected, no script run is going on and nothing is stale.

    Checked twice a moment apart: a click's rerun request reaches the server a little later.
    """
    page.wait_for_function(_SETTLED_JS, timeout=timeout)
    page.wait_for_timeout(150)
    page.wait_for_function(_SETTLED_JS, timeout=timeout)


def sign_in(page: Page, server: str, username: str, totp: Callable[[str], str] | None) -> None:
    """Sign a demo user in (staff with their TOTP code, patients with the password alone)
    and wait until the session cookie is set, so a later page address keeps them signed in."""
    from cims.demo.seed import DEMO_LOGINS

    if totp is None:
        page.goto(server)
        page.get_by_role("textbox", name="Username").fill(username)
        page.get_by_role("textbox", name="Password", exact=True).fill(DEMO_LOGINS[username][0])
        page.get_by_role("button", name="Sign in").click()
    else:
        sign_in_with_totp(page, server, username, totp)
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible(timeout=30_000)
    wait_for_session_cookie(page)


def sign_in_as(page: Page, server: str, username: str, password: str, code: str) -> None:
    """Sign in an account made by a test (not a demo login): password, then its TOTP code."""
    page.goto(server)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    box = page.get_by_role("textbox", name="6-digit code from your authenticator app")
    expect(box).to_be_visible(timeout=30_000)
    box.fill(code)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible(timeout=30_000)
    wait_for_session_cookie(page)


def choose(page: Page, label: str, option: str | Pattern[str], search: str | None = None) -> None:
    """Pick ``option`` in the Streamlit selectbox labelled ``label``.

    A long list draws only the options in view: ``search`` types into the box to filter it.
    """
    page.get_by_role("combobox", name=label).click()
    if search:
        page.keyboard.type(search)
    page.get_by_role("option", name=option).first.click()
    settled(page)


def open_page(page: Page, server: str, url_path: str) -> None:
    """Open a page by its address (the session cookie carries the sign-in) and let it draw."""
    page.goto(f"{server}/{url_path}")
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible(timeout=30_000)
    settled(page)


def arrival_today(database_url: str, *, last: bool) -> tuple[int, str, str]:
    """(patient id, MRN, name) of a patient booked today with the demo doctor in Endocrinology,
    not yet checked in, without allergies or vitals today: the first such one or the last.

    The demo clinic is in the morning, so later in the day (the scheduler marks missed
    bookings as no-shows) the front desk books one into a place starting in two minutes.
    """
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from cims.appointments.booking import book_appointment
    from cims.appointments.models import Appointment, Slot
    from cims.base import utcnow
    from cims.clock import day_bounds, local_today
    from cims.org.models import Department
    from cims.patients.models import Patient
    from cims.records.models import Allergy, Observation
    from cims.security.models import User
    from cims.security.signin import build_actor

    start, end = day_bounds(local_today())
    engine = create_engine(database_url)
    with Session(engine) as db:
        doctor = db.scalar(select(User).where(User.username == "doctor"))
        endo = db.scalar(select(Department.id).where(Department.code == "ENDO"))
        assert doctor is not None and endo is not None
        allergic = select(Allergy.patient_id).where(~Allergy.voided)
        measured = select(Observation.patient_id).where(
            Observation.category == "vital", Observation.observed_at >= start
        )
        ready = (
            select(Patient.id, Patient.mrn, Patient.full_name)
            .join(Appointment, Appointment.patient_id == Patient.id)
            .where(
                Appointment.doctor_id == doctor.id,
                Appointment.status == "booked",
                Appointment.scheduled_at >= start,
                Appointment.scheduled_at < end,
                Patient.id.not_in(allergic),
                Patient.id.not_in(measured),
            )
            .order_by(Appointment.scheduled_at, Appointment.id)
        )
        rows = db.execute(ready).all()
        if len(rows) < 2:  # too late for the demo clinic: book one into a new place now
            booked_today = select(Appointment.patient_id).where(
                Appointment.scheduled_at >= start, Appointment.scheduled_at < end
            )
            patient_id = db.scalar(
                select(Patient.id)
                .where(
                    Patient.id.not_in(allergic),
                    Patient.id.not_in(measured),
                    Patient.id.not_in(booked_today),
                    Patient.death_date.is_(None),
                    Patient.merged_into_id.is_(None),
                    ~Patient.voided,
                )
                .order_by(Patient.id.desc() if last else Patient.id)
                .limit(1)
            )
            starts = utcnow().replace(second=0, microsecond=0) + dt.timedelta(minutes=2)
            slot = Slot(
                doctor_id=doctor.id,
                department_id=endo,
                starts_at=starts,
                ends_at=starts + dt.timedelta(minutes=15),
                capacity=1,
            )
            db.add(slot)
            db.flush()
            registrar = db.scalar(select(User).where(User.username == "registrar"))
            assert registrar is not None and patient_id is not None
            book_appointment(
                session=db,
                actor=build_actor(db, registrar),
                patient_id=patient_id,
                slot_id=slot.id,
            )
            db.commit()
            rows = db.execute(ready).all()
    engine.dispose()
    patient_id, mrn, name = rows[-1] if last else rows[0]
    return int(patient_id), str(mrn), str(name)
