"""Registrar registers a patient and finds them; a doctor opens a clinic patient's summary."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, expect

from cims.patients.resident_id import check_digit
from journeys import sign_in_with_totp, wait_for_session_cookie


def test_registrar_registers_and_finds_then_doctor_reads_the_summary(
    server: str, browser: Browser, totp_for: Callable[[str], str], shots: Path
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    sign_in_with_totp(page, server, "registrar", totp_for)
    expect(page.get_by_text("Today's appointments")).to_be_visible(timeout=30_000)

    # Straight to the page's address: the session cookie carries the sign-in over.
    wait_for_session_cookie(page)
    page.goto(f"{server}/patient_register")
    expect(page.get_by_role("button", name="Register")).to_be_visible(timeout=30_000)
    first17 = "110101198503121" + "23"
    page.get_by_role("textbox", name="Family name").fill("欧阳")
    page.get_by_role("textbox", name="Given name").fill("测试")
    page.get_by_role("textbox", name="ID number").fill(first17 + check_digit(first17))
    page.get_by_role("textbox", name="Mobile").fill("13912340077")
    # The birth date is left empty: CIMS reads it from the resident ID.
    page.get_by_role("button", name="Register").click()
    registered = page.get_by_text(re.compile(r"Registered: MRN \d{10}\."))
    expect(registered).to_be_visible(timeout=30_000)
    mrn = re.search(r"\d{10}", registered.inner_text()).group(0)  # type: ignore[union-attr]

    page.goto(f"{server}/patient_search")
    search = page.get_by_role("textbox", name=re.compile("^MRN, ID number"))
    expect(search).to_be_visible(timeout=30_000)
    search.fill("oycs")  # pinyin initials of 欧阳测试
    search.press("Enter")
    # The results grid draws on a canvas; its cells exist for screen readers.
    expect(page.locator("[role=gridcell]", has_text=mrn).first).to_be_attached(timeout=30_000)
    page.screenshot(path=str(shots / "patient_search.png"), full_page=True)
    page.close()

    doctor = browser.new_page(viewport={"width": 1400, "height": 1000})
    sign_in_with_totp(doctor, server, "doctor", totp_for)
    expect(doctor.get_by_text("Today's clinic")).to_be_visible(timeout=30_000)
    wait_for_session_cookie(doctor)
    doctor.goto(f"{server}/patient_summary")
    expect(doctor.get_by_text("Overview")).to_be_visible(timeout=30_000)
    expect(doctor.get_by_text("Active problems:")).to_be_visible()
    doctor.wait_for_timeout(1500)
    doctor.screenshot(path=str(shots / "patient_summary.png"), full_page=True)
    doctor.close()
