"""How a refresh fills the snapshot: everything, or only what changed since the last one.

Both work on an open DuckDB connection to the snapshot being built, with the private
state file attached as ``stage`` (see analytics.snapshot). The state holds the maps from
source row ids to what the snapshot calls them (``patient_no``, ``visit_key``, and a
``row_no`` per row of every other incremental table), so a later refresh can find and
replace the rows that changed; the snapshot itself never holds a source row id.

An incremental refresh reads, per table, the rows written since the last refresh (their
``row_xid``, stamped by PostgreSQL, is not visible in the last refresh's snapshot), plus
the rows of visits and patients that changed (a row's department, visit type and insurance
come from them): their ids first, by index, then the rows by id. It deletes the old
copies of those rows, inserts the kept ones and rebuilds the derived tables, so the result
equals a full copy of the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, Protocol

import duckdb

from analytics.tables import BUILDS, FETCH_ORDER, LOOKUPS, MAPS, SOURCES, SPLIT

Progress = Callable[[float, str], None]
# Tables rebuilt whole on every refresh (small, or derived from every row).
WHOLE: tuple[str, ...] = tuple(t for t in FETCH_ORDER if not SOURCES[t].incremental)
# Of those, the ones rebuilt after the facts (departments and patients come first).
LAST_WHOLE: tuple[str, ...] = tuple(t for t in WHOLE if t not in ("departments", "patients"))
# Tables with a row_no and a map in the state (visits are keyed by visit_key instead).
ROWS: tuple[str, ...] = tuple(t for t in FETCH_ORDER if SOURCES[t].incremental and t != "visits")


class Fetcher(Protocol):
    """Runs source queries on PostgreSQL (see analytics.snapshot._Fetcher)."""

    def submit(self, sql: str, part: str = "") -> Future[Any]: ...

    def halves(self, table: str) -> tuple[str, str]: ...


def run(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[Any]:
    """Execute and drain (DuckDB refuses other work while a result is unfinished)."""
    return con.execute(sql, params).fetchall()


def count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    [(n,)] = run(con, f"SELECT count(*) FROM {table}")
    return int(n)


def _stage(con: duckdb.DuckDBPyConnection, name: str, arrow: Any) -> None:
    """Replace a lookup in the state (small tables: price items, users, departments)."""
    con.register("raw", arrow)
    run(con, f"CREATE OR REPLACE TABLE stage.{name} AS SELECT * FROM raw")
    con.unregister("raw")


def _next(con: duckdb.DuckDBPyConnection, table: str, column: str) -> int:
    """The highest number used so far in ``table.column`` (0 for none)."""
    [(top,)] = run(con, f"SELECT coalesce(max({column}), 0) FROM {table}")
    return int(top)


def _number(con: duckdb.DuckDBPyConnection, table: str, where: str = "TRUE") -> None:
    """The fetched rows (``raw``) to keep, numbered after the table's last ``row_no``, as
    the temporary table ``src`` that BUILDS read; their map rows go to the state."""
    first = _next(con, f"stage.map_{table}", "row_no")
    encounter = "encounter_id" if SOURCES[table].encounter else "NULL::BIGINT"
    run(
        con,
        "CREATE OR REPLACE TEMP TABLE src AS SELECT *, "
        f"{first} + row_number() OVER () AS row_no FROM raw WHERE {where} "
        "AND patient_id IN (SELECT id FROM stage.pmap)",
    )
    run(
        con,
        f"INSERT INTO stage.map_{table} SELECT id, row_no, patient_id, {encounter} FROM src",
    )


def _numbered_visits(con: duckdb.DuckDBPyConnection, where: str = "TRUE") -> None:
    """The fetched visits (``raw``) to keep as ``staged_visits``: a visit keeps its key,
    a new one gets the next in start-time order; the state's visit map follows."""
    first = _next(con, "stage.vmap", "visit_key")
    run(
        con,
        "CREATE OR REPLACE TEMP TABLE src AS SELECT r.* FROM raw r "
        f"WHERE {where} AND r.patient_id IN (SELECT id FROM stage.pmap)",
    )
    run(
        con,
        "CREATE OR REPLACE TEMP TABLE fresh_visits AS SELECT * FROM ("
        + MAPS["visits"].format(first=first)
        + ") WHERE id NOT IN (SELECT id FROM kept_keys)",
    )
    run(
        con,
        "CREATE OR REPLACE TEMP TABLE staged_visits AS SELECT * FROM ("
        "SELECT * FROM fresh_visits UNION ALL "
        "SELECT s.*, k.visit_key, dep.code AS department_code FROM src s "
        "JOIN kept_keys k USING (id) "
        "LEFT JOIN stage.departments dep ON dep.id = s.department_id) ORDER BY visit_key",
    )
    run(con, f"INSERT INTO stage.vmap {MAPS['vmap']}")


