"""Shared by the benchmarks: a database of their own on the configured server."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.engine import make_url

from cims import migrate
from cims.db import database_url, recreate_database


def bench_url(name: str) -> str:
    """URL of database ``name`` on the server the settings name (embedded by default)."""
    return make_url(database_url()).set(database=name).render_as_string(hide_password=False)


def fresh_database(name: str) -> str:
    """Drop, create and migrate database ``name``; returns its URL."""
    url = bench_url(name)
    recreate_database(url)
    migrate.upgrade(url)
    return url
