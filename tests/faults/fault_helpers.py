"""Shared tools of the fault tests: a private PostgreSQL cluster, a child app process that is
stopped mid-transaction by a lock the test holds, and whole-database fingerprints."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cims.config import PROJECT_ROOT
from cims.ops import backup_pg as pg

CHILD = Path(__file__).with_name("fault_child.py")
WAIT_SECONDS = 60


def _as_pg_user() -> dict[str, Any]:
    """As root, pgserver's binaries must run as its system user (postgres refuses root)."""
    if os.geteuid() != 0:
        return {}
    from pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return {"user": "pgserver"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PrivateCluster:
    """A throw-away PostgreSQL 16 cluster (pgserver's binaries) on its own TCP port.

    The shared embedded server and the machine's PostgreSQL 15 serve the rest of the suite;
    only this one is ever stopped or restarted by a test.
    """

    datadir: Path
    port: int

    def _ctl(self, *args: str) -> None:
        from cims.embedded import postgres_bin_dir

        command = [str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.datadir), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=60, **_as_pg_user())

    def init(self) -> None:
        """initdb into an empty folder owned by the server's user, TCP only, no fsync."""
        from cims.embedded import postgres_bin_dir

        shutil.rmtree(self.datadir, ignore_errors=True)
        self.datadir.mkdir(parents=True)
        runas = _as_pg_user()
        if runas:
            import pwd

            from pgserver.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.datadir)
            entry = pwd.getpwnam(runas["user"])
            os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
        self.datadir.chmod(0o700)
        initdb = [str(postgres_bin_dir() / "initdb"), "-D", str(self.datadir), "--no-sync",
                  "--auth=trust", "--encoding=utf8", "-U", "postgres"]  # fmt: skip
        subprocess.run(initdb, check=True, capture_output=True, timeout=120, **runas)
        settings = (
            f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
            "unix_socket_directories = ''\nfsync = off\nmax_connections = 40\n"
        )
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(settings)

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        self._ctl("-w", "-l", str(self.datadir / "server.log"), "start")

    def restart(self, mode: str = "fast") -> None:
        """Stop (ending every connection) and start again on the same port."""
        self._ctl("-w", "-m", mode, "stop")
        self.start()

    def stop(self) -> None:
        """Stop at once (tear-down)."""
        if (self.datadir / "postmaster.pid").exists():
            self._ctl("-w", "-m", "immediate", "stop")

    def url(self, database: str) -> str:
        """SQLAlchemy URL of a database on this cluster."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


@contextmanager
def private_cluster(name: str) -> Iterator[PrivateCluster]:
    """A started private cluster under var/faults/, stopped and deleted afterwards."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    cluster = PrivateCluster(PROJECT_ROOT / "var" / "faults" / f"{name}-{worker}", free_port())
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.datadir, ignore_errors=True)


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A plain psycopg connection to ``url`` (autocommit off unless asked)."""
    return psycopg.connect(pg.conninfo(make_url(url)), **kwargs)


def fingerprints(url: str) -> dict[str, dict[str, Any]]:
    """Row count and checksum of every table: equal fingerprints, unchanged database."""
    with pg.connect(make_url(url)) as conn:
        return pg.table_fingerprints(conn)


def changed_tables(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Names of the tables whose rows differ between two fingerprints."""
    return sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))


def child_url(url: str, tag: str) -> str:
    """The same database, with an application_name that finds the child's connections."""
    return str(make_url(url).update_query_dict({"application_name": tag}))


def start_child(
    operation: str, url: str, tag: str, args: dict[str, Any], env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Run one real service call in a separate Python process (the app process to kill)."""
    environment = dict(os.environ)
    environment.update(
        CIMS_DATABASE_URL=child_url(url, tag),
        CIMS_ENV="test",
        PYTHONPATH=str(PROJECT_ROOT),
        PYTHONDONTWRITEBYTECODE="1",
    )
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, str(CHILD), operation, json.dumps(args)],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def child_output(proc: subprocess.Popen[str], timeout: float = WAIT_SECONDS) -> dict[str, Any]:
    """Wait for a child that must finish; its last stdout line is a JSON object."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return dict(json.loads(out.strip().splitlines()[-1]))


_BLOCKED = text(
    "SELECT a.pid, a.query, l.relation::regclass::text AS waiting_for "
    "FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted "
    "WHERE a.application_name = :tag AND a.datname = current_database()"
)
_HELD = text(
    "SELECT DISTINCT l.relation::regclass::text FROM pg_locks l "
    "WHERE l.pid = :pid AND l.granted AND l.mode = 'RowExclusiveLock' AND l.relation IS NOT NULL"
)


@dataclass(frozen=True)
class Blocked:
    """A child backend waiting for the test's lock, and what its transaction has written."""

    pid: int
    query: str
    waiting_for: str
    written: set[str]  # tables the open transaction already inserted into or updated


def wait_until_blocked(watcher: Any, proc: subprocess.Popen[str], tag: str, on: str) -> Blocked:
    """Poll pg_locks until the child's backend waits for a lock on table ``on``."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the child ended before it blocked: {proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
        for row in watcher.execute(_BLOCKED, {"tag": tag}).mappings():
            if row["waiting_for"] == on:
                written = set(watcher.execute(_HELD, {"pid": row["pid"]}).scalars())
                return Blocked(row["pid"], row["query"], row["waiting_for"], written)
        time.sleep(0.05)
    raise AssertionError(f"the child never blocked on {on}")


def kill_and_reap(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the child process (no clean-up of any kind runs) and reap it."""
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=WAIT_SECONDS)
    assert proc.returncode == -signal.SIGKILL


@contextmanager
def reaped(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """Never leave the child running, whatever the test found."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=WAIT_SECONDS)


def wait_for_backend_gone(watcher: Any, pid: int) -> None:
    """The dead client's backend notices the closed socket and rolls back; wait for that."""
    deadline = time.monotonic() + WAIT_SECONDS
    query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
    while watcher.execute(query, {"pid": pid}).scalar():
        assert time.monotonic() < deadline, f"backend {pid} is still there"
        time.sleep(0.05)


def poll(condition: Callable[[], bool], what: str, seconds: float = WAIT_SECONDS) -> None:
    """Wait until ``condition()`` holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
