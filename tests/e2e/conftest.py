"""Browser journeys: a real CIMS server on a seeded database, driven by Debian chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, expect, sync_playwright
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

import factories
from cims.config import PROJECT_ROOT
from cims.security.crypto import load_cipher
from cims.security.models import User
from journeys import IDLE_SECONDS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SHOTS = PROJECT_ROOT / "var" / "e2e"
BACKUPS = PROJECT_ROOT / "var" / "e2e-backups"
# A busy machine draws pages slowly: assertions wait up to 20 s unless a test says otherwise.
expect.set_options(timeout=20_000)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def e2e_db(fresh_database: Callable[[str], str]) -> str:
    """A seeded demo hospital for the browser journeys."""
    from cims.demo.seed import seed_demo
    from cims.security.audit_chain import default_anchor_dir

    url = fresh_database("e2e")
    engine = create_engine(url)
    # The anchors of an earlier run's database of the same name belong to another chain.
    shutil.rmtree(default_anchor_dir(engine), ignore_errors=True)
    seed_demo(engine, patients=300, seed=11)
    engine.dispose()
    shutil.rmtree(BACKUPS, ignore_errors=True)  # backups of an earlier run's database
    return url


@contextmanager
def _serving(
    database_url: str, log_name: str, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """``streamlit run server.py`` (the app and its HTTP routes) on a free port; its URL.

    ``extra_env`` adds or overrides CIMS_* settings for this one server.
    """
    port = _free_port()
    env = dict(
        os.environ,
        CIMS_DATABASE_URL=database_url,
        CIMS_DEFAULT_LANGUAGE="en",
        CIMS_PORT=str(port),
        CIMS_ANALYTICS_DIR=str(PROJECT_ROOT / "var" / "e2e-analytics"),
        # "Back up now" writes here, never into the project's own var/backups.
        CIMS_BACKUP_DIR=str(BACKUPS),
        **(extra_env or {}),
    )
    log = open(PROJECT_ROOT / "var" / log_name, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "server.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as reply:  # noqa: S310
                if reply.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError(f"the CIMS server did not start; see var/{log_name}")
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def server(e2e_db: str) -> Iterator[str]:
    """The CIMS server under test; yields its base URL."""
    with _serving(e2e_db, "e2e-server.log") as base:
        yield base


@pytest.fixture(scope="session")
def second_server(e2e_db: str) -> Iterator[str]:
    """A second app process on another port against the same database."""
    with _serving(e2e_db, "e2e-server-2.log") as base:
        yield base


@pytest.fixture(scope="session")
def idle_server(e2e_db: str) -> Iterator[str]:
    """An app process whose sessions end after IDLE_SECONDS without a request."""
    minutes = str(IDLE_SECONDS / 60)
    with _serving(e2e_db, "e2e-server-idle.log", {"CIMS_SESSION_IDLE_MINUTES": minutes}) as base:
        yield base


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian chromium (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError("chromium is not installed: run `make e2e`, which installs it")
    with sync_playwright() as pw:
        instance = _launch(pw)
        yield instance
        instance.close()


def _launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@pytest.fixture(scope="session")
def totp_for(e2e_db: str) -> Callable[[str], str]:
    """Current TOTP code of a demo account (what `cims demo-otp USER` prints)."""

    def code(username: str) -> str:
        engine = create_engine(e2e_db)
        with Session(engine) as session:
            user = session.scalar(select(User).where(User.username == username))
            assert user is not None and user.totp_secret_enc is not None
            secret = load_cipher(session).decrypt_text(
                user.totp_secret_enc, table="users", column="totp_secret", row_id=user.id
            )
            last_step = user.totp_last_step
        engine.dispose()
        return factories.fresh_totp(secret, last_step)

    return code


@pytest.fixture(scope="session")
def shots() -> Path:
    """Folder for screenshots taken at each journey's key step."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
