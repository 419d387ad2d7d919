"""Browser load: N doctors at once sign in through the real form and open patient summaries.

A demo hospital (``cims_bench_browser_<P>`` on the configured server, seeded once and reused)
is served by ``streamlit run server.py`` as in the browser journeys (tests/e2e/conftest.py);
Debian chromium (/usr/bin/chromium) opens one browser context per session. Each session
signs in as its own doctor (Endocrinology, TOTP-enrolled; created once): a TOTP code is
single-use per 30-second step, so one account cannot sign in N times at the same moment.
Then it opens ``patient_summary?patient=<id>`` for ``--opens`` patients in its care, each
timed until the banner with the patient's MRN is drawn and the script run has finished.

- sign_in_p50_s / _p95_s: username and password, then the TOTP code, until "Sign out" shows
  (includes bcrypt and the deliberate sign-in delay).
- summary_page_p50_ms / _p95_ms / _p99_ms: one summary page, address typed to drawn.
- overhead_vs_single_session: the concurrent summary p50 against one session alone, measured
  first in the same run.
- errors: steps that did not finish within 3 minutes (each ends its session, screenshot in
  var/bench/browser_load/).

The browsers run on the same machine as the server: on 2 cores, N renderers drawing the
summary's charts compete with the server for the CPU, so these are whole-machine figures.

Last stdout line is one JSON object.

    .venv/bin/python bench/browser_load.py [--sessions N] [--opens K] [--patients P]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pyotp
from _common import bench_url, fresh_database
from playwright.async_api import Browser, Page, async_playwright, expect
from playwright.async_api import Error as PlaywrightError
from sqlalchemy import create_engine, func, or_, select, text
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.config import PROJECT_ROOT, get_settings
from cims.org.models import Department
from cims.patients.models import Patient
from cims.records.models import Encounter
from cims.security.accounts import create_account
from cims.security.crypto import load_cipher
from cims.security.mfa import new_totp_secret
from cims.security.models import User

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
# Published with the benchmark; these accounts live only in the benchmark's database.
PASSWORD = "Bench-Browser-Ward-2026"  # noqa: S105
PAGE_TIMEOUT_MS = 180_000  # past this a page counts as an error, not as a slow page
LOG = PROJECT_ROOT / "var" / "bench" / "browser_load" / "server.log"
SETTLED_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app !== null
        && app.getAttribute('data-test-script-state') === 'notRunning'
        && app.getAttribute('data-test-connection-state') === 'CONNECTED'
        && document.querySelector('[data-stale="true"]') === null;
}"""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _database(patients: int) -> str:
    """The seeded hospital (seeded on first use; reused while it holds the patients)."""
    name = f"cims_bench_browser_{patients}"
    url = bench_url(name)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            held = conn.scalar(text("SELECT count(*) FROM patients"))
    except Exception:  # missing or not migrated: build it
        held = None
    finally:
        engine.dispose()
    if held == patients:
        return url
    from cims.demo.seed import seed_demo

    _say(f"seeding {patients:,} patients into {name} (once)")
    url = fresh_database(name)
    engine = create_engine(url)
    seed_demo(engine, patients=patients, seed=42)
    engine.dispose()
    return url


