"""Encrypted backups: round trip, no plaintext, keys, tampering, retention, a killed backup.

Runs on the embedded server by default and on any server CIMS_TEST_DATABASE_URL names
(CI: PostgreSQL 15; pgserver's pg_dump 16 serves both).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cims.config import PROJECT_ROOT
from cims.ops import backup_pg as pg
from cims.ops.backup import (
    SUFFIX,
    BackupResult,
    content_sha256,
    create_backup,
    manifest_path,
    verify_backup,
)
from cims.ops.backup_format import (
    BackupError,
    BackupKeyError,
    decrypt_stream,
    file_sha256,
    generate_key_pair,
)
from cims.ops.backup_restore import restore_backup
from cims.ops.backup_store import backups_to_keep, list_backups, prune
from cims.patients.models import Patient
from cims.security.audit_chain import default_anchor_dir, read_anchors
from cims.security.crypto import load_cipher

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A backup key pair of the test's own (2048 bits: quick to make)."""
    folder = tmp_path_factory.mktemp("keys")
    public, private = folder / "public.pem", folder / "private.pem"
    generate_key_pair(public, private, bits=2048)
    return public, private


@pytest.fixture(scope="module")
def source_url(fresh_database: Callable[[str], str]) -> str:
    """A small seeded hospital to back up."""
    from cims.demo.seed import seed_demo

    url = fresh_database("backup_src")
    engine = create_engine(url)
    seed_demo(engine, patients=40, seed=11)
    with engine.begin() as conn:  # what a running Synthea import's stager holds
        conn.execute(text("CREATE UNLOGGED TABLE import_staging.stg_medications (v text)"))
        conn.execute(text("INSERT INTO import_staging.stg_medications VALUES ('staged')"))
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def backup(
    source_url: str, keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> BackupResult:
    """One finished backup of the source database."""
    steps: list[float] = []
    result = create_backup(
        source_url,
        target_dir=tmp_path_factory.mktemp("backups"),
        public_key_path=keys[0],
        progress=lambda fraction, _step: steps.append(fraction),
    )
    assert steps[0] == 0.0 and steps[-1] == 1.0
    return result


def _fingerprints(url: str) -> dict[str, dict[str, Any]]:
    with pg.connect(make_url(url)) as conn:
        return pg.table_fingerprints(conn)


def _copy(result: BackupResult, folder: Path) -> Path:
    """A copy of the backup and its manifest in ``folder`` (to damage freely)."""
    copy = folder / result.path.name
    shutil.copy(result.path, copy)
    shutil.copy(result.manifest_path, manifest_path(copy))
    return copy


def _rewrite_manifest(path: Path) -> None:
    """Make the manifest agree with a damaged file, as a careful attacker would."""
    manifest = json.loads(manifest_path(path).read_text())
    manifest["size"], manifest["sha256"] = file_sha256(path)
    manifest_path(path).write_text(json.dumps(manifest))


def test_round_trip_restores_identical_counts_and_checksums(
    source_url: str, backup: BackupResult, keys: tuple[Path, Path]
) -> None:
    live = _fingerprints(source_url)
    assert backup.manifest["tables"] == live
    assert live["patients"]["rows"] == 40 and live["audit_log"]["rows"] > 0
    assert backup.manifest["alembic_revision"] and backup.manifest["server_version"]

    report = verify_backup(backup.path, private_key_path=keys[1], scratch_url=source_url)
    assert report.ok and report.restored, report.problems
    assert [e.verification["ok"] for e in list_backups(backup.path.parent)] == [True]

    restored = restore_backup(backup.path, private_key_path=keys[1], live_url=source_url)
    anchor_dir = default_anchor_dir(create_engine(restored.url))
    try:
        assert restored.database.startswith("cims_restore_")
        tables = _fingerprints(restored.url)
        # Identical, plus the restore's own audit row.
        assert tables["audit_log"]["rows"] == live["audit_log"]["rows"] + 1
        assert {t: v for t, v in tables.items() if t != "audit_log"} == {
            t: v for t, v in live.items() if t != "audit_log"
        }
        engine = create_engine(restored.url)
        from cims.security.models import AuditEvent

        with Session(engine) as session:
            actions = session.scalars(select(AuditEvent.action)).all()
        engine.dispose()
        assert actions[-1] == "backup.restore"
        # An import's work tables are left out; their schema is there for the next import.
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT to_regnamespace('import_staging') IS NOT NULL"))
            assert conn.scalar(text("SELECT to_regclass('import_staging.stg_medications')")) is None
        engine.dispose()
        # The restored head is anchored outside the database, under the final name.
        anchors, _ = read_anchors(anchor_dir)
        assert [a.reason for a in anchors] == ["restore"]
        # A half-restored database never exists under the final name; the staging one is gone.
        assert not pg.database_exists(make_url(source_url), restored.database + "_restoring")
        with pytest.raises(BackupError, match="already exists"):
            restore_backup(backup.path, private_key_path=keys[1], target_url=restored.url)
    finally:
        pg.drop_database(make_url(source_url), restored.database)
        shutil.rmtree(anchor_dir, ignore_errors=True)


def test_backup_holds_no_plaintext_patient_values(
    source_url: str, backup: BackupResult, keys: tuple[Path, Path]
) -> None:
    engine = create_engine(source_url)
    with Session(engine) as session:
        cipher = load_cipher(session)
        secrets = []
        for patient in session.scalars(select(Patient).limit(20)):
            for column, blob in (
                ("national_id", patient.national_id_enc),
                ("phone", patient.phone_enc),
            ):
                if blob is not None:
                    value = cipher.decrypt_text(
                        blob, table="patients", column=column, row_id=patient.id
                    )
                    secrets.append(value.encode())
            secrets.append(patient.full_name.encode())
    engine.dispose()
    assert len(secrets) >= 40
    raw = backup.path.read_bytes()
    assert [s for s in secrets if s in raw] == []

    # Inside, the dump itself holds only the encrypted columns: as SQL, no ID or phone.
    tool = pg.pg_tool("pg_restore")
    script = subprocess.Popen([str(tool), "-f", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    with backup.path.open("rb") as handle:
        chunks = [c for c in decrypt_stream(handle, keys[1]) if isinstance(c, bytes)]
    sql, _ = script.communicate(b"".join(chunks))
    assert script.returncode == 0 and b"COPY public.patients" in sql
    identifiers = [s for s in secrets if s.isdigit() or s[:-1].isdigit()]
    assert identifiers and [s for s in identifiers if s in sql] == []


def test_a_wrong_private_key_cannot_restore(
    backup: BackupResult, source_url: str, tmp_path: Path
) -> None:
    other_public, other_private = tmp_path / "other.pub", tmp_path / "other.key"
    generate_key_pair(other_public, other_private, bits=2048)
    report = verify_backup(backup.path, private_key_path=other_private, scratch_url=source_url)
    assert not report.ok and not report.restored
    assert "made for key" in report.problems[0]
    with pytest.raises(BackupKeyError, match="made for key"):
        restore_backup(backup.path, private_key_path=other_private, live_url=source_url)
    # Without any private key only the integrity can be checked: no restore drill.
    integrity = verify_backup(_copy(backup, tmp_path), private_key_path=None)
    assert integrity.ok and not integrity.restored


def test_a_bit_flip_fails_verification_even_with_a_matching_manifest(
    backup: BackupResult, keys: tuple[Path, Path], source_url: str, tmp_path: Path
) -> None:
    copy = _copy(backup, tmp_path)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    assert "sha256 differs" in " ".join(verify_backup(copy, private_key_path=None).problems)
    _rewrite_manifest(copy)
    report = verify_backup(copy, private_key_path=keys[1], scratch_url=source_url)
    assert not report.ok and "fails authentication" in " ".join(report.problems)


def test_a_truncated_file_fails_verification(
    backup: BackupResult, keys: tuple[Path, Path], source_url: str, tmp_path: Path
) -> None:
    copy = _copy(backup, tmp_path)
    data = copy.read_bytes()
    copy.write_bytes(data[: len(data) - 100])
    assert not verify_backup(copy, private_key_path=None).ok
    _rewrite_manifest(copy)
    report = verify_backup(copy, private_key_path=keys[1], scratch_url=source_url)
    assert not report.ok and "truncated" in " ".join(report.problems)
    # Cut exactly at a record boundary (the sealed final record dropped): still caught.
    with backup.path.open("rb") as handle:
        header_end = 12 + int.from_bytes(handle.read(12)[8:], "big")
        handle.seek(header_end)
        first = int.from_bytes(handle.read(4), "big")
    copy.write_bytes(data[: header_end + 4 + first])
    _rewrite_manifest(copy)
    report = verify_backup(copy, private_key_path=keys[1], scratch_url=source_url)
    assert not report.ok and "fails authentication" in " ".join(report.problems)


def test_an_edited_or_swapped_manifest_is_detected(
    backup: BackupResult, keys: tuple[Path, Path], source_url: str, tmp_path: Path
) -> None:
    copy = _copy(backup, tmp_path)
    manifest = json.loads(manifest_path(copy).read_text())
    manifest["tables"]["patients"]["rows"] = 41
    manifest_path(copy).write_text(json.dumps(manifest))
    assert "manifest was edited" in " ".join(verify_backup(copy, private_key_path=None).problems)
    content = {k: v for k, v in manifest.items() if k not in ("file", "size", "sha256")}
    content.pop("content_sha256")
    manifest["content_sha256"] = content_sha256(content)
    manifest_path(copy).write_text(json.dumps(manifest))
    report = verify_backup(copy, private_key_path=keys[1], scratch_url=source_url)
    assert not report.ok and any("sealed in the file" in p for p in report.problems)


def test_an_older_pg_dump_is_refused_with_a_clear_message() -> None:
    with pytest.raises(
        BackupError, match="pg_dump is PostgreSQL 15 but the server is PostgreSQL 16"
    ):
        pg.require_new_enough(Path("/usr/bin/pg_dump"), 15, 16)
    pg.require_new_enough(Path("pg_dump"), 16, 15)  # newer than the server: fine
    assert pg.tool_major(pg.pg_tool("pg_dump")) >= 16


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(2, 0), tzinfo=SHANGHAI).astimezone(dt.UTC)


def test_retention_keeps_7_daily_4_weekly_12_monthly() -> None:
    today = dt.date(2026, 11, 26)  # a Thursday
    times = [_at(today - dt.timedelta(days=n)) for n in range(400)]
    kept = backups_to_keep(times, daily=7, weekly=4, monthly=12, zone=SHANGHAI)
    days = {t.astimezone(SHANGHAI).date() for t in kept}
    daily = {today - dt.timedelta(days=n) for n in range(7)}
    weekly = {dt.date(2026, 11, 15), dt.date(2026, 11, 8)}  # Sundays ending older weeks
    monthly = {dt.date(2026, m + 1, 1) - dt.timedelta(days=1) for m in range(1, 11)}
    monthly.add(dt.date(2025, 12, 31))
    assert days == daily | weekly | monthly and len(kept) == 20
    assert backups_to_keep([], daily=7, weekly=4, monthly=12, zone=SHANGHAI) == set()
    # Two backups on one day: the newer one represents the day.
    pair = [_at(today), _at(today) + dt.timedelta(hours=3)]
    assert backups_to_keep(pair, daily=1, weekly=0, monthly=0, zone=SHANGHAI) == {pair[1]}


def test_prune_deletes_exactly_the_files_retention_drops(tmp_path: Path) -> None:
    from cims.config import Settings

    today = dt.date(2026, 11, 26)
    for n in range(30):
        created = _at(today - dt.timedelta(days=n))
        path = tmp_path / f"cims-{created:%Y%m%dT%H%M%S}Z{SUFFIX}"
        path.write_bytes(b"x")
        manifest_path(path).write_text(json.dumps({"created_at": created.isoformat()}))
    fresh_partial = tmp_path / "cims-killed.partial"
    fresh_partial.write_bytes(b"half")
    settings = Settings(backup_keep_daily=3, backup_keep_weekly=2, backup_keep_monthly=2)
    removed = prune(tmp_path, settings, SHANGHAI)
    left = sorted(e.created_at.astimezone(SHANGHAI).date().day for e in list_backups(tmp_path))
    # Days 24-26 (daily), Sunday the 22nd (last week), October 31st (last month).
    assert left == [22, 24, 25, 26, 31] and len(removed) == 25
    assert fresh_partial.exists()  # a partial file is only cleared once it is a day old
    assert sorted(p.name for p in tmp_path.glob("*.manifest.json")) == sorted(
        e.name + ".manifest.json" for e in list_backups(tmp_path)
    )


def _cli_env(url: str, keys: tuple[Path, Path]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CIMS_DATABASE_URL=url,
        CIMS_BACKUP_PUBLIC_KEY=str(keys[0]),
        CIMS_BACKUP_PRIVATE_KEY=str(keys[1]),
        PYTHONPATH=str(PROJECT_ROOT),
    )
    return env


def test_a_backup_killed_mid_way_leaves_nothing_that_passes(
    source_url: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    target = tmp_path / "killed"
    # Hold a lock pg_dump must wait for, so the kill lands while the backup is under way.
    blocker = psycopg.connect(pg.conninfo(make_url(source_url)))
    blocker.execute("LOCK TABLE patients IN ACCESS EXCLUSIVE MODE")
    command = [sys.executable, "-m", "cims", "backup", "create", "--target", str(target)]
    proc = subprocess.Popen(command, env=_cli_env(source_url, keys), cwd=PROJECT_ROOT)
    try:
        deadline = time.monotonic() + 60
        while not list(target.glob("*.partial")) and time.monotonic() < deadline:
            assert proc.poll() is None, "the backup ended before it could be killed"
            time.sleep(0.02)
        assert list(target.glob("*.partial"))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        blocker.rollback()
        blocker.close()
    time.sleep(0.5)  # pg_dump, orphaned, stops on its broken pipe
    assert list(target.glob(f"*{SUFFIX}")) == [] and list_backups(target) == []
    for leftover in target.iterdir():
        assert not verify_backup(leftover, private_key_path=keys[1]).ok


def test_cli_create_prints_the_path_last_and_verify_and_restore_exit_codes(
    source_url: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    env = _cli_env(source_url, keys)
    base = [sys.executable, "-m", "cims", "backup"]
    created = subprocess.run(
        [*base, "create", "--target", str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert created.returncode == 0, created.stderr
    path = Path(created.stdout.strip().splitlines()[-1])
    assert path.exists() and path.parent == tmp_path and path.name.endswith(SUFFIX)
    verified = subprocess.run([*base, "verify", str(path)], env=env, capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    path.write_bytes(path.read_bytes()[:-1])
    broken = subprocess.run([*base, "verify", str(path)], env=env, capture_output=True, text=True)
    assert broken.returncode == 1 and "FAIL" in broken.stderr
    refused = subprocess.run([*base, "restore", str(path)], env=env, capture_output=True, text=True)
    assert refused.returncode == 1


@pytest.fixture
def restored_names(source_url: str) -> Iterator[list[str]]:
    """Databases a test created, dropped afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        pg.drop_database(make_url(source_url), name)
        shutil.rmtree(default_anchor_dir() / name, ignore_errors=True)


def test_replace_live_takes_a_fresh_backup_and_keeps_the_old_database(
    source_url: str,
    backup: BackupResult,
    keys: tuple[Path, Path],
    tmp_path: Path,
    restored_names: list[str],
) -> None:
    # A "live" database of its own, changed after the backup was taken.
    live = restore_backup(backup.path, private_key_path=keys[1], live_url=source_url)
    restored_names.append(live.database)
    with psycopg.connect(pg.conninfo(make_url(live.url)), autocommit=True) as conn:
        conn.execute(
            "UPDATE patients SET blood_type = 'AB-' WHERE id IN (SELECT min(id) FROM patients)"
        )
    changed = _fingerprints(live.url)
    result = restore_backup(
        backup.path, private_key_path=keys[1], replace_live=True, live_url=live.url,
        public_key_path=keys[0], backup_dir=tmp_path,
    )  # fmt: skip
    assert result.replaced_as is not None
    restored_names.append(result.replaced_as)
    assert result.database == live.database
    assert result.safety_backup is not None and result.safety_backup.parent == tmp_path
    tables = _fingerprints(live.url)
    assert {t: v for t, v in tables.items() if t not in ("audit_log", "audit_seals")} == {
        t: v for t, v in backup.manifest["tables"].items() if t not in ("audit_log", "audit_seals")
    }
    kept = make_url(live.url).set(database=result.replaced_as).render_as_string(False)
    assert _fingerprints(kept)["patients"] == changed["patients"]


def test_a_killed_drill_s_scratch_database_is_dropped_later(source_url: str) -> None:
    server = make_url(source_url)
    old, fresh = "cims_verify_1000_1", f"cims_verify_{int(time.time())}_1"
    for name in (old, fresh):
        pg.drop_database(server, name)
        pg.create_empty_database(server, name)
    try:
        assert pg.drop_stale_scratch(server, "cims_verify_", older_than_seconds=3600) == [old]
        assert pg.database_exists(server, fresh) and not pg.database_exists(server, old)
    finally:
        pg.drop_database(server, fresh)