def _build(con: duckdb.DuckDBPyConnection, table: str, create: bool) -> None:
    if create:
        run(con, f"CREATE TABLE {table} AS {BUILDS[table]}")
    else:
        run(con, f"INSERT INTO {table} {BUILDS[table]}")


def _maps(con: duckdb.DuckDBPyConnection, keys: dict[str, str], pads: dict[str, bytes]) -> None:
    """Doctor keys from the staged users (every refresh: cheap, and keys never change)."""
    run(con, f"CREATE OR REPLACE TABLE stage.dmap AS {MAPS['dmap'].format(**keys)}", pads)


def copy_all(
    con: duckdb.DuckDBPyConnection,
    fetcher: Fetcher,
    report: Progress,
    keys: dict[str, str],
    pads: dict[str, bytes],
) -> dict[str, int]:
    """Fetch every source on two connections; build each table as soon as it and the
    maps it needs have arrived (patients and visits first: every other table needs them)."""
    halves = {table: fetcher.halves(table) for table in SPLIT}  # before the workers start
    lookups = {name: fetcher.submit(sql) for name, sql in LOOKUPS.items()}
    pending: dict[str, list[Future[Any]]] = {}
    for table in FETCH_ORDER:
        sql = SOURCES[table].full_sql()
        pending[table] = [fetcher.submit(sql, part) for part in halves.get(table, ("",))]
    for name, future in lookups.items():
        _stage(con, name, future.result())
    _maps(con, keys, pads)
    for table in ROWS:
        run(
            con,
            f"CREATE TABLE stage.map_{table} (id BIGINT, row_no BIGINT, patient_id BIGINT, "
            "encounter_id BIGINT)",
        )
    run(con, "CREATE TEMP TABLE kept_keys (id BIGINT, visit_key BIGINT)")
    rows: dict[str, int] = {}
    for index, (table, futures) in enumerate(pending.items()):
        report(index / (len(SOURCES) + 2), table)
        for part, future in enumerate(futures):
            con.register("raw", future.result())
            if table == "departments":
                run(con, "CREATE TABLE stage.departments AS SELECT * FROM raw")
            elif table == "patients":
                run(con, "CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM raw")
                run(con, f"CREATE TABLE stage.pmap AS {MAPS['pmap'].format(**keys)}", pads)
            elif table == "visits":
                run(
                    con,
                    "CREATE TABLE stage.vmap (id BIGINT, visit_key BIGINT, "
                    "department_code VARCHAR, encounter_type VARCHAR, patient_id BIGINT)",
                )
                _numbered_visits(con)
            elif table in ROWS:
                _number(con, table)
            else:
                run(con, "CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM raw")
            _build(con, table, create=part == 0)
            con.unregister("raw")
        rows[table] = count(con, table)
    _drop_temps(con)
    return rows


