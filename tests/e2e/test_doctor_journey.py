"""A doctor signs in with password and TOTP in a real browser and sees today's clinic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, expect

from journeys import wait_for_session_cookie


def test_first_request_to_a_page_url_signed_out_sees_only_the_sign_in(
    server: str, browser: Browser
) -> None:
    # Runs first: the very first request a fresh server gets is for a page URL.
    page = browser.new_page()
    page.goto(f"{server}/doctor_home")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Today's clinic")).to_have_count(0)
    page.close()


def test_doctor_signs_in_with_totp_and_sees_home(
    server: str, browser: Browser, totp_for: Callable[[str], str], shots: Path
) -> None:
    from cims.demo.seed import DEMO_LOGINS

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(server)
    page.get_by_role("textbox", name="Username").fill("doctor")
    page.get_by_role("textbox", name="Password", exact=True).fill(DEMO_LOGINS["doctor"][0])
    page.get_by_role("button", name="Sign in").click()
    code_box = page.get_by_role("textbox", name="6-digit code from your authenticator app")
    expect(code_box).to_be_visible(timeout=30_000)
    code_box.fill(totp_for("doctor"))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("Good day, Dr")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Today's clinic")).to_be_visible()
    page.wait_for_timeout(1500)  # let the tables finish drawing before the picture
    page.screenshot(path=str(shots / "doctor_home.png"), full_page=True)
    # A reload keeps the doctor signed in: the cookie names a live server-side session.
    wait_for_session_cookie(page)
    page.reload()
    expect(page.get_by_text("Today's clinic")).to_be_visible(timeout=30_000)
    cookie = next(c for c in page.context.cookies() if c["name"] == "cims_session")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible(timeout=30_000)
    page.reload()  # the revoked session does not come back with a reload
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    # Replaying the old cookie (as a thief would) is refused: its session row is revoked.
    page.context.add_cookies([cookie])
    page.reload()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Today's clinic")).to_have_count(0)
    page.close()
