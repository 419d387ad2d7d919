"""A session left idle longer than the timeout is signed out at its next click."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from journeys import IDLE_SECONDS, new_page, settled, sign_in


def _go(page: Page, title: str) -> None:
    """Follow a link of the sidebar menu (same browser session, no reload)."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()


def test_a_session_idle_past_the_timeout_is_signed_out(
    idle_server: str, browser: Browser, totp_for: Callable[[str], str], shots: Path
) -> None:
    page = new_page(browser, 1400, 900)
    sign_in(page, idle_server, "registrar", totp_for)
    settled(page)
    # Working keeps the session alive past the timeout counted from the sign-in.
    for title, heading in (
        ("Find a patient", "Find a patient"),
        ("Front desk", "Today's appointments"),
    ):
        page.wait_for_timeout(IDLE_SECONDS * 600)  # 60% of the timeout
        _go(page, title)
        expect(page.get_by_role("heading", name=heading).first).to_be_visible(timeout=30_000)
        settled(page)
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible()

    page.wait_for_timeout((IDLE_SECONDS + 3) * 1000)  # idle past the timeout
    _go(page, "Book appointments")
    expect(page.get_by_text("Your session timed out or was ended.")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    settled(page)
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_have_count(0)
    expect(page.get_by_role("heading", name="Book an appointment")).to_have_count(0)
    page.screenshot(path=str(shots / "idle_signed_out.png"), full_page=True)
    # A reload does not bring the session back: the cookie names an expired session.
    page.reload()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_have_count(0)
    page.context.close()
