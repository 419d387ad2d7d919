"""A manager narrows the dashboard's date range and the figures follow."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, expect

from cims.config import PROJECT_ROOT
from journeys import type_date, wait_for_session_cookie


def test_manager_changes_the_date_range_and_the_charts_update(
    server: str, e2e_db: str, browser: Browser, totp_for: Callable[[str], str], shots: Path
) -> None:
    from analytics.snapshot import build_snapshot
    from cims.demo.seed import DEMO_LOGINS

    folder = PROJECT_ROOT / "var" / "e2e-analytics"  # where the e2e server reads it
    os.environ["CIMS_ANALYTICS_DIR"] = str(folder)
    build_snapshot(e2e_db, folder=folder)
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(server)
    page.get_by_role("textbox", name="Username").fill("manager")
    page.get_by_role("textbox", name="Password", exact=True).fill(DEMO_LOGINS["manager"][0])
    page.get_by_role("button", name="Sign in").click()
    box = page.get_by_role("textbox", name="6-digit code from your authenticator app")
    expect(box).to_be_visible(timeout=30_000)
    box.fill(totp_for("manager"))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible(timeout=30_000)
    wait_for_session_cookie(page)
    page.goto(f"{server}/manager_dashboard")
    visits = page.get_by_test_id("stMetric").filter(has_text="Visits").first
    expect(visits).to_be_visible(timeout=60_000)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
    before = visits.inner_text()

    def segment(part: str, which: str) -> int:
        box = page.get_by_role("spinbutton", name=f"{part}, Date range {which} date")
        return int(box.get_attribute("aria-valuenow") or 0)

    end = dt.date(segment("year", "end"), segment("month", "end"), segment("day", "end"))
    start = end - dt.timedelta(days=6)  # the last week instead of the last quarter
    type_date(page, "Date range start date", start)
    page.get_by_role("heading", name="Hospital dashboard").click()
    expect(visits).not_to_have_text(before, timeout=30_000)
    page.wait_for_timeout(1500)  # the charts redraw after the figures
    page.screenshot(path=str(shots / "dashboard_last_week.png"), full_page=True)
