"""Set-based building blocks of the Synthea import: resolve, reject, assign ids, link.

Every step is one SQL statement over a whole staging table. Staged rows carry their file
line, a source key (``src``), a ``reject`` reason (first one wins) and a ``skip`` flag for
rows an earlier import already brought in (found through ``import_links``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
# Rows that keep their source key on themselves (see ``check_keyed``): the key columns,
# their values in an INSERT ... SELECT from the staging table, and the rows to add.
KEY_COLUMNS: Final = "source_system, source_id"
KEY_VALUES: Final = "%(system)s, src"
NEW_ROWS: Final = "reject IS NULL AND NOT skip"
# A later row whose key an earlier row of the same file already had.
DUPLICATE: Final = "line > first_line"


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
    """The state of one import run: cursor, run id, actor and the report being built.

    ``cursor`` is the import's own transaction. A stager thread (see ``synthea.py``) checks
    files on a connection of its own: inside ``stager()`` every step run by that thread
    uses that cursor, and makes its work tables UNLOGGED instead of TEMP (another
    connection must read them).
    """

    main: Any
    run_id: int
    actor_id: int | None
    counts: dict[str, int] = field(default_factory=dict)
    read: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rejected_counts: dict[str, int] = field(default_factory=dict)
    # True when per-row foreign-key triggers may be skipped (see ``bulk_insert``).
    set_based_keys: bool = False
    plans: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    # Linked source table -> (staging table, new-id column) of files staged in this run.
    maps: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Staging table -> (read, skipped, rejected, rejected rows) once its checks are done.
    verdicts: dict[str, tuple[int, int, int, list[dict[str, Any]]]] = field(default_factory=dict)
    # Staging table -> its resolved columns that point at rows of earlier imports somewhere.
    earlier: dict[str, set[str]] = field(default_factory=dict)
    # PostgreSQL 16+: ``pg_input_is_valid`` checks values without regular expressions.
    input_checks: bool = False
    _foreign_keys: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    _thread: threading.local = field(default_factory=threading.local)

    @property
    def cursor(self) -> Any:
        """The cursor of the calling thread: the stager's inside ``stager()``, else the main."""
        return getattr(self._thread, "cursor", self.main)

    @property
    def kind(self) -> str:
        """How the calling thread creates work tables: TEMP, or UNLOGGED for the stager."""
        return getattr(self._thread, "kind", "TEMP")

    @contextmanager
    def stager(self, cursor: Any) -> Iterator[None]:
        """Within: this thread's steps run on ``cursor`` with UNLOGGED work tables."""
        self._thread.cursor, self._thread.kind = cursor, "UNLOGGED"
        try:
            yield
        finally:
            del self._thread.cursor, self._thread.kind

    def execute(self, statement: str, params: dict[str, Any] | None = None) -> int:
        """Run one statement; returns the affected row count."""
        self.cursor.execute(statement, params or {})
        return int(self.cursor.rowcount or 0)

    def added(self, target: str, rows: int) -> None:
        """Count rows added to a CIMS table."""
        self.counts[target] = self.counts.get(target, 0) + rows


# The checks of a staged file are collected first and then run as ONE statement
# (``apply_checks``), so a file is read once however many rules it has.
Check = tuple[str, ...]


def _plan(ctx: Context, table: str) -> list[Check]:
    return ctx.plans.setdefault(table, [])


def resolve(ctx: Context, table: str, ref: str, source_table: str, into: str) -> None:
    """Plan: fill ``into`` with the CIMS id that ``ref`` (a Synthea id) was imported as."""
    _plan(ctx, table).append(("ref", ref, source_table, into))


def reject(ctx: Context, table: str, condition: str, reason: str) -> None:
    """Plan: reject rows matching ``condition`` (the first failed check gives the reason)."""
    _plan(ctx, table).append(("rule", condition, reason))


def require(ctx: Context, table: str, column: str) -> None:
    """Plan: reject rows where a required column is empty."""
    reject(ctx, table, f"{column} IS NULL", f"{column.upper()} missing")


