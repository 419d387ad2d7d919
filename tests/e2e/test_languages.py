"""Every page each role's navigation offers renders in English and in Chinese: no exception
box, no error message, and no message key shown in place of its text."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from cims.i18n import catalog
from journeys import choose, new_page, settled, sign_in

# Every catalog key starts with one of these words; a missing key shows as itself
# (cims/i18n.t), e.g. "nav.cashier" or "models.error.unknown_model".
NAMESPACES = sorted({key.split(".")[0] for key in catalog("en")}, key=len, reverse=True)
RAW_KEY = re.compile(
    r"(?<![\w.@/-])(?:" + "|".join(map(re.escape, NAMESPACES)) + r")(?:\.[a-z0-9_]+)+(?![\w@/-])"
)
# What a page shows when it fails or refuses: never expected on a page the menu offers.
FAILURES = {
    lang: [
        catalog(lang)["common.unexpected"].split("{")[0].strip(),
        catalog(lang)["common.access_denied"],
    ]
    for lang in ("en", "zh")
}
LANGUAGE_LABEL = {"en": "English", "zh": "简体中文"}
ROLES = ("registrar", "nurse", "doctor", "finance", "manager", "analyst", "admin", "patient")

# The page's own words: every text node, but neither the body cells of a data grid nor
# code blocks, which hold data (audit actions such as "records.view_worklist").
_PAGE_TEXT_JS = """() => {
    const skip = '[role="gridcell"], [data-testid="stCode"], script, style, noscript';
    const root = document.querySelector('[data-testid="stApp"]');
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const parts = [];
    while (walker.nextNode()) {
        const node = walker.currentNode;
        if (node.parentElement === null || node.parentElement.closest(skip) === null) {
            parts.push(node.nodeValue);
        }
    }
    return parts.join('\\n');
}"""


def _main_text(page: Page) -> str:
    return str(page.get_by_test_id("stMain").inner_text())


def _nav_links(page: Page) -> Locator:
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav).to_be_visible(timeout=30_000)
    more = nav.get_by_test_id("stSidebarNavViewButton")
    if more.count() and more.inner_text().startswith("View ") and "less" not in more.inner_text():
        more.click()
    return nav.get_by_test_id("stSidebarNavLink")


def _follow(page: Page, link: Locator) -> tuple[str, str]:
    """Click a menu link; the page's address and the text it showed before."""
    href, before = str(link.get_attribute("href")), _main_text(page)
    link.click()
    return href, before


def _drawn(page: Page, href: str, before: str) -> None:
    """Wait until the page at ``href`` has finished drawing (its text is no longer the old)."""
    page.wait_for_url(href, timeout=30_000)
    for _ in range(600):
        settled(page)
        if _main_text(page) != before:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"{href} never finished drawing")


def _problems(page: Page, lang: str) -> list[str]:
    found = []
    if page.get_by_test_id("stException").count():
        found.append("an exception box")
    text = str(page.evaluate(_PAGE_TEXT_JS))
    found += [f"raw key {key!r}" for key in sorted(set(RAW_KEY.findall(text)))]
    found += [f"message {message!r}" for message in FAILURES[lang] if message in text]
    return found


def _menu(username: str, lang: str) -> list[str]:
    """The page titles the app's navigation offers this demo user's role, in order."""
    from cims.demo.seed import DEMO_LOGINS
    from cims.security.rbac import Actor
    from ui.shell import pages_for

    role = DEMO_LOGINS[username][1]
    actor = Actor(user_id=0, username=username, display_name="", roles=(role,))
    return [catalog(lang)[spec.title_key] for spec in pages_for(actor)]


def test_the_checks_catch_a_raw_key_and_an_error_message() -> None:
    text = "Cashier\nnav.finance_settlement\nrecords.\n{}\nfile risk-booked_next_7d.csv"
    assert RAW_KEY.findall(text.format("")) == ["nav.finance_settlement"]
    assert RAW_KEY.findall("models.error.no_active_model") == ["models.error.no_active_model"]
    assert not RAW_KEY.findall("Backup folder: /work/main/var/e2e-backups, 2.0 MB, e.g. x.y")
    assert FAILURES["zh"][0] and FAILURES["en"][0].startswith("Something unexpected")


@pytest.mark.parametrize("username", ROLES)
def test_every_page_of_the_role_renders_in_both_languages(
    username: str, server: str, browser: Browser, totp_for: Callable[[str], str]
) -> None:
    english = new_page(browser)
    sign_in(english, server, username, None if username == "patient" else totp_for)
    settled(english)
    # A second tab of the same signed-in browser, switched to Chinese; both walk the menu
    # side by side, so one tab's page draws while the other's is checked.
    chinese = english.context.new_page()
    chinese.goto(server)
    expect(chinese.get_by_role("button", name="Sign out", exact=True)).to_be_visible()
    settled(chinese)
    tabs = {"en": english, "zh": chinese}
    choose(chinese, "语言 / Language", LANGUAGE_LABEL["zh"])
    links = {lang: _nav_links(tab) for lang, tab in tabs.items()}
    for lang, tab in tabs.items():  # the menu itself is in each tab's language
        expect(links[lang]).to_have_count(len(_menu(username, lang)))
        expect(links[lang]).to_contain_text(_menu(username, lang))
        settled(tab)

    problems: list[str] = []
    for i in range(len(_menu(username, "en"))):
        opened = {
            lang: _follow(tab, links[lang].nth(i))
            for lang, tab in tabs.items()
            if tab.url != links[lang].nth(i).get_attribute("href")
        }
        for lang, tab in tabs.items():
            href = str(links[lang].nth(i).get_attribute("href"))
            if lang in opened:
                _drawn(tab, *opened[lang])
            problems += [f"{lang} {href}: {problem}" for problem in _problems(tab, lang)]
    english.context.close()
    assert not problems, "\n".join(problems)
