"""Encrypted backup and verification throughput, and their cost over a plain pg_dump.

On a seeded demo hospital (``cims_bench_backup_<N>`` on the configured server, reused when
it already holds N patients), in one run:

- backup_mb_per_s: size of the encrypted backup / time of ``create_backup`` (snapshot,
  table fingerprints, ``pg_dump -Fc``, AES-256-GCM, manifest).
- verify_mb_per_s: size / time of ``verify_backup`` with the private key (integrity, then a
  full restore into a scratch database and a fingerprint comparison).
- overhead_vs_pg_dump: our backup time / a plain ``pg_dump -Fc`` to a file (same binary,
  same database, best of ``--rounds``); goal <= 1.5.

Files go to var/bench/backup/ and are removed afterwards. Last stdout line is one JSON object.

    .venv/bin/python bench/backup.py [--patients N] [--rounds R]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import bench_url, fresh_database
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cims.config import PROJECT_ROOT
from cims.ops import backup_pg as pg
from cims.ops.backup import create_backup, verify_backup
from cims.ops.backup_format import generate_key_pair

WORK = PROJECT_ROOT / "var" / "bench" / "backup"


def _database(patients: int) -> str:
    """The benchmark hospital of ``patients`` patients, seeded once and then reused."""
    name = f"cims_bench_backup_{patients}"
    url = bench_url(name)
    if pg.database_exists(make_url(url), name):
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                count = conn.scalar(text("SELECT count(*) FROM patients"))
        except Exception:  # half-seeded by an interrupted run: seed again
            count = None
        engine.dispose()
        if count == patients:
            return url
    from cims.demo.seed import seed_demo

    url = fresh_database(name)
    engine = create_engine(url)
    seed_demo(engine, patients=patients, seed=42, reference_date=dt.date(2026, 11, 26))
    engine.dispose()
    return url


def _plain_dump_seconds(url: str, out: Path) -> tuple[float, int]:
    """Seconds and bytes of a plain ``pg_dump -Fc`` of the database to a file."""
    parsed = make_url(url)
    started = time.perf_counter()
    subprocess.run(
        [str(pg.pg_tool("pg_dump")), "-Fc", "--no-password", "-f", str(out),
         "--dbname", str(parsed.database)],
        check=True, env=pg.tool_env(parsed),
    )  # fmt: skip
    seconds = time.perf_counter() - started
    size = out.stat().st_size
    out.unlink()
    return seconds, size


def main() -> None:
    """Seed (or reuse), dump plainly and encrypted in turns, verify, print the JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    started = time.perf_counter()
    url = _database(args.patients)
    seed_s = time.perf_counter() - started
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    public, private = WORK / "public.pem", WORK / "private.pem"
    generate_key_pair(public, private)

    plain: list[float] = []
    ours: list[float] = []
    result = None
    plain_size = 0
    for round_number in range(args.rounds):
        seconds, plain_size = _plain_dump_seconds(url, WORK / "plain.dump")
        plain.append(seconds)
        if result is not None:
            result.path.unlink()
            result.manifest_path.unlink()
        folder = WORK / f"round{round_number}"
        result = create_backup(url, target_dir=folder, public_key_path=public, anchor=False)
        ours.append(result.seconds)
    assert result is not None

    report = verify_backup(result.path, private_key_path=private, scratch_url=url)
    if not report.ok:
        raise SystemExit(f"verification failed: {report.problems}")
    megabytes = result.size / 1e6
    print(
        json.dumps(
            {
                "bench": "backup",
                "patients": args.patients,
                "database_rows": sum(t["rows"] for t in result.manifest["tables"].values()),
                "seed_or_reuse_s": round(seed_s, 1),
                "backup_mb": round(megabytes, 2),
                "plain_dump_mb": round(plain_size / 1e6, 2),
                "plain_dump_s": round(min(plain), 2),
                "backup_s": round(min(ours), 2),
                "verify_s": round(report.seconds, 2),
                "backup_mb_per_s": round(megabytes / min(ours), 2),
                "verify_mb_per_s": round(megabytes / report.seconds, 2),
                "overhead_vs_pg_dump": round(min(ours) / min(plain), 2),
            }
        )
    )
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