def require_time(ctx: Context, table: str, column: str, *, optional: bool = False) -> None:
    """Plan: reject rows whose date/time column is missing (unless optional) or malformed."""
    if not optional:
        require(ctx, table, column)
    reason = f"bad {column.upper()}"
    if ctx.input_checks:
        # PostgreSQL 16 asks the type itself (a quarter of the regular expression's cost);
        # the pattern keeps its lenient words ("today", "epoch") out.
        reject(
            ctx,
            table,
            f"{column} IS NOT NULL AND NOT ({column} LIKE '____-__-__%%'"
            f" AND pg_input_is_valid({column}, 'timestamptz'))",
            reason,
        )
        return
    reject(ctx, table, f"{column} IS NOT NULL AND {column} !~ '{TIME_RE}'", reason)
    # The pattern lets 31 February through; the cast would then fail the whole import.
    reject(
        ctx,
        table,
        f"{column} IS NOT NULL AND (substr({column}, 1, 4) = '0000'"
        f" OR substr({column}, 9, 2)::int > extract(day FROM make_date(substr({column}, 1, 4)::int,"
        f" substr({column}, 6, 2)::int, 1) + interval '1 month - 1 day'))",
        reason,
    )


def require_number(ctx: Context, table: str, column: str) -> None:
    """Plan: reject rows whose numeric column is present but not a number."""
    bad = f"{column} !~ '{NUM_RE}'"
    if ctx.input_checks:
        # NaN and (-)Infinity are numeric input too, and all of them have an "n".
        bad = f"NOT (pg_input_is_valid({column}, 'numeric') AND strpos(lower({column}), 'n') = 0)"
    reject(ctx, table, f"{column} IS NOT NULL AND {bad}", f"bad {column.upper()}")


def reject_duplicate_keys(ctx: Context, table: str) -> None:
    """Plan: a source key seen twice in one file: the later rows are rejected."""
    reject(ctx, table, DUPLICATE, "duplicate Id in file")


def next_id(ctx: Context, target: str) -> str:
    """SQL drawing the next id of ``target``'s own sequence."""
    ctx.cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", (target,))
    return f"nextval('{ctx.cursor.fetchone()[0]}'::regclass)"


# Files whose rows keep their key on the CIMS row (``check_keyed``) although later files
# refer to them: a reference outside this run's export is looked up there, by patient.
KEYED_SOURCES: Final = {"encounters": "encounters"}


def _resolved(
    ctx: Context, n: int, ref: str, source: str, into: str, patient: str | None
) -> tuple[str, str]:
    """(join, expression) filling ``into`` for the n-th reference; also ``<into>_new``.

    A file staged earlier in this run (``ctx.maps``) answers from its staging table, by
    hashing: the row's new id, or the id an earlier import gave it. A key it does not have
    (a row of another export) is looked up one probe each: in ``import_links``, or for
    ``KEYED_SOURCES`` on the CIMS rows of the already resolved ``patient``.
    """
    if source in KEYED_SOURCES:
        if patient is None:
            raise ValueError(f"{source} references are resolved after the patient")
        looked_up = (
            f"(SELECT x.id FROM {KEYED_SOURCES[source]} x WHERE x.patient_id = {patient}"
            f" AND x.source_system = %(system)s AND x.source_id = s.{ref} LIMIT 1)"
        )
    else:
        looked_up = (
            f"(SELECT x.target_id FROM import_links x WHERE x.source_system = %(system)s"
            f" AND x.source_table = %(ref{n})s AND x.source_id = s.{ref})"
        )
    if source not in ctx.maps:
        return "", looked_up
    staged, id_column = ctx.maps[source]
    join = (
        f" LEFT JOIN (SELECT src AS key, coalesce({id_column}, linked_id) AS id,"
        f" {id_column} IS NOT NULL AS new FROM {staged} WHERE reject IS NULL) m{n}"
        f" ON m{n}.key = s.{ref}"
    )
    return join, f"coalesce(m{n}.id, {looked_up})"


