"""Embedded PostgreSQL (pgserver) inside the project's data folder, repaired after crashes."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import psutil

from cims.config import PROJECT_ROOT

log = logging.getLogger(__name__)

_RUNTIME_DIR = PROJECT_ROOT / "var" / "run"


def _prepare_runtime_dir() -> None:
    """Give every process the same lock folder before pgserver reads it at import."""
    _RUNTIME_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(_RUNTIME_DIR, 0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(_RUNTIME_DIR)


def _drop_dead_handles(pgdata: Path) -> None:
    """Forget pids of processes that died without clean-up (SIGKILL, crash).

    pgserver stops the server when the last registered process exits; a dead pid left
    in the list would keep the server running forever after, so prune it first.
    """
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text() or "[]")
    except json.JSONDecodeError:
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        log.info("embedded postgres: dropping dead handles %s", sorted(set(pids) - set(alive)))
        handles.write_text(json.dumps(alive))


def _drop_stale_postmaster_pid(pgdata: Path) -> None:
    """Remove postmaster.pid when its process is gone, so pg_ctl starts cleanly."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (ValueError, IndexError):
        pid = -1
    if pid > 0 and psutil.pid_exists(pid):
        try:
            if psutil.Process(pid).name() == "postgres":
                return
        except psutil.Error:
            pass
    log.info("embedded postgres: removing stale postmaster.pid (pid %s)", pid)
    pid_file.unlink(missing_ok=True)


def start_embedded(pgdata: Path) -> Any:
    """Start (or join) the embedded server for ``pgdata`` and return its handle."""
    _prepare_runtime_dir()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        _drop_dead_handles(pgdata)
        _drop_stale_postmaster_pid(pgdata)
    # Imported late: pgserver reads XDG_RUNTIME_DIR at import time.
    from pgserver.postgres_server import get_server

    return get_server(pgdata, cleanup_mode="stop")


def embedded_url(pgdata: Path, database: str) -> str:
    """SQLAlchemy URL of a database on the embedded server (started if needed)."""
    server = start_embedded(pgdata)
    info = server.get_postmaster_info()
    return f"postgresql+psycopg://postgres@/{database}?host={info.socket_dir}"


def postgres_bin_dir() -> Path:
    """Folder holding pgserver's PostgreSQL 16 binaries (pg_dump, psql, ...)."""
    _prepare_runtime_dir()
    from pgserver import _commands

    return Path(_commands.POSTGRES_BIN_PATH)
