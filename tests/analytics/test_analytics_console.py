"""The SQL console refuses everything but one SELECT, and its connection is locked down."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from analytics.console import QueryFailed, QueryRefused, check_select, run_select
from analytics.snapshot import connect

REFUSED = {
    "INSERT INTO visits (visit_key) VALUES (1)": "analytics.refused_write",
    "UPDATE visits SET status = 'x'": "analytics.refused_write",
    "DELETE FROM visits": "analytics.refused_write",
    "CREATE TABLE x AS SELECT 1": "analytics.refused_write",
    "DROP TABLE visits": "analytics.refused_write",
    "ATTACH 'other.duckdb' AS other": "analytics.refused_not_select",
    "COPY visits TO '/tmp/visits.csv'": "analytics.refused_not_select",
    "PRAGMA database_list": "analytics.refused_not_select",
    "SET enable_external_access = true": "analytics.refused_not_select",
    "INSTALL httpfs": "analytics.refused_not_select",
    "SELECT 1; SELECT 2": "analytics.refused_multiple",
    "SELECT 1; DELETE FROM visits": "analytics.refused_multiple",
    "SELECT * FROM read_csv('/etc/passwd')": "analytics.refused_function",
    "SELECT * FROM read_parquet('x.parquet')": "analytics.refused_function",
    "SELECT * FROM glob('*')": "analytics.refused_function",
    "SELECT * FROM read_text('/etc/hostname')": "analytics.refused_function",
    "SELECT getenv('HOME')": "analytics.refused_function",
    "SELECT * FROM visits WHERE patient_key IN (SELECT * FROM read_csv_auto('f'))": (
        "analytics.refused_function"
    ),
    "SELECT * FROM '/etc/passwd'": "analytics.refused_file",
    'SELECT * FROM "secrets.csv"': "analytics.refused_file",
    "": "analytics.refused_empty",
    "SELEC nonsense FROM": "analytics.refused_syntax",
}


@pytest.mark.parametrize(("sql", "reason"), REFUSED.items())
def test_refused_with_a_reason(sql: str, reason: str) -> None:
    with pytest.raises(QueryRefused) as refusal:
        check_select(sql)
    assert refusal.value.reason == reason


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM visits",
        "WITH v AS (SELECT * FROM visits) SELECT department_code, count(*) FROM v GROUP BY 1",
        "SELECT code FROM diagnoses UNION SELECT code FROM diagnoses",
        "FROM visits SELECT visit_key;",
    ],
)
def test_single_selects_are_accepted(sql: str) -> None:
    assert check_select(sql)


def test_runs_with_a_row_limit(tiny_snapshot: Path) -> None:
    result = run_select("SELECT visit_key FROM visits ORDER BY 1", path=tiny_snapshot, row_limit=4)
    assert list(result.frame["visit_key"]) == [1, 2, 3, 4] and result.truncated
    whole = run_select("SELECT count(*) AS n FROM visits", path=tiny_snapshot)
    assert whole.frame["n"][0] == 10 and not whole.truncated


def test_a_slow_query_is_interrupted(tiny_snapshot: Path) -> None:
    slow = "SELECT count(*) FROM range(1000000000) a, range(1000) b WHERE a.range % 7 = b.range"
    with pytest.raises(QueryFailed) as failure:
        run_select(slow, path=tiny_snapshot, timeout_s=0.3)
    assert failure.value.reason == "analytics.query_timeout"


def test_errors_are_reported_not_raised(tiny_snapshot: Path) -> None:
    with pytest.raises(QueryFailed) as failure:
        run_select("SELECT no_such_column FROM visits", path=tiny_snapshot)
    assert (
        failure.value.reason == "analytics.query_error"
        and "no_such_column" in failure.value.message
    )


def test_the_connection_itself_cannot_write_or_read_files(tiny_snapshot: Path) -> None:
    # The second door: even SQL the parser never saw cannot leave the snapshot.
    with connect(tiny_snapshot, console=True) as con:
        for sql in (
            "SELECT * FROM read_csv('/etc/passwd')",
            "DELETE FROM visits",
            "ATTACH ':memory:' AS other",
            "SET enable_external_access = true",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(sql).fetchall()
