"""Push one hostile value through one surface and judge how it ended.

A case may end in exactly two ways: the value is stored (and reads back equal to the input
or its documented normalisation), or it is refused with the app's own error type whose
message keys exist in both locales, having changed no row. Anything else (a traceback, a
database error, a refusal after a write, a read-back that differs) is a failure.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from analytics.console import QueryFailed, QueryRefused
from analytics.service import InvalidSavedQuery
from cims.appointments.booking import BookingRefused
from cims.appointments.service import CheckInRefused
from cims.billing.catalogue import BillingRefused
from cims.engagement.errors import InvalidEngagement
from cims.i18n import catalog
from cims.interop.synthea import InvalidImport
from cims.patients.review import InvalidDecision
from cims.patients.schemas import InvalidPatient
from cims.patients.service import PossibleDuplicate
from cims.records.attachments import InvalidAttachment
from cims.records.beds import BedRefused
from cims.records.encounters import InvalidRecord
from cims.records.notes import InvalidNote
from cims.security.accounts import InvalidAccount
from cims.security.portal_accounts import PortalAccountRefused
from cims.text_guard import InvalidText

# The app's refusal types: each carries message keys the pages translate.
REFUSALS: tuple[type[BaseException], ...] = (
    InvalidPatient,
    InvalidNote,
    InvalidRecord,
    InvalidAttachment,
    InvalidEngagement,
    InvalidDecision,
    InvalidAccount,
    InvalidSavedQuery,
    BillingRefused,
    BookingRefused,
    CheckInRefused,
    BedRefused,
    PortalAccountRefused,
    QueryRefused,
    QueryFailed,
    PossibleDuplicate,
    InvalidText,
    InvalidImport,
)
REPORT = Path(__file__).resolve().parents[2] / "var" / "hostile-report.json"


def refusal_keys(refusal: BaseException) -> list[str]:
    """The message keys a refusal carries (whatever attribute its type uses)."""
    if isinstance(refusal, PossibleDuplicate):
        return ["patient.possible_duplicate"]
    for attribute in ("problems", "key", "reason"):
        value = getattr(refusal, attribute, None)
        if isinstance(value, list) and value:
            return [str(v) for v in value]
        if isinstance(value, str) and value:
            return [value]
    first = refusal.args[0] if refusal.args else None
    if not isinstance(first, str) or "." not in first or " " in first:
        return []
    return [PAGE_TRANSLATED.get(first, first)]


def is_refusal(error: BaseException) -> bool:
    """The app's refusal types, or a plain ValueError whose message is a translated key."""
    keys = refusal_keys(error)
    if not keys:
        return False
    if isinstance(error, REFUSALS):
        return True
    return isinstance(error, ValueError) and not missing_translations(keys)


def missing_translations(keys: list[str]) -> list[str]:
    """Keys absent from either locale (a refusal must read well in both languages)."""
    return [key for key in keys if key not in catalog("zh") or key not in catalog("en")]


def _writes(session: Session) -> dict[str, int]:
    """Rows inserted, updated or deleted so far in this transaction, per table."""
    rows = session.execute(
        text(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables"
            " WHERE n_tup_ins + n_tup_upd + n_tup_del > 0"
        )
    )
    return {str(name): int(count) for name, count in rows}


