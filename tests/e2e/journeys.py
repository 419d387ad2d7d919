"""Small helpers shared by the browser journeys."""

from __future__ import annotations

from playwright.sync_api import Page


def wait_for_session_cookie(page: Page) -> None:
    """The cookie component acts in the browser after sign-in; wait until it has."""
    for _ in range(60):
        if any(c["name"] == "cims_session" for c in page.context.cookies()):
            return
        page.wait_for_timeout(250)
    raise AssertionError("the session cookie was never set")
