"""Small helpers shared by the browser journeys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from playwright.sync_api import Page, expect


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