def apply_checks(
    ctx: Context,
    table: str,
    *,
    source_table: str | None = None,
    ids: dict[str, str] | None = None,
) -> None:
    """Run the planned checks of ``table`` in one pass, rebuilding it with the verdicts.

    Adds ``reject`` (the first failed rule's reason), each resolved reference (with
    ``<column>_new``: it points at a row this run added), ``skip`` (valid but already
    imported under ``source_table``, with ``linked_id``) and, for every valid new row, each
    column of ``ids`` (column -> SQL giving its new id, e.g. ``nextval(...)``).
    """
    plan = ctx.plans.pop(table, [])
    refs = [check for check in plan if check[0] == "ref"]
    rules = [check for check in plan if check[0] == "rule"]
    params: dict[str, Any] = {"system": SYSTEM, "source": source_table}
    joins, resolved = [], []
    expressions: dict[str, str] = {}
    for n, (_kind, ref, source, into) in enumerate(refs):
        params[f"ref{n}"] = source
        join, expression = _resolved(ctx, n, ref, source, into, expressions.get("patient_id"))
        expressions[into] = expression
        joins.append(join)
        new = f"coalesce(m{n}.new, false)" if join else "false"
        resolved.append(f", {expression} AS {into}, {new} AS {into}_new")
    if any(rule[1] == DUPLICATE for rule in rules):
        # Keys seen twice are rare: find them by hashing, not by sorting the whole file.
        joins.append(
            f" LEFT JOIN (SELECT src, min(line) AS first_line FROM {table} GROUP BY src"
            " HAVING count(*) > 1) twice ON twice.src = s.src"
        )
        resolved.append(", twice.first_line")
    if source_table:
        joins.append(
            " LEFT JOIN import_links done ON done.source_system = %(system)s"
            " AND done.source_table = %(source)s AND done.source_id = s.src"
        )
        resolved.append(", done.target_id AS linked_id, done.target_id IS NOT NULL AS linked")
    else:
        resolved.append(", NULL::bigint AS linked_id, false AS linked")
    verdict = "NULL::text"
    if rules:
        cases = []
        for n, (_kind, condition, reason) in enumerate(rules):
            params[f"reason{n}"] = reason
            cases.append(f" WHEN {condition} THEN %(reason{n})s")
        verdict = f"CASE{''.join(cases)} END"
    new_ids = "".join(
        f", CASE WHEN v.reject IS NULL AND NOT v.linked THEN {expression} END AS {column}"
        for column, expression in (ids or {}).items()
    )
    # OFFSET 0 keeps the verdict's subquery whole: flattened into the outer query, its CASE
    # (regular expressions and all) would be computed again for ``skip`` and for every id.
    ctx.execute(
        f"CREATE {ctx.kind} TABLE {table}_checked AS SELECT v.*,"
        f" v.reject IS NULL AND v.linked AS skip{new_ids}"
        f" FROM (SELECT r.*, {verdict} AS reject FROM (SELECT s.*{''.join(resolved)}"
        f" FROM {table} s{''.join(joins)}) r OFFSET 0) v",
        params,
    )
    ctx.execute(f"DROP TABLE {table}")
    ctx.execute(f"ALTER TABLE {table}_checked RENAME TO {table}")
    if refs:
        # Which references point at rows of earlier imports (``check_keys`` proves those).
        ctx.cursor.execute(
            "SELECT "
            + ", ".join(
                f"coalesce(bool_or(NOT {into}_new AND {into} IS NOT NULL), false)"
                for _kind, _ref, _source, into in refs
            )
            + f" FROM {table} WHERE reject IS NULL"
        )
        found = ctx.cursor.fetchone()
        ctx.earlier[table] = {ref[3] for ref, old in zip(refs, found, strict=True) if old}