@dataclass
class Ledger:
    """Every case tried in this run, and the failures among them."""

    tried: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    by_surface: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    overlong_stored: set[str] = field(default_factory=set)  # accepted text over 10,000 chars

    def note(self, surface: str, outcome: str) -> None:
        """Count one finished case."""
        self.tried += 1
        self.outcomes[outcome] += 1
        self.by_surface.setdefault(surface, Counter())[outcome] += 1

    def summary(self) -> str:
        """One line for the terminal."""
        stored = self.outcomes.get("stored", 0)
        refused = sum(v for k, v in self.outcomes.items() if k.startswith("refused:"))
        return (
            f"hostile input: {self.tried} cases over {len(self.by_surface)} surfaces, "
            f"{stored} stored inertly, {refused} refused with a translated message, "
            f"{len(self.failures)} failures"
        )

    def write(self, path: Path = REPORT) -> None:
        """The report file: counts overall, by outcome and by surface."""
        path.parent.mkdir(parents=True, exist_ok=True)
        refused = Counter(
            {k.removeprefix("refused:"): v for k, v in self.outcomes.items() if k != "stored"}
        )
        report = {
            "tried": self.tried,
            "stored": self.outcomes.get("stored", 0),
            "refused": sum(refused.values()),
            "refused_by_reason": dict(refused.most_common()),
            "surfaces": {name: dict(c) for name, c in sorted(self.by_surface.items())},
            "overlong_accepted_by": sorted(self.overlong_stored),
            "failures": self.failures[:200],
        }
        path.write_text(json.dumps(report, ensure_ascii=False, indent=1), "utf-8")


LEDGER = Ledger()
_CHECKPOINT: dict[Session, dict[str, int]] = {}
# Plain ValueErrors whose key a page maps to its own message (page file and line in the
# comment); the mapped key must exist in both locales.
PAGE_TRANSLATED = {
    "break_glass.reason_too_short": "summary.reason_too_short",  # pages/patient_summary.py
}


def checkpoint(session: Session) -> None:
    """Mark the end of a case's set-up: only writes after this count against a refusal."""
    with session.no_autoflush:
        session.flush()
        _CHECKPOINT[session] = _writes(session)


def attempt(
    session: Session,
    surface: str,
    value: object,
    call: Callable[[], Any],
    check: Callable[[Any], str | None] | None = None,
) -> str:
    """Run ``call`` in a savepoint that is always rolled back; returns the outcome.

    ``check`` receives the call's result after a success and returns a complaint (or None)
    when the stored value does not read back as expected.
    """
    savepoint = session.begin_nested()
    _CHECKPOINT[session] = _writes(session)
    outcome = "stored"
    try:
        result = call()
        session.flush()
        complaint = check(result) if check else None
        if complaint:
            _fail(surface, value, complaint)
            outcome = "failed"
    except Exception as error:
        keys = refusal_keys(error)
        if not is_refusal(error):  # a traceback the user would see: what this corpus hunts
            _fail(surface, value, f"{type(error).__name__}: {str(error)[:300]}")
            outcome = "failed"
        else:
            before = _CHECKPOINT.get(session, {})
            with session.no_autoflush:
                after = _writes(session) if session.is_active else before
            changed = {t: n - before.get(t, 0) for t, n in after.items() if n != before.get(t, 0)}
            if missing_translations(keys):
                _fail(surface, value, f"refusal without translated keys: {keys!r}")
                outcome = "failed"
            elif changed:
                _fail(surface, value, f"refused ({keys}) after writing rows {changed}")
                outcome = "failed"
            else:
                outcome = "refused:" + keys[0]
    finally:
        _CHECKPOINT.pop(session, None)
        if savepoint.is_active or session.get_nested_transaction() is savepoint:
            savepoint.rollback()
        session.expire_all()
    LEDGER.note(surface, outcome)
    if outcome == "stored" and isinstance(value, str) and len(value) > 10_000:
        LEDGER.overlong_stored.add(surface)
    return outcome


def _fail(surface: str, value: object, complaint: str) -> None:
    shown = repr(value)
    LEDGER.failures.append(f"{surface}: {shown[:80]} -> {complaint}")


def reads_back(expected: str, actual: object, *, collapse: bool = False) -> str | None:
    """None when ``actual`` is the input or its documented normalisation (stripped)."""
    candidates = {expected, expected.strip()}
    if collapse:
        candidates.add(" ".join(expected.split()))
    if actual in candidates:
        return None
    return f"read back {str(actual)[:60]!r} for input {expected[:60]!r}"


def assert_clean(surface_prefix: str) -> None:
    """Fail the test when any case of surfaces starting with ``surface_prefix`` failed."""
    mine = [f for f in LEDGER.failures if f.startswith(surface_prefix)]
    assert not mine, f"{len(mine)} hostile cases failed:\n" + "\n".join(mine[:25])
