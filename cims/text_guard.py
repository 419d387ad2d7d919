"""Text PostgreSQL cannot store is refused as input, with a message, before the server errors.

PostgreSQL text never holds a NUL character (U+0000); psycopg raises a DataError deep in a
flush, which a user would see as an unexpected error. One engine-wide hook turns any NUL in
a statement's parameters into ``InvalidText`` (a translated refusal) before it is sent, so
every form and service is covered and nothing is half-written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, event

NUL_KEY = "common.text_nul"


class InvalidText(ValueError):
    """Input text the database cannot store; ``problems`` are i18n keys."""

    def __init__(self, problems: list[str] | None = None) -> None:
        self.problems = problems or [NUL_KEY]
        super().__init__(", ".join(self.problems))


def without_nul(value: str) -> str:
    """``value`` with each NUL shown as U+FFFD: for look-ups (sign-in names, MRNs) that
    can never match a NUL and are recorded, so they refuse as "no match", not as an error."""
    return value.replace("\x00", "\ufffd")


def _holds_nul(row: object) -> bool:
    values: Any
    if isinstance(row, Mapping):
        values = row.values()
    elif isinstance(row, list | tuple):
        values = row
    else:
        return False
    return any(isinstance(value, str) and "\x00" in value for value in values)


def refuse_nul_parameters(
    conn: object,
    cursor: object,
    statement: str,
    parameters: object,
    context: object,
    executemany: bool,
) -> None:
    """``before_cursor_execute`` hook: raise InvalidText when a parameter holds a NUL."""
    rows = parameters if executemany and isinstance(parameters, list | tuple) else [parameters]
    if any(_holds_nul(row) for row in rows):
        raise InvalidText


def install() -> None:
    """Register the hook on every engine of this process (idempotent)."""
    if not event.contains(Engine, "before_cursor_execute", refuse_nul_parameters):
        event.listen(Engine, "before_cursor_execute", refuse_nul_parameters)
