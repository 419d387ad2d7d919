"""Every UI string exists in Simplified Chinese and English."""

from __future__ import annotations

import re
import string
from pathlib import Path

from cims.i18n import LANGUAGES, catalog, t
from cims.security.rbac import ROLES, Privilege

ROOT = Path(__file__).resolve().parent.parent
LITERAL_KEY = re.compile(r"""\btr?\(\s*["']([a-z_]+\.[a-z_.A-Z0-9]+)["']""")
# Keys built at run time: each family must be complete.
FAMILIES = {
    "appointment": ("booked", "checked_in", "seen", "cancelled", "no_show"),
    "method": ("cash", "card", "wechat", "alipay", "insurance"),
    "sex": ("M", "F", "U"),
    "role": tuple(ROLES),
    "privilege": tuple(p.value for p in Privilege),
    "outcome": ("success", "denied", "failure"),
    "incident": ("open", "contained", "closed", "lockdown_started", "lockdown_lifted"),
    "jobs": ("status_running", "status_succeeded", "status_failed"),
    "health": (
        "level_ok",
        "level_warn",
        "level_fail",
        "check_database",
        "check_migrations",
        "check_disk_data",
        "check_disk_backups",
        "check_backup",
        "check_audit_chain",
        "check_scheduler",
    ),
}


def _code_files() -> list[Path]:
    files = [ROOT / "app.py"]
    for folder in ("pages", "ui", "cims"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


def test_both_catalogs_have_the_same_keys() -> None:
    zh, en = set(catalog("zh")), set(catalog("en"))
    assert zh - en == set(), "missing in English"
    assert en - zh == set(), "missing in Chinese"


def test_every_key_used_in_code_exists() -> None:
    used = set()
    for path in _code_files():
        used.update(LITERAL_KEY.findall(path.read_text("utf-8")))
    assert used, "the scan found no keys at all"
    for language in LANGUAGES:
        missing = sorted(used - set(catalog(language)))
        assert missing == [], f"{language}: {missing}"


def test_runtime_key_families_are_complete() -> None:
    for language in LANGUAGES:
        for family, members in FAMILIES.items():
            for member in members:
                assert f"{family}.{member}" in catalog(language)


def test_placeholders_match_between_languages() -> None:
    fields = string.Formatter()
    for key, zh_text in catalog("zh").items():
        zh_fields = {f for _, f, _, _ in fields.parse(zh_text) if f}
        en_fields = {f for _, f, _, _ in fields.parse(catalog("en")[key]) if f}
        assert zh_fields == en_fields, key


def test_chinese_catalog_is_chinese() -> None:
    assert t("signin.heading", "zh") == "登录"
    assert t("signin.heading", "en") == "Sign in"
    assert t("common.today", "en", day="2026-01-02") == "Today: 2026-01-02"
    untranslated = [k for k, v in catalog("zh").items() if v == catalog("en")[k]]
    assert untranslated == []