def check_keyed(
    ctx: Context, table: str, target: str, *, ids: dict[str, str] | None = None
) -> None:
    """Run the planned checks; skip rows ``target`` already holds under their source key.

    Such rows keep their key on themselves (``source_system``, ``source_id``) instead of a
    link row each. Only rows of patients an earlier import brought in can have been
    imported before: a patient new in this run has no rows yet, so a first import looks
    nothing up, and a repeated one reads those patients' rows once. A skipped row's CIMS
    id goes to ``linked_id``; ``ids`` are drawn as in ``apply_checks`` (and cleared again
    for rows found to be there already).
    """
    apply_checks(ctx, table, ids=ids)
    ctx.cursor.execute(
        f"SELECT array_agg(DISTINCT patient_id) FROM {table}"
        " WHERE reject IS NULL AND NOT patient_id_new"
    )
    patients = ctx.cursor.fetchone()[0]
    if not patients:
        return
    cleared = "".join(f", {column} = NULL" for column in ids or {})
    # One hash join on (patient, key): the statistics of a table an import just filled are
    # stale, and the nested loop they suggest compares every staged row with every row of
    # the table. Few earlier patients: their rows through the patient index; many: one
    # pass over the whole table is cheaper.
    ctx.cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'patients'::regclass")
    few = len(patients) * 10 < float(ctx.cursor.fetchone()[0])
    ctx.execute("SET LOCAL enable_nestloop = off")
    ctx.execute(
        f"UPDATE {table} s SET skip = true, linked = true, linked_id = t.id{cleared}"
        f" FROM (SELECT id, patient_id, source_id FROM {target} WHERE source_system = %(system)s"
        + (" AND patient_id = ANY(%(patients)s)" if few else "")
        + ") t WHERE s.reject IS NULL AND NOT s.patient_id_new AND t.patient_id = s.patient_id"
        " AND t.source_id = s.src",
        {"system": SYSTEM, "patients": patients},
    )
    ctx.execute("RESET enable_nestloop")


def keep_map(ctx: Context, source_table: str, table: str, id_column: str) -> None:
    """Later files of this run resolve references to ``source_table`` from ``table``."""
    ctx.maps[source_table] = (table, id_column)


def assign_ids(
    ctx: Context,
    table: str,
    source_table: str,
    target: str,
    into: str,
    *,
    more: dict[str, str] | None = None,
) -> None:
    """Run the planned checks; skip rows already imported; new rows get ids of ``target``.

    ``more`` names further id columns and the tables whose sequences give them.
    """
    ids = {into: next_id(ctx, target)}
    ids.update({column: next_id(ctx, other) for column, other in (more or {}).items()})
    apply_checks(ctx, table, source_table=source_table, ids=ids)
    keep_map(ctx, source_table, table, into)


def link(ctx: Context, table: str, source_table: str, target: str, id_column: str) -> int:
    """Record which CIMS row each new staged row became; returns the rows linked."""
    with _key_triggers_off(ctx):
        return ctx.execute(
            "INSERT INTO import_links (source_system, source_table, source_id, target_table,"
            f" target_id, run_id) SELECT %(system)s, %(source)s, src, %(target)s, {id_column},"
            f" %(run)s FROM {table} WHERE {id_column} IS NOT NULL",
            {"system": SYSTEM, "source": source_table, "target": target, "run": ctx.run_id},
        )


def can_check_keys_set_based(ctx: Context, targets: tuple[str, ...]) -> bool:
    """Whether this session may skip per-row key triggers for ``targets`` (none of their own).

    Skipping them (``session_replication_role = replica``, as pg_restore does) needs a
    superuser or ``GRANT SET ON PARAMETER``; it is only done when the tables carry no trigger
    but PostgreSQL's own foreign-key ones and the change stamps, so nothing else is skipped.
    """
    ctx.cursor.execute(
        "SELECT current_setting('is_superuser') = 'on'"
        " OR has_parameter_privilege('session_replication_role', 'SET')"
    )
    allowed = bool(ctx.cursor.fetchone()[0])
    if not allowed:
        return False
    # The change stamps' triggers (migration 0008) fire on UPDATE only, and in every
    # replication role: the skipped INSERTs never needed them.
    ctx.cursor.execute(
        "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"
        " AND tgfoid IS DISTINCT FROM to_regproc('cims_stamp_row_xid')::oid"
        " AND tgrelid = ANY(SELECT to_regclass(name) FROM unnest(%s::text[]) AS name)",
        (list(targets),),
    )
    return int(ctx.cursor.fetchone()[0]) == 0


