"""Set-based building blocks of the Synthea import: resolve, reject, assign ids, link.

Every step is one SQL statement over a whole staging table. Staged rows carry their file
line, a source key (``src``), a ``reject`` reason (first one wins) and a ``skip`` flag for
rows an earlier import already brought in (found through ``import_links``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

SYSTEM: Final = "synthea"
REJECT_CAP: Final = 200  # stored rejected rows per file; counts are always complete

DATE_RE: Final = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"
TIME_RE: Final = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$"
)
NUM_RE: Final = r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$"


def ts(column: str) -> str:
    """SQL for a Synthea date or timestamp column as timestamptz (dates at 00:00 UTC)."""
    return (
        f"(CASE WHEN length({column}) = 10 THEN ({column}::date)::timestamp AT TIME ZONE 'UTC'"
        f" ELSE {column}::timestamptz END)"
    )


def day(column: str) -> str:
    """SQL for the date part of a Synthea date or timestamp column."""
    return f"(left({column}, 10)::date)"


@dataclass
class Context:
    """The state of one import run: cursor, run id, actor and the report being built."""

    cursor: Any
    run_id: int
    actor_id: int | None
    counts: dict[str, int] = field(default_factory=dict)
    read: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rejected_counts: dict[str, int] = field(default_factory=dict)

    def execute(self, statement: str, params: dict[str, Any] | None = None) -> int:
        """Run one statement; returns the affected row count."""
        self.cursor.execute(statement, params or {})
        return int(self.cursor.rowcount or 0)

    def added(self, target: str, rows: int) -> None:
        """Count rows added to a CIMS table."""
        self.counts[target] = self.counts.get(target, 0) + rows


def add_column(ctx: Context, table: str, column: str, kind: str = "bigint") -> None:
    """Add a work column to a staging table."""
    ctx.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")


def resolve(ctx: Context, table: str, ref: str, source_table: str, into: str) -> None:
    """Fill ``into`` with the CIMS id that ``ref`` (a Synthea id) was imported as."""
    add_column(ctx, table, into)
    ctx.execute(
        f"UPDATE {table} s SET {into} = l.target_id FROM import_links l"
        f" WHERE l.source_system = %(system)s AND l.source_table = %(source)s"
        f" AND l.source_id = s.{ref}",
        {"system": SYSTEM, "source": source_table},
    )


def reject(ctx: Context, table: str, condition: str, reason: str) -> None:
    """Mark rows matching ``condition`` as rejected (when not rejected already)."""
    ctx.execute(
        f"UPDATE {table} SET reject = %(reason)s WHERE reject IS NULL AND ({condition})",
        {"reason": reason},
    )


def require(ctx: Context, table: str, column: str) -> None:
    """Reject rows where a required column is empty."""
    reject(ctx, table, f"{column} IS NULL", f"{column.upper()} missing")


def require_time(ctx: Context, table: str, column: str, *, optional: bool = False) -> None:
    """Reject rows whose date/time column is missing (unless optional) or malformed."""
    if not optional:
        require(ctx, table, column)
    reject(ctx, table, f"{column} IS NOT NULL AND {column} !~ '{TIME_RE}'", f"bad {column.upper()}")


def require_number(ctx: Context, table: str, column: str) -> None:
    """Reject rows whose numeric column is present but not a number."""
    reject(ctx, table, f"{column} IS NOT NULL AND {column} !~ '{NUM_RE}'", f"bad {column.upper()}")


def reject_duplicate_keys(ctx: Context, table: str) -> None:
    """A source key seen twice in one file: the later rows are rejected."""
    ctx.execute(
        f"UPDATE {table} t SET reject = %(reason)s FROM (SELECT ctid AS row_ref,"
        f" row_number() OVER (PARTITION BY src ORDER BY line) AS seen FROM {table}) d"
        " WHERE t.ctid = d.row_ref AND d.seen > 1 AND t.reject IS NULL",
        {"reason": "duplicate Id in file"},
    )


def assign_ids(ctx: Context, table: str, source_table: str, target: str, into: str) -> None:
    """Skip rows already imported; give every new, valid row an id from ``target``'s sequence."""
    ctx.execute(
        f"UPDATE {table} s SET skip = true WHERE reject IS NULL AND EXISTS ("
        f"SELECT 1 FROM import_links l WHERE l.source_system = %(system)s"
        f" AND l.source_table = %(source)s AND l.source_id = s.src)",
        {"system": SYSTEM, "source": source_table},
    )
    add_column(ctx, table, into)
    ctx.execute(
        f"UPDATE {table} SET {into} = nextval(pg_get_serial_sequence('{target}', 'id'))"
        f" WHERE reject IS NULL AND NOT skip"
    )


def link(ctx: Context, table: str, source_table: str, target: str, id_column: str) -> int:
    """Record which CIMS row each new staged row became; returns the rows linked."""
    return ctx.execute(
        "INSERT INTO import_links (source_system, source_table, source_id, target_table,"
        f" target_id, run_id) SELECT %(system)s, %(source)s, src, %(target)s, {id_column},"
        f" %(run)s FROM {table} WHERE {id_column} IS NOT NULL",
        {"system": SYSTEM, "source": source_table, "target": target, "run": ctx.run_id},
    )


def insert(ctx: Context, target: str, columns: str, select: str, params: dict[str, Any]) -> None:
    """INSERT INTO target (columns) SELECT ...; counts the rows added."""
    rows = ctx.execute(f"INSERT INTO {target} ({columns}) {select}", params)
    ctx.added(target, rows)


def collect(ctx: Context, stem: str, table: str) -> None:
    """Move the staged file's rejections and skips into the report."""
    ctx.cursor.execute(
        f"SELECT count(*) FILTER (WHERE reject IS NOT NULL),"
        f" count(*) FILTER (WHERE skip), count(*) FROM {table}"
    )
    rejected, skipped, read = ctx.cursor.fetchone()
    ctx.read[stem] = ctx.read.get(stem, 0) + int(read)
    ctx.skipped[stem] = ctx.skipped.get(stem, 0) + int(skipped)
    if rejected:
        ctx.rejected_counts[stem] = ctx.rejected_counts.get(stem, 0) + int(rejected)
        ctx.cursor.execute(
            f"SELECT line, reject FROM {table} WHERE reject IS NOT NULL ORDER BY line LIMIT %s",
            (REJECT_CAP,),
        )
        ctx.rejected.setdefault(stem, []).extend(
            {"line": line, "reason": reason} for line, reason in ctx.cursor.fetchall()
        )
