"""Two app processes on different ports share sessions, sign-outs and lockouts."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Browser, Page, expect

from journeys import wait_for_session_cookie


def _sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(base)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_session_from_one_process_works_in_the_other_and_ends_in_both(
    server: str, second_server: str, browser: Browser, totp_for: Callable[[str], str]
) -> None:
    from cims.demo.seed import DEMO_LOGINS

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, server, "registrar", DEMO_LOGINS["registrar"][0])
    code_box = page.get_by_role("textbox", name="6-digit code from your authenticator app")
    expect(code_box).to_be_visible(timeout=30_000)
    code_box.fill(totp_for("registrar"))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=30_000)
    wait_for_session_cookie(page)
    # The same browser opens the other process: the cookie names a live session there too.
    other = context.new_page()
    other.goto(second_server)
    expect(other.get_by_role("button", name="Sign out")).to_be_visible(timeout=30_000)
    other.get_by_role("button", name="Sign out").click()
    expect(other.get_by_text("You have signed out.")).to_be_visible(timeout=30_000)
    # Signed out on one process is signed out on both.
    page.reload()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    context.close()


def test_a_lockout_earned_on_one_process_holds_on_the_other(
    server: str, second_server: str, browser: Browser
) -> None:
    from cims.demo.seed import DEMO_LOGINS

    context = browser.new_context()
    page = context.new_page()
    refused = re.compile("Wrong username or password|locked")
    for _ in range(5):
        _sign_in(page, server, "analyst", "not-the-password-at-all")
        expect(page.get_by_text(refused)).to_be_visible(timeout=30_000)
    other = context.new_page()
    _sign_in(other, second_server, "analyst", DEMO_LOGINS["analyst"][0])
    expect(other.get_by_text("locked", exact=False)).to_be_visible(timeout=30_000)
    code_box = other.get_by_role("textbox", name="6-digit code from your authenticator app")
    expect(code_box).to_have_count(0)
    context.close()