def _doctors(url: str, count: int) -> tuple[list[str], list[tuple[int, str]]]:
    """``count`` Endocrinology doctors with TOTP (created once) and patients in their care."""
    engine = create_engine(url)
    since = utcnow() - dt.timedelta(days=get_settings().care_window_days)
    with Session(engine) as db, db.begin():
        endo = db.scalar(select(Department.id).where(Department.code == "ENDO"))
        if endo is None:
            raise SystemExit("no Endocrinology department: not a demo hospital")
        cipher = load_cipher(db)
        names = []
        for n in range(count):
            username = f"bench.browser.doctor{n:02d}"
            if db.scalar(select(User.id).where(User.username == username)) is None:
                create_account(
                    session=db, username=username, display_name=f"Browser doctor {n}",
                    password=PASSWORD, roles=["doctor"], department_ids=[endo],
                    totp_secret=new_totp_secret(), cipher=cipher, title="主治医师",
                )  # fmt: skip
            names.append(username)
        patients = db.execute(
            select(Patient.id, Patient.mrn)
            .join(Encounter, Encounter.patient_id == Patient.id)
            .where(
                Encounter.department_id == endo,
                Encounter.voided.is_(False),
                or_(Encounter.ended_at.is_(None), Encounter.ended_at >= since),
                Patient.voided.is_(False),
            )
            .group_by(Patient.id, Patient.mrn)
            .order_by(func.min(Encounter.id))
            .limit(200)
        ).all()
    engine.dispose()
    if not patients:
        raise SystemExit("no Endocrinology patients in care: seed more patients")
    return names, [(p.id, p.mrn) for p in patients]


def _totp(url: str, username: str) -> str:
    """A code the server accepts: a step newer than the account's last used one."""
    engine = create_engine(url)
    with Session(engine) as db:
        user = db.scalar(select(User).where(User.username == username))
        assert user is not None and user.totp_secret_enc is not None
        secret = load_cipher(db).decrypt_text(
            user.totp_secret_enc, table="users", column="totp_secret", row_id=user.id
        )
        last = user.totp_last_step or 0
    engine.dispose()
    totp = pyotp.TOTP(secret)
    while True:
        current = int(time.time() // totp.interval)
        step = max(current, last + 1)
        if step <= current + 1:
            return str(totp.at(step * totp.interval))
        time.sleep(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(database_url: str) -> Iterator[str]:
    """``streamlit run server.py`` on a free port (as the browser journeys start it)."""
    port = _free_port()
    env = dict(
        os.environ,
        CIMS_DATABASE_URL=database_url,
        CIMS_DEFAULT_LANGUAGE="en",
        CIMS_PORT=str(port),
        # The day's housekeeping jobs (run on a new database's first start) write here.
        CIMS_ANALYTICS_DIR=str(LOG.parent / "analytics"),
        CIMS_BACKUP_DIR=str(LOG.parent / "backups"),
    )
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "server.py", "--server.port", str(port),
             "--server.address", "127.0.0.1"],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as reply:  # noqa: S310
                        if reply.status == 200:
                            break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"the CIMS server did not start; see {LOG}") from None
                    time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _settled(page: Page) -> None:
    await page.wait_for_function(SETTLED_JS, timeout=PAGE_TIMEOUT_MS)


