"""An administrator reviews account access, verifies the audit chain and takes a backup."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, expect
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from cims.security.models import AccessReviewItem, User
from journeys import new_page, open_page, settled, sign_in


def _pending(page_text: str) -> int:
    found = re.search(r"(\d+) accounts still to decide", page_text)
    assert found is not None, "the access review shows no count of accounts to decide"
    return int(found.group(1))


def test_admin_reviews_access_verifies_the_audit_chain_and_backs_up(
    server: str, e2e_db: str, browser: Browser, totp_for: Callable[[str], str], shots: Path
) -> None:
    page = new_page(browser, 1400, 1100)
    sign_in(page, server, "admin", totp_for)

    # Access review: start one (if none is open) and certify the manager's access.
    open_page(page, server, "admin_reviews")
    start = page.get_by_role("button", name="Start a review")
    if start.count():
        start.click()
    count = page.get_by_text(re.compile(r"^\d+ accounts still to decide$"))
    expect(count).to_be_visible(timeout=30_000)
    settled(page)
    before = _pending(count.inner_text())
    row = page.get_by_test_id("stHorizontalBlock").filter(
        has=page.get_by_text("manager", exact=True)
    )
    expect(row).to_contain_text("Manager")
    row.get_by_role("button", name="Certify").click()
    expect(count).to_have_text(f"{before - 1} accounts still to decide", timeout=30_000)
    settled(page)
    expect(page.get_by_text("manager", exact=True)).to_have_count(0)
    page.screenshot(path=str(shots / "admin_access_review.png"), full_page=True)

    # The audit trail's hash chain, checked from end to end.
    open_page(page, server, "admin_audit")
    page.get_by_role("button", name="Verify now").click()
    expect(page.get_by_text(re.compile("^The chain is intact: [0-9,]+ rows"))).to_be_visible(
        timeout=60_000
    )
    settled(page)
    page.screenshot(path=str(shots / "admin_audit_chain.png"), full_page=True)

    # A backup now, into the server's backup folder (a test folder under var/).
    open_page(page, server, "admin_backups")
    page.get_by_role("button", name="Back up now").click()
    done = page.get_by_text(re.compile(r"^Backup finished: (cims-\S+\.cimsbak)$")).first
    expect(done).to_be_visible(timeout=60_000)
    settled(page)
    name = re.search(r"cims-\S+\.cimsbak", done.inner_text()).group(0)  # type: ignore[union-attr]
    expect(page.get_by_text(name, exact=True).first).to_be_visible()
    page.screenshot(path=str(shots / "admin_backup.png"), full_page=True)
    page.context.close()

    from cims.config import PROJECT_ROOT

    assert (PROJECT_ROOT / "var" / "e2e-backups" / name).stat().st_size > 0
    engine = create_engine(e2e_db)
    with Session(engine) as db:
        decision = db.scalar(
            select(AccessReviewItem.decision)
            .join(User, User.id == AccessReviewItem.user_id)
            .where(User.username == "manager")
            .order_by(AccessReviewItem.id.desc())
            .limit(1)
        )
    engine.dispose()
    assert decision == "certify"
