"""The data staff's SQL console: one SELECT, checked by sqlglot, run read-only with a timeout.

The check is the first door; the connection is the second: read-only, external access off
and the configuration locked, so even a statement the parser misjudged cannot write, read
files or attach databases.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb
import pandas as pd
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from analytics.snapshot import connect

DEFAULT_ROW_LIMIT: Final = 1000
DEFAULT_TIMEOUT_S: Final = 15.0
# Functions that reach outside the snapshot (files, settings, environment, other engines).
FORBIDDEN_PREFIXES: Final = ("read_", "parquet_", "sniff_", "pragma_", "duckdb_", "load_")
FORBIDDEN_SUFFIXES: Final = ("_scan",)
FORBIDDEN_NAMES: Final = frozenset(
    {
        "glob",
        "getenv",
        "query",
        "query_table",
        "current_setting",
        "which_secret",
        "from_csv_auto",
        "install_extension",
        "readcsv",
        "readparquet",
    }
)
WRITES: Final = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter)
SET_OPERATIONS: Final = (exp.Union, exp.Intersect, exp.Except)


class QueryRefused(ValueError):
    """A statement the console will not run; ``reason`` is a message key, ``params`` its values."""

    def __init__(self, reason: str, **params: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.params = params


class QueryFailed(RuntimeError):
    """An accepted statement that DuckDB could not finish (error or timeout)."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class QueryResult:
    """Rows of one console query and how it went."""

    frame: pd.DataFrame
    truncated: bool
    milliseconds: float
    statement_hash: str


def statement_hash(sql: str) -> str:
    """A short fingerprint of a statement for the audit log (never the text or results)."""
    return hashlib.sha256(sql.strip().encode()).hexdigest()[:16]


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return str(node.sql_name()).lower()


def _forbidden_function(name: str) -> bool:
    return (
        name in FORBIDDEN_NAMES
        or name.startswith(FORBIDDEN_PREFIXES)
        or name.endswith(FORBIDDEN_SUFFIXES)
    )


def check_select(sql: str) -> str:
    """The one SELECT in ``sql`` re-rendered by sqlglot, or QueryRefused with the reason."""
    if not sql.strip():
        raise QueryRefused("analytics.refused_empty")
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except (ParseError, TokenError):  # an unclosed quote fails in the tokenizer
        raise QueryRefused("analytics.refused_syntax") from None
    if not statements:
        raise QueryRefused("analytics.refused_empty")
    if len(statements) > 1:
        raise QueryRefused("analytics.refused_multiple")
    [statement] = statements
    if isinstance(statement, WRITES):
        raise QueryRefused("analytics.refused_write")
    if not isinstance(statement, (exp.Select, *SET_OPERATIONS)):
        kind = statement.key.upper() if statement.key != "command" else str(statement.name)
        raise QueryRefused("analytics.refused_not_select", kind=kind.upper())
    for node in statement.walk():
        if isinstance(node, WRITES):
            raise QueryRefused("analytics.refused_write")
        if isinstance(node, exp.Func) and _forbidden_function(_function_name(node)):
            raise QueryRefused("analytics.refused_function", name=_function_name(node))
        if isinstance(node, exp.Table) and _reads_a_file(node):
            raise QueryRefused("analytics.refused_file")
    return str(statement.sql(dialect="duckdb"))


def _reads_a_file(table: exp.Table) -> bool:
    """``FROM 'data.csv'`` and ``FROM "x.parquet"``: DuckDB would scan a file."""
    if isinstance(table.this, exp.Literal):
        return True
    name = table.name
    return "." in name or "/" in name or "\\" in name


def run_select(
    sql: str,
    *,
    path: Path | None = None,
    row_limit: int = DEFAULT_ROW_LIMIT,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> QueryResult:
    """Check and run one SELECT on a locked-down connection; at most ``row_limit`` rows."""
    checked = check_select(sql)
    wrapped = f"SELECT * FROM ({checked}) AS console LIMIT {int(row_limit) + 1}"
    started = time.perf_counter()
    with connect(path, console=True) as con:
        timer = threading.Timer(timeout_s, con.interrupt)
        timer.start()
        try:
            frame = con.execute(wrapped).df()
        except duckdb.InterruptException:
            raise QueryFailed("analytics.query_timeout") from None
        except duckdb.Error as error:
            first_line = str(error).splitlines()[0][:300] if str(error) else ""
            raise QueryFailed("analytics.query_error", first_line) from None
        finally:
            timer.cancel()
    truncated = len(frame) > row_limit
    return QueryResult(
        frame.head(row_limit),
        truncated,
        (time.perf_counter() - started) * 1000,
        statement_hash(sql),
    )
