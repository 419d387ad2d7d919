"""Fixtures of the fault tests: one committed database for the folder, a backup set-up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from cims.config import get_settings
from cims.ops.backup_format import generate_key_pair
from cims.security.bootstrap import ensure_roles_and_privileges


@pytest.fixture(scope="session")
def faults_database(fresh_database: Callable[[str], str]) -> Iterator[tuple[str, Engine]]:
    """A migrated database of the fault tests; they commit, as the app does (no savepoint)."""
    url = fresh_database("faults")
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        ensure_roles_and_privileges(session)
    yield url, engine
    engine.dispose()


@pytest.fixture
def backup_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A backup folder and key pair of the test's own, in this process and for children.

    Under CIMS_ENV=test the scheduled backup skips unless CIMS_BACKUP_DIR is set; set it
    so nothing is ever written into the project's var/backups.
    """
    public, private = tmp_path / "public.pem", tmp_path / "private.pem"
    generate_key_pair(public, private, bits=2048)
    env = {
        "CIMS_BACKUP_DIR": str(tmp_path / "backups"),
        "CIMS_BACKUP_PUBLIC_KEY": str(public),
        "CIMS_BACKUP_PRIVATE_KEY": str(private),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield env
    monkeypatch.undo()
    get_settings.cache_clear()
