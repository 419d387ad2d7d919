"""The embedded PostgreSQL starts fresh, is reused, and recovers from a killed process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from cims.config import PROJECT_ROOT

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sqlalchemy import create_engine, text
    from cims.embedded import embedded_url
    url = embedded_url(Path(sys.argv[1]), "postgres")
    engine = create_engine(url)
    with engine.connect() as conn:
        print(conn.scalar(text("SELECT 41 + 1")), flush=True)
    if sys.argv[2] == "hang":
        time.sleep(600)
    """
)


def _run(pgdata: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(pgdata), mode],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_server_survives_a_killed_process_and_starts_again() -> None:
    # Inside the project: pgserver (as root) opens read access on every parent folder.
    pgdata = PROJECT_ROOT / "var" / f"test-pgdata-{os.getpid()}"
    try:
        first = _run(pgdata, "hang")
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "42"
        os.kill(first.pid, signal.SIGKILL)  # a crash: no clean-up runs
        first.wait()
        handles = json.loads((pgdata / ".handle_pids.json").read_text())
        assert first.pid in handles  # the dead pid is left behind ...
        second = _run(pgdata, "exit")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        assert out.strip() == "42"  # ... and the next start still works
        assert first.pid not in json.loads((pgdata / ".handle_pids.json").read_text())
        # The last process stopped the server on exit: no postmaster is left running.
        assert not (pgdata / "postmaster.pid").exists()
    finally:
        subprocess.run(
            [str(_pg_ctl()), "-D", str(pgdata), "stop", "-m", "immediate"],
            capture_output=True,
            check=False,
            user="pgserver" if os.geteuid() == 0 else None,
        )
        subprocess.run(["rm", "-rf", str(pgdata)], check=False)


def _pg_ctl() -> Path:
    from cims.embedded import postgres_bin_dir

    return postgres_bin_dir() / "pg_ctl"
