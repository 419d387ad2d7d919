"""PostgreSQL plumbing for backups: connection parameters, tool versions, table fingerprints."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url

from cims.db import normalise_url
from cims.ops.backup_format import BackupError

# Session settings that make ``row::text`` print the same on every server and client.
_STABLE_TEXT = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
)
_TABLES = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname"
)


def as_url(engine_or_url: Engine | str | URL) -> URL:
    """The SQLAlchemy URL of an engine or URL text."""
    if isinstance(engine_or_url, Engine):
        return engine_or_url.url
    if isinstance(engine_or_url, URL):
        return engine_or_url
    return make_url(normalise_url(engine_or_url))


def url_text(url: URL) -> str:
    """The URL as text, password included (for engines; never print it)."""
    return url.render_as_string(hide_password=False)


def conn_params(url: URL) -> dict[str, str]:
    """libpq keyword parameters (host may be a socket folder given as ``?host=``)."""
    host = url.host or url.query.get("host")
    params = {
        "host": str(host) if host else "",
        "port": str(url.port or ""),
        "user": url.username or "",
        "password": url.password or "",
        "dbname": url.database or "",
    }
    return {key: value for key, value in params.items() if value}


def tool_env(url: URL) -> dict[str, str]:
    """Environment for pg_dump/pg_restore: the password travels here, never in argv."""
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({names[k]: v for k, v in conn_params(url).items() if k in names})
    return env


def connect(url: URL, **kwargs: Any) -> psycopg.Connection[Any]:
    """A psycopg connection with the stable text settings applied (autocommit off)."""
    conn = psycopg.connect(conninfo(url), **kwargs)
    for statement in _STABLE_TEXT:
        conn.execute(statement)
    conn.commit()
    return conn


def pg_tool(name: str, bin_dir: Path | None = None) -> Path:
    """Path of a PostgreSQL client program (pgserver's PostgreSQL 16 by default)."""
    if bin_dir is None:
        from cims.embedded import postgres_bin_dir

        bin_dir = postgres_bin_dir()
    path = bin_dir / name
    if not path.exists():
        raise BackupError(f"{name} not found in {bin_dir}")
    return path


def tool_major(tool: Path) -> int:
    """Major version of a PostgreSQL client program (``pg_dump (PostgreSQL) 16.2`` -> 16)."""
    output = subprocess.run(
        [str(tool), "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"(\d+)(?:\.\d+)?", output)
    if found is None:
        raise BackupError(f"cannot read the version of {tool}: {output!r}")
    return int(found.group(1))


def require_new_enough(tool: Path, tool_version: int, server_version: int) -> None:
    """Refuse a client program older than the server (its dump could miss or break things)."""
    if tool_version < server_version:
        raise BackupError(
            f"{tool.name} is PostgreSQL {tool_version} but the server is PostgreSQL "
            f"{server_version}: use a {tool.name} of version {server_version} or newer "
            "(pgserver's PostgreSQL 16 binaries serve servers up to 16)"
        )


def server_major(conn: psycopg.Connection[Any]) -> int:
    """Major version of the connected server."""
    row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0]) // 10000


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_fingerprints(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """Row count and an order-independent checksum of every table in ``public``.

    The checksum sums the first 60 bits of each row's md5 (as text) in SQL, so nothing is
    pulled through Python and no table is sorted; run it in the dump's snapshot.
    """
    tables = [row[0] for row in conn.execute(_TABLES).fetchall()]
    result: dict[str, dict[str, Any]] = {}
    for table in tables:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(('x' || substr(md5(cims_row::text), 1, 15))"
            f"::bit(60)::bigint), 0)::text FROM public.{_quote(table)} cims_row"
        ).fetchone()
        assert row is not None
        result[table] = {"rows": int(row[0]), "checksum": str(row[1])}
    return result


def compare_fingerprints(
    expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]
) -> list[str]:
    """Human-readable differences between two fingerprint sets (empty when identical)."""
    problems = []
    for table in sorted(set(expected) | set(actual)):
        want, got = expected.get(table), actual.get(table)
        if want is None:
            problems.append(f"table {table} is not in the backup manifest")
        elif got is None:
            problems.append(f"table {table} is missing after restore")
        elif want["rows"] != got["rows"]:
            problems.append(f"table {table}: {got['rows']} rows, expected {want['rows']}")
        elif want["checksum"] != got["checksum"]:
            problems.append(f"table {table}: checksum differs from the backup's")
    return problems


def conninfo(url: URL) -> str:
    """A libpq connection string for ``url``."""
    return make_conninfo(**conn_params(url))


def _admin(url: URL) -> psycopg.Connection[Any]:
    """An autocommit connection to the same server's maintenance database."""
    return psycopg.connect(conninfo(url.set(database="postgres")), autocommit=True)


def database_exists(url: URL, name: str) -> bool:
    """Whether the server holds a database called ``name``."""
    with _admin(url) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def drop_database(url: URL, name: str) -> None:
    """Drop database ``name`` if it exists, ending its connections."""
    with _admin(url) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")


def create_empty_database(url: URL, name: str) -> None:
    """Create ``name`` from template0 (nothing a restore could collide with)."""
    with _admin(url) as conn:
        conn.execute(f"CREATE DATABASE {_quote(name)} TEMPLATE template0")


def rename_database(url: URL, old: str, new: str, *, force: bool = False) -> None:
    """Rename a database (with ``force``, ending its connections first)."""
    with _admin(url) as conn:
        if force:
            conn.execute(f"ALTER DATABASE {_quote(old)} ALLOW_CONNECTIONS false")
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (old,),
            )
        conn.execute(f"ALTER DATABASE {_quote(old)} RENAME TO {_quote(new)}")
        if force:
            conn.execute(f"ALTER DATABASE {_quote(new)} ALLOW_CONNECTIONS true")


def drop_stale_scratch(url: URL, prefix: str, *, older_than_seconds: float) -> list[str]:
    """Drop ``<prefix><epoch>_<pid>`` databases older than the limit (a killed drill's)."""
    now = time.time()
    with _admin(url) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (prefix,)
            )
        ]
    stale = []
    for name in names:
        stamp = name.removeprefix(prefix).split("_", 1)[0]
        if stamp.isdigit() and now - int(stamp) > older_than_seconds:
            drop_database(url, name)
            stale.append(name)
    return stale
