"""A visitor who is not signed in gets only the sign-in form at every page's address."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from cims.config import PROJECT_ROOT
from journeys import new_page, settled

# st.navigation names each page by its file name under pages/.
PAGE_PATHS = sorted(path.stem for path in (PROJECT_ROOT / "pages").glob("*.py"))
TABS = 4


def _sign_in_screen(page: Page) -> str:
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    settled(page)
    return str(page.get_by_test_id("stMain").inner_text())


def test_every_page_address_shows_a_signed_out_visitor_only_the_sign_in(
    server: str, browser: Browser
) -> None:
    assert len(PAGE_PATHS) > 30  # the page files were found
    page = new_page(browser, 1400, 900)
    context = page.context
    page.goto(server)
    expected = _sign_in_screen(page)
    assert "Username" in expected and "Password" in expected
    # A few tabs at once: most of a visit is the browser loading the app, not the server.
    tabs = [page, *(context.new_page() for _ in range(TABS - 1))]
    seen = []
    for start in range(0, len(PAGE_PATHS), TABS):
        batch = list(zip(tabs, PAGE_PATHS[start : start + TABS], strict=False))
        for tab, path in batch:
            tab.goto(f"{server}/{path}", wait_until="commit")
        for tab, path in batch:
            _sign_in_screen(tab)
            # Nothing but the sign-in screen itself: the same words as at the front door,
            # no menu of pages, no error box.
            expect(tab.get_by_test_id("stMain"), path).to_have_text(expected, use_inner_text=True)
            expect(tab.get_by_test_id("stSidebarNav")).to_have_count(0)
            expect(tab.get_by_test_id("stException")).to_have_count(0)
            seen.append(path)
    given = {cookie["name"] for cookie in context.cookies()}
    assert "cims_session" not in given, "a signed-out visit was given a session cookie"
    context.close()
    assert seen == PAGE_PATHS