def copy_changes(
    con: duckdb.DuckDBPyConnection,
    fetcher: Fetcher,
    report: Progress,
    keys: dict[str, str],
    pads: dict[str, bytes],
    since: str,
) -> dict[str, int]:
    """Bring the copied snapshot up to date with what was written after ``since`` (the
    PostgreSQL snapshot of the last refresh)."""
    steps = len(SOURCES) + 2
    lookups = {name: fetcher.submit(sql) for name, sql in LOOKUPS.items()}
    whole = {table: fetcher.submit(SOURCES[table].full_sql()) for table in WHOLE}
    for name, future in lookups.items():
        _stage(con, name, future.result())
    _maps(con, keys, pads)
    report(0.0, "departments")
    _stage(con, "departments", whole["departments"].result())  # visits need the codes
    run(con, f"CREATE OR REPLACE TABLE departments AS {BUILDS['departments']}")

    report(1 / steps, "patients")
    con.register("raw", whole["patients"].result())
    _patients(con, keys, pads)
    con.unregister("raw")
    patients = _array(run(con, "SELECT id FROM dirty_patients"))

    report(2 / steps, "visits")
    source = SOURCES["visits"]
    ids = fetcher.submit(source.changed_ids_sql(since, "'{{}}'::int8[]", patients)).result()
    con.register("raw", fetcher.submit(source.rows_sql(_ids(ids))).result())
    run(
        con,
        "CREATE OR REPLACE TEMP TABLE kept_keys AS SELECT id, visit_key FROM stage.vmap "
        "WHERE id IN (SELECT id FROM raw) OR patient_id IN (SELECT id FROM dirty_patients)",
    )
    run(
        con,
        "CREATE OR REPLACE TEMP TABLE dirty_visits AS SELECT id FROM kept_keys "
        "UNION SELECT id FROM raw",
    )
    run(con, "DELETE FROM visits WHERE visit_key IN (SELECT visit_key FROM kept_keys)")
    run(con, "DELETE FROM stage.vmap WHERE id IN (SELECT id FROM kept_keys)")
    _numbered_visits(con, "keep")
    _build(con, "visits", create=False)
    con.unregister("raw")
    visits = _array(run(con, "SELECT id FROM dirty_visits"))

    wanted = {
        table: fetcher.submit(SOURCES[table].changed_ids_sql(since, visits, patients))
        for table in ROWS
    }
    changed = {
        table: fetcher.submit(SOURCES[table].rows_sql(_ids(wanted[table].result())))
        for table in ROWS
    }
    rows: dict[str, int] = {}
    for index, table in enumerate(ROWS, start=3):
        report(index / steps, table)
        con.register("raw", changed[table].result())
        gone = (
            f"SELECT row_no FROM stage.map_{table} WHERE id IN (SELECT id FROM raw) "
            "OR patient_id IN (SELECT id FROM dirty_patients)"
        )
        if SOURCES[table].encounter:
            gone += " OR encounter_id IN (SELECT id FROM dirty_visits)"
        run(con, f"CREATE OR REPLACE TEMP TABLE gone AS {gone}")
        run(con, f"DELETE FROM {table} WHERE row_no IN (SELECT row_no FROM gone)")
        run(con, f"DELETE FROM stage.map_{table} WHERE row_no IN (SELECT row_no FROM gone)")
        _number(con, table, "keep")
        _build(con, table, create=False)
        con.unregister("raw")
    for index, table in enumerate(LAST_WHOLE, start=len(ROWS) + 3):
        report(index / steps, table)
        con.register("raw", whole[table].result())
        run(con, "CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM raw")
        run(con, f"CREATE OR REPLACE TABLE {table} AS {BUILDS[table]}")
        con.unregister("raw")
    for table in FETCH_ORDER:
        rows[table] = count(con, table)
    _drop_temps(con)
    return rows


def _patients(con: duckdb.DuckDBPyConnection, keys: dict[str, str], pads: dict[str, bytes]) -> None:
    """Renew the patient map from every live patient (``raw``): a known patient keeps his
    number, a newcomer gets the next. ``dirty_patients`` are the ids whose rows elsewhere
    must be read again: newcomers, the voided or merged, and changed insurance."""
    first = _next(con, "stage.pmap", "patient_no")
    run(con, "CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM raw")
    run(
        con,
        "CREATE OR REPLACE TEMP TABLE dirty_patients AS "
        "(SELECT id FROM stage.pmap EXCEPT SELECT id FROM src) UNION "
        "(SELECT s.id FROM src s LEFT JOIN stage.pmap o USING (id) "
        "WHERE o.id IS NULL OR s.insurance_type IS DISTINCT FROM o.insurance_type)",
    )
    newcomers = (
        "SELECT id, {patient} AS patient_key, insurance_type FROM src "
        "WHERE id NOT IN (SELECT id FROM stage.pmap)"
    ).format(**keys)
    run(
        con,
        "CREATE OR REPLACE TEMP TABLE next_pmap AS "
        "SELECT s.id, o.patient_key, s.insurance_type, o.patient_no FROM src s "
        f"JOIN stage.pmap o USING (id) UNION ALL SELECT id, patient_key, insurance_type, "
        f"CAST({first} + row_number() OVER (ORDER BY patient_key) AS INTEGER) "
        f"FROM ({newcomers})",
        pads,
    )
    run(con, "CREATE OR REPLACE TABLE stage.pmap AS SELECT * FROM next_pmap")
    run(con, f"CREATE OR REPLACE TABLE patients AS {BUILDS['patients']}")


def _array(rows: Iterable[tuple[Any, ...]]) -> str:
    """A PostgreSQL int8 array literal of the first column of ``rows`` (braces doubled:
    source queries go through ``str.format``)."""
    return "'{{" + ",".join(str(int(r[0])) for r in rows) + "}}'::int8[]"


def _ids(arrow: Any) -> str:
    """An int8 array literal of an Arrow table's ``id`` column."""
    return _array((value,) for value in arrow.column("id").to_pylist())


def _drop_temps(con: duckdb.DuckDBPyConnection) -> None:
    for name in ("src", "kept_keys", "fresh_visits", "staged_visits", "gone", "dirty_visits",
                 "dirty_patients", "next_pmap"):  # fmt: skip
        run(con, f"DROP TABLE IF EXISTS temp.{name}")