@contextmanager
def _key_triggers_off(ctx: Context) -> Iterator[None]:
    """Skip per-row foreign-key triggers for one statement, then switch them back on."""
    if not ctx.set_based_keys:
        yield
        return
    ctx.execute("SET LOCAL session_replication_role = replica")
    # No try/finally: a failed statement aborts the transaction, which takes the setting
    # with it; resetting it there would only hide the real error.
    yield
    ctx.execute("SET LOCAL session_replication_role = origin")


def _foreign_keys(ctx: Context, target: str) -> list[tuple[str, str, str]]:
    """(column, parent table, parent column) of every single-column foreign key of ``target``."""
    if target not in ctx._foreign_keys:
        ctx.cursor.execute(
            "SELECT a.attname, c.confrelid::regclass::text, pa.attname FROM pg_constraint c"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
            " JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]"
            " WHERE c.conrelid = %s::regclass AND c.contype = 'f' AND cardinality(c.conkey) = 1",
            (target,),
        )
        ctx._foreign_keys[target] = [(str(a), str(b), str(c)) for a, b, c in ctx.cursor.fetchall()]
    return ctx._foreign_keys[target]


def _has_column(ctx: Context, table: str, column: str) -> bool:
    ctx.cursor.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = %s::regclass"
        " AND attname = %s AND NOT attisdropped",
        (table, column),
    )
    return bool(ctx.cursor.fetchone()[0])


def _has_id(ctx: Context, target: str) -> bool:
    return _has_column(ctx, target, "id")


def _refuse_dangling(
    ctx: Context, target: str, key: tuple[str, str, str], values: str, arguments: Any
) -> None:
    """Abort when a value of ``key`` (column, parent, parent column) in ``values`` has no parent."""
    column, parent, parent_column = key
    ctx.cursor.execute(
        f"SELECT v.{column} FROM ({values}) v WHERE NOT EXISTS"
        f" (SELECT 1 FROM {parent} p WHERE p.{parent_column} = v.{column}) LIMIT 1",
        arguments,
    )
    dangling = ctx.cursor.fetchone()
    if dangling is not None:
        raise RuntimeError(f"{target}.{column} = {dangling[0]} points at no {parent} row")


def check_keys(
    ctx: Context,
    target: str,
    ids: tuple[int, int],
    columns: set[str],
    staged: str | None = None,
) -> None:
    """Prove every foreign key of the rows just added (ids in range) points at a row.

    One statement per key over the distinct values instead of one trigger call per row; a
    dangling reference is a bug in the mapping and aborts the whole import. Keys the
    INSERT did not set are left out (NULL). A key filled from a reference resolved in
    ``staged`` is checked there, and only where it points at a row of an earlier import:
    the rest are ids this run just gave to the rows it inserted.
    """
    low, high = ids
    for column, parent, parent_column in _foreign_keys(ctx, target):
        if column not in columns:
            continue
        if staged is not None and _has_column(ctx, staged, f"{column}_new"):
            if staged in ctx.earlier and column not in ctx.earlier[staged]:
                continue  # every value is an id this run gave its own new rows
            values = (
                f"SELECT DISTINCT {column} FROM {staged} WHERE reject IS NULL"
                f" AND NOT {column}_new AND {column} IS NOT NULL"
            )
            arguments: tuple[Any, ...] = ()
        else:
            values = (
                f"SELECT DISTINCT {column} FROM {target}"
                f" WHERE id BETWEEN %s AND %s AND {column} IS NOT NULL"
            )
            arguments = (low, high)
        _refuse_dangling(ctx, target, (column, parent, parent_column), values, arguments)


