"""Shared set-up for the hostile corpus, the report file and the one-line summary."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

import factories
from hostile.harness import LEDGER
from hostile.world import World, build_world


@pytest.fixture(scope="package")
def hostile(engine: Engine) -> Iterator[tuple[Session, World]]:
    """One small hospital for this package; every case runs in its own rolled-back savepoint.

    Package scope, not session: its open transaction holds locks (the data-key advisory lock)
    that every later test in the run would otherwise wait on for ever.
    """
    with factories.rolled_back_session(engine) as session:
        yield session, build_world(session)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line: how many hostile cases ran and how they ended (report in var/)."""
    if LEDGER.tried:
        terminalreporter.write_line(LEDGER.summary())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """var/hostile-report.json: counts tried, stored, refused by reason, failures."""
    if LEDGER.tried:
        LEDGER.write()