async def _sign_in(page: Page, base: str, url: str, username: str) -> float:
    """Seconds from the sign-in page to signed in (password, then TOTP)."""
    await page.goto(base)
    name_box = page.get_by_role("textbox", name="Username")
    await expect(name_box).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    await _settled(page)
    started = time.perf_counter()
    await name_box.fill(username)
    await page.get_by_role("textbox", name="Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    box = page.get_by_role("textbox", name="6-digit code from your authenticator app")
    await expect(box).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    await box.fill(await asyncio.to_thread(_totp, url, username))
    await page.get_by_role("button", name="Verify").click()
    signed_out = page.get_by_role("button", name="Sign out", exact=True)
    await expect(signed_out).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    seconds = time.perf_counter() - started
    for _ in range(120):  # the cookie component acts in the browser after sign-in
        if any(c["name"] == "cims_session" for c in await page.context.cookies()):
            return seconds
        await page.wait_for_timeout(250)
    raise RuntimeError("the session cookie was never set")


async def _session(
    browser: Browser, base: str, url: str, username: str, patients: list[tuple[int, str]]
) -> tuple[float | None, list[float], list[str]]:
    """One doctor: sign in, then open each patient's summary.

    Returns (sign-in seconds, page milliseconds, errors); a step that fails ends the session
    (with a screenshot) and is counted, so one stuck page does not lose the other figures.
    """
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(PAGE_TIMEOUT_MS)  # a loaded 2-core machine is slow, not broken
    page = await context.new_page()
    sign_in_s: float | None = None
    pages: list[float] = []
    try:
        sign_in_s = await _sign_in(page, base, url, username)
        for patient_id, mrn in patients:
            started = time.perf_counter()
            await page.goto(f"{base}/patient_summary?patient={patient_id}")
            banner = page.get_by_role("heading", name=re.compile(f"MRN {mrn}"))
            await expect(banner).to_be_visible(timeout=PAGE_TIMEOUT_MS)
            await _settled(page)
            pages.append((time.perf_counter() - started) * 1000)
        return sign_in_s, pages, []
    except (AssertionError, PlaywrightError, RuntimeError) as failure:
        shot = LOG.parent / f"failed-{username}.png"
        with contextlib.suppress(PlaywrightError):
            await page.screenshot(path=str(shot), full_page=True)
        first = str(failure).splitlines()[0][:160]
        _say(f"{username}: {type(failure).__name__}: {first} (screenshot {shot})")
        return sign_in_s, pages, [f"{type(failure).__name__}: {first}"]
    finally:
        await context.close()


def _percentiles(values: list[float], points: list[int]) -> list[float | None]:
    if not values:
        return [None for _ in points]
    return [float(v) for v in np.percentile(np.array(values), points)]


async def _measure(
    base: str, url: str, doctors: list[str], patients: list[tuple[int, str]], opens: int
) -> dict[str, Any]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            # Warm the server (first script run imports everything), then one session alone.
            single_sign_in, single, failed = await _session(
                browser, base, url, doctors[0], patients[: opens + 1]
            )
            if failed or single_sign_in is None or len(single) < 2:
                raise SystemExit(f"the single session failed: {failed}")
            single = single[1:]  # the first summary run imports the page's libraries
            sessions = doctors[1:]
            began = time.perf_counter()
            results = await asyncio.gather(
                *(
                    _session(
                        browser, base, url, name, patients[(i * opens) % len(patients) :][:opens]
                    )
                    for i, name in enumerate(sessions)
                )
            )
            wall = time.perf_counter() - began
        finally:
            await browser.close()
    sign_ins = [r[0] for r in results if r[0] is not None]
    pages = [ms for r in results for ms in r[1]]
    errors = [e for r in results for e in r[2]]
    p50, p95, p99 = _percentiles(pages, [50, 95, 99])
    s50, s95 = _percentiles(sign_ins, [50, 95])
    single_p50 = float(np.median(np.array(single)))

    def rounded(value: float | None, digits: int | None = None) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "sessions": len(sessions),
        "summary_pages": len(pages),
        "errors": len(errors),
        "sign_in_p50_s": rounded(s50, 2),
        "sign_in_p95_s": rounded(s95, 2),
        "summary_page_p50_ms": rounded(p50),
        "summary_page_p95_ms": rounded(p95),
        "summary_page_p99_ms": rounded(p99),
        "single_session_sign_in_s": round(single_sign_in, 2),
        "single_session_summary_page_ms": round(single_p50),
        "overhead_vs_single_session": None if p50 is None else round(p50 / single_p50, 2),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    """Seed or reuse, serve, drive the browsers, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--opens", type=int, default=3, help="summaries opened per session")
    parser.add_argument("--patients", type=int, default=2000)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit("chromium is not installed: run `make e2e`, which installs it")
    url = _database(args.patients)
    doctors, patients = _doctors(url, args.sessions + 1)
    load_before = os.getloadavg()[0]
    with serving(url) as base:
        figures = asyncio.run(_measure(base, url, doctors, patients, args.opens))
    result = {"bench": "browser_load", "patients": args.patients, **figures}
    result |= {"loadavg_1m_before": round(load_before, 2),
               "loadavg_1m_after": round(os.getloadavg()[0], 2)}  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
