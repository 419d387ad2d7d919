"""Test set-up: a real PostgreSQL database, migrated, with a savepoint per test.

By default the embedded server (var/pgdata) hosts a throw-away database; set
CIMS_TEST_DATABASE_URL to run the same suite against another server (CI runs it
again on the machine's PostgreSQL 15). A server that cannot be reached fails the
run: nothing here skips.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

os.environ.setdefault("CIMS_ENV", "test")
os.environ.setdefault("CIMS_BCRYPT_ROUNDS", "4")
os.environ.setdefault("CIMS_LOGIN_SLEEP_SECONDS", "0")

import factories
from cims import migrate
from cims.config import PROJECT_ROOT
from cims.db import normalise_url, recreate_database


def _server_url(database: str) -> str:
    """URL of ``database`` on the server under test."""
    given = os.environ.get("CIMS_TEST_DATABASE_URL")
    if given:
        return str(make_url(normalise_url(given)).set(database=database))
    from cims.embedded import embedded_url

    return embedded_url(PROJECT_ROOT / "var" / "pgdata", database)


def _worker_suffix() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def fresh_database() -> Callable[[str], str]:
    """Factory: an empty, migrated database of the given name; returns its URL."""

    def make(name: str) -> str:
        url = _server_url(f"cims_test_{name}_{_worker_suffix()}")
        recreate_database(url)
        migrate.upgrade(url)
        return url

    return make


@pytest.fixture(scope="session")
def seeded_app_database(
    fresh_database: Callable[[str], str],
) -> Callable[..., AbstractContextManager[str]]:
    """Factory: a small seeded demo hospital that the app under test is pointed at."""

    @contextmanager
    def make(name: str, *, patients: int = 300, seed: int = 7) -> Iterator[str]:
        from cims.db import reset_engine
        from cims.demo.seed import seed_demo

        url = fresh_database(name)
        engine = create_engine(url)
        seed_demo(engine, patients=patients, seed=seed)
        engine.dispose()
        previous = os.environ.get("CIMS_DATABASE_URL")
        os.environ["CIMS_DATABASE_URL"] = url
        reset_engine()
        try:
            yield url
        finally:
            if previous is None:
                os.environ.pop("CIMS_DATABASE_URL", None)
            else:
                os.environ["CIMS_DATABASE_URL"] = previous
            reset_engine()

    return make


@pytest.fixture(scope="session")
def database_url(fresh_database: Callable[[str], str]) -> str:
    """The shared test database (migrated to head, reference data loaded)."""
    url = fresh_database("core")
    engine = create_engine(url)
    with Session(engine) as session:
        from cims.security.bootstrap import ensure_roles_and_privileges

        ensure_roles_and_privileges(session)
        session.commit()
    engine.dispose()
    os.environ["CIMS_DATABASE_URL"] = url
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """Engine on the shared test database."""
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the shared test database, rolled back after the test."""
    with factories.rolled_back_session(engine) as db:
        yield db


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--e2e`` runs the browser journeys (make e2e); the normal suite leaves them out."""
    parser.addoption("--e2e", action="store_true", help="run real-browser journeys")


def pytest_ignore_collect(collection_path: object, config: pytest.Config) -> bool | None:
    """Collect tests/e2e only when --e2e is given, and then only them."""
    in_e2e = "e2e" in getattr(collection_path, "parts", ())
    if config.getoption("--e2e"):
        return None
    return True if in_e2e else None
