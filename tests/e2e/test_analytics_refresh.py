"""Data staff refresh the analytics snapshot: the first refresh copies everything, the next
copies only what changed, and the page says which it did."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, expect

from journeys import new_page, open_page, settled, sign_in


def test_analyst_refreshes_the_snapshot_and_sees_what_was_copied(
    server: str, browser: Browser, totp_for: Callable[[str], str], shots: Path
) -> None:
    page = new_page(browser, 1400, 1000)
    sign_in(page, server, "analyst", totp_for)
    open_page(page, server, "analytics_refresh")
    full = page.get_by_text("Copy everything again")
    expect(full).to_be_visible()
    full.click()  # whatever an earlier test left, this one starts from a full copy
    settled(page)
    page.get_by_role("button", name="Refresh now").click()
    expect(page.get_by_text("Snapshot refreshed")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("This refresh: a full copy")).to_be_visible()

    full.click()  # back to the routine refresh
    settled(page)
    page.get_by_role("button", name="Refresh now").click()
    changes = page.get_by_text("This refresh: only the changes since the last refresh")
    expect(changes).to_be_visible(timeout=120_000)
    settled(page)
    page.screenshot(path=str(shots / "analytics_refresh.png"), full_page=True)
    page.context.close()