def check_selected_keys(
    ctx: Context, target: str, columns: str, select: str, params: dict[str, Any]
) -> None:
    """``check_keys`` for a table without ids: its keys are proven on what ``select`` gives.

    The rows just added cannot be told from the others by id, so the (deterministic)
    SELECT that gave them is read again and each key it set is looked up in its parent.
    """
    named = [name.strip() for name in columns.split(",")]
    for column, parent, parent_column in _foreign_keys(ctx, target):
        if column not in named:
            continue
        values = f"SELECT * FROM ({select}) AS s({', '.join(named)}) WHERE {column} IS NOT NULL"
        _refuse_dangling(ctx, target, (column, parent, parent_column), values, params)


def insert(
    ctx: Context,
    target: str,
    columns: str,
    select: str,
    params: dict[str, Any],
    *,
    staged: str | None = None,
) -> None:
    """INSERT INTO target (columns) SELECT ...; counts the rows added.

    With ``ctx.set_based_keys`` the per-row foreign-key triggers are skipped for this one
    statement and every key is then checked set-based (``check_keys``). ``staged`` names
    the staging table whose resolved references (``resolve``) fill the target columns of
    the same name.
    """
    if not _has_id(ctx, target):
        with _key_triggers_off(ctx):
            rows = ctx.execute(f"INSERT INTO {target} ({columns}) {select}", params)
        if ctx.set_based_keys and rows:
            check_selected_keys(ctx, target, columns, select, params)
        ctx.added(target, rows)
        return
    with _key_triggers_off(ctx):
        ctx.cursor.execute(
            f"WITH added AS (INSERT INTO {target} ({columns}) {select} RETURNING id)"
            " SELECT count(*), min(id), max(id) FROM added",
            params,
        )
        rows, low, high = ctx.cursor.fetchone()
    if ctx.set_based_keys and rows:
        named = {name.strip() for name in columns.split(",")}
        check_keys(ctx, target, (low, high), named, staged)
    ctx.added(target, rows)


def finish_checks(ctx: Context, table: str) -> None:
    """End a file's checks: run them if its loader planned none, and count the verdicts.

    The counts are taken here, where the checks ran (the stager's thread, if any), so the
    import's own transaction does not read the file once more for them.
    """
    if table in ctx.plans or not _has_column(ctx, table, "reject"):
        apply_checks(ctx, table)
    ctx.cursor.execute(
        f"SELECT count(*) FILTER (WHERE reject IS NOT NULL),"
        f" count(*) FILTER (WHERE skip), count(*) FROM {table}"
    )
    rejected, skipped, read = (int(n) for n in ctx.cursor.fetchone())
    rows: list[dict[str, Any]] = []
    if rejected:
        ctx.cursor.execute(
            f"SELECT line, reject FROM {table} WHERE reject IS NOT NULL ORDER BY line LIMIT %s",
            (REJECT_CAP,),
        )
        rows = [{"line": line, "reason": reason} for line, reason in ctx.cursor.fetchall()]
    ctx.verdicts[table] = (read, skipped, rejected, rows)


def collect(ctx: Context, stem: str, table: str) -> None:
    """Move the staged file's rejections and skips into the report."""
    if table not in ctx.verdicts:
        finish_checks(ctx, table)
    read, skipped, rejected, rows = ctx.verdicts.pop(table)
    ctx.read[stem] = ctx.read.get(stem, 0) + read
    ctx.skipped[stem] = ctx.skipped.get(stem, 0) + skipped
    if rejected:
        ctx.rejected_counts[stem] = ctx.rejected_counts.get(stem, 0) + rejected
        ctx.rejected.setdefault(stem, []).extend(rows)
