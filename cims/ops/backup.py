"""Encrypted backups that prove they restore: create, verify, restore.

``create_backup`` exports a REPEATABLE READ snapshot, fingerprints every table in it (row
count and checksum) while ``pg_dump -Fc --snapshot`` dumps exactly that snapshot, and
streams the dump through the encrypted container of ``backup_format`` into
``<name>.partial``; only a complete file is renamed to ``<name>.cimsbak``, after its
manifest is in place. ``verify_backup`` checks the file against its manifest and, with
the private key, restores it into a scratch database and compares the fingerprints.
``restore_backup`` (backup_restore.py) restores into a temporary database and renames it
only when the restore is complete and matches. Guide: docs/operations-backup.md.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL

from cims.ops import backup_pg as pg
from cims.ops.backup_format import (
    CHUNK_BYTES,
    BackupError,
    EncryptingWriter,
    decrypt_stream,
    file_sha256,
    read_header,
)

SUFFIX = ".cimsbak"
MANIFEST_SUFFIX = ".manifest.json"
VERIFY_SUFFIX = ".verify.json"
Progress = Callable[[float, str], None]
# A full disk (or quota, or file size limit): one clear message, the partial file removed.
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_DUMPING = re.compile(r'dumping contents of table "?([^"\s]+)"?')


@dataclass(frozen=True)
class BackupResult:
    """A finished backup: its file, manifest and how long it took."""

    path: Path
    manifest_path: Path
    size: int
    sha256: str
    seconds: float
    manifest: dict[str, Any]


@dataclass
class VerifyReport:
    """What a verification checked and every problem it found (ok when none)."""

    path: Path
    restored: bool = False
    problems: list[str] = field(default_factory=list)
    checked_at: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.problems


def manifest_path(path: Path) -> Path:
    """The manifest that belongs to backup file ``path``."""
    return path.with_name(path.name + MANIFEST_SUFFIX)


def verify_record_path(path: Path) -> Path:
    """Where the latest verification of ``path`` is recorded."""
    return path.with_name(path.name + VERIFY_SUFFIX)


def content_sha256(content: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the content manifest (what the file seals)."""
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _new_name(target_dir: Path, now: dt.datetime) -> str:
    base = f"cims-{now:%Y%m%dT%H%M%S}Z"
    name, n = base, 1
    while (target_dir / (name + SUFFIX)).exists() or (target_dir / (name + ".partial")).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _drop_unfinished_manifest(final: Path) -> None:
    """A failed backup leaves no manifest (or half-written one) without its data file."""
    if not final.exists():
        manifest = manifest_path(final)
        manifest.with_name(manifest.name + ".tmp").unlink(missing_ok=True)
        manifest.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class _StderrWatcher(threading.Thread):
    """Drains a tool's stderr (so it never blocks), keeps the tail, counts dumped tables."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.tail: list[str] = []
        self.tables_done = 0

    def run(self) -> None:
        for raw in self.stream:
            line = raw.decode(errors="replace").rstrip()
            if _DUMPING.search(line):
                self.tables_done += 1
            elif line:
                self.tail = [*self.tail[-30:], line]

    def message(self) -> str:
        errors = [line for line in self.tail if "error" in line.lower()] or self.tail
        return "; ".join(errors[-5:])


def _fingerprint_in_snapshot(
    conn: Any, out: dict[str, Any], failure: list[BaseException]
) -> threading.Thread:
    def work() -> None:
        try:
            out.update(pg.table_fingerprints(conn))
        except BaseException as error:  # reported by the caller
            failure.append(error)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _anchor(url: URL, reason: str) -> None:
    from cims.security.audit_chain import anchor_head

    engine = create_engine(pg.url_text(url))
    try:
        anchor_head(engine, reason=reason)
    finally:
        engine.dispose()


def create_backup(
    engine_or_url: Engine | str | URL,
    *,
    target_dir: Path,
    public_key_path: Path,
    progress: Progress | None = None,
    anchor: bool = True,
) -> BackupResult:
    """Dump the database into a new encrypted backup file in ``target_dir``; see module doc."""
    started = time.monotonic()
    url = pg.as_url(engine_or_url)
    target_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda _fraction, _message: None)
    report(0.0, "start")
    if anchor:
        _anchor(url, "backup")  # the audit head this backup holds is on record outside it
    dump_tool = pg.pg_tool("pg_dump")
    conn = pg.connect(url)
    dump: subprocess.Popen[bytes] | None = None
    created = False  # only ever remove a partial file this call created
    now = dt.datetime.now(dt.UTC)
    name = _new_name(target_dir, now)
    partial = target_dir / (name + ".partial")
    final = target_dir / (name + SUFFIX)
    try:
        dump_major, server = pg.tool_major(dump_tool), pg.server_major(conn)
        pg.require_new_enough(dump_tool, dump_major, server)
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        conn.execute("SET LOCAL lock_timeout = '60s'")  # like pg_dump's --lock-wait-timeout
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        server_version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        has_alembic = conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()
        revision = None
        if has_alembic and has_alembic[0]:
            found = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = found[0] if found else None
        table_count = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
        ).fetchone()[0]  # type: ignore[index]
        dump = subprocess.Popen(
            [str(dump_tool), "-Fc", "-v", "--no-password", "--lock-wait-timeout=60000",
             f"--snapshot={snapshot}",
             # A running import's work tables (cims/interop/synthea_stager.py) come and go:
             # locking one the import has just dropped would fail the dump.
             "--exclude-schema=import_staging",
             "--dbname", str(url.database)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=pg.tool_env(url),
        )  # fmt: skip
        assert dump.stdout is not None and dump.stderr is not None
        watcher = _StderrWatcher(dump.stderr)
        watcher.start()
        tables: dict[str, Any] = {}
        failure: list[BaseException] = []
        fingerprinting = _fingerprint_in_snapshot(conn, tables, failure)
        info = {"created_at": now.isoformat(), "database": url.database}
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        created = True
        with os.fdopen(fd, "wb") as out:
            writer = EncryptingWriter(out, public_key_path, info)
            while chunk := dump.stdout.read(CHUNK_BYTES):
                writer.write_chunk(chunk)
                fraction = min(watcher.tables_done / max(int(table_count), 1), 1.0)
                report(0.9 * fraction, "dumping")
            code = dump.wait()
            watcher.join(5)
            if code != 0:
                raise BackupError(f"pg_dump failed (exit {code}): {watcher.message()}")
            fingerprinting.join()
            if failure:
                raise BackupError(f"could not fingerprint the tables: {failure[0]}")
            conn.commit()  # the snapshot is no longer needed
            content = {
                **info,
                "server_version": server_version,
                "pg_dump_version": dump_major,
                "alembic_revision": revision,
                "tables": tables,
            }
            writer.finish(content)
            out.flush()
            os.fsync(out.fileno())
        manifest = {
            **content,
            "file": final.name,
            "size": writer.size,
            "sha256": writer.sha256.hexdigest(),
            "content_sha256": content_sha256(content),
        }
        # The manifest first, the data file last: a file named *.cimsbak is complete.
        _write_json_atomically(manifest_path(final), manifest)
        os.replace(partial, final)
        _fsync_dir(target_dir)
    except BaseException as error:
        if dump is not None and dump.poll() is None:
            dump.kill()
            dump.wait()
        if created:
            partial.unlink(missing_ok=True)
            _drop_unfinished_manifest(final)
        if isinstance(error, OSError) and error.errno in _DISK_FULL:
            raise BackupError(
                f"no space left in the backup folder {target_dir} ({error.strerror}): "
                "this backup was not kept; earlier backups are untouched"
            ) from error
        raise
    finally:
        conn.close()
    report(1.0, "done")
    seconds = time.monotonic() - started
    return BackupResult(
        final, manifest_path(final), manifest["size"], manifest["sha256"], seconds, manifest
    )


def check_integrity(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The manifest and any problems with the file against it (no key needed)."""
    problems: list[str] = []
    if not path.name.endswith(SUFFIX):
        problems.append(f"{path.name} is not a finished backup (*{SUFFIX})")
    if not path.exists():
        return None, [*problems, f"{path} does not exist"]
    mpath = manifest_path(path)
    try:
        manifest: dict[str, Any] = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, [*problems, f"manifest {mpath.name} is missing or unreadable"]
    size, digest = file_sha256(path)
    if size != manifest.get("size"):
        problems.append(f"size is {size} bytes, the manifest says {manifest.get('size')}")
    if digest != manifest.get("sha256"):
        problems.append("sha256 differs from the manifest: the file was changed or damaged")
    content = {k: v for k, v in manifest.items() if k not in _FILE_FIELDS}
    if content_sha256(content) != manifest.get("content_sha256"):
        problems.append("the manifest was edited (its content hash does not match)")
    try:
        with path.open("rb") as handle:
            read_header(handle)
    except BackupError as error:
        problems.append(str(error))
    return manifest, problems


_FILE_FIELDS = ("file", "size", "sha256", "content_sha256")


def _restore_stream(path: Path, url: URL, private_key_path: Path) -> dict[str, Any]:
    """Decrypt ``path`` into ``pg_restore`` on database ``url``; returns the sealed manifest."""
    restore_tool = pg.pg_tool("pg_restore")
    with pg.connect(url.set(database="postgres"), autocommit=True) as conn:
        pg.require_new_enough(restore_tool, pg.tool_major(restore_tool), pg.server_major(conn))
    command = [str(restore_tool), "--exit-on-error", "--single-transaction", "--no-password",
               "--dbname", str(url.database)]  # fmt: skip
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=pg.tool_env(url),
    )  # fmt: skip
    assert proc.stdin is not None and proc.stderr is not None
    watcher = _StderrWatcher(proc.stderr)
    watcher.start()
    sealed: dict[str, Any] | None = None
    try:
        with path.open("rb") as handle:
            for item in decrypt_stream(handle, private_key_path):
                if isinstance(item, dict):
                    sealed = item
                else:
                    proc.stdin.write(item)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # pg_restore stopped early: its exit code and message say why
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    code = proc.wait()
    watcher.join(5)
    if code != 0:
        raise BackupError(f"pg_restore failed (exit {code}): {watcher.message()}")
    if sealed is None:
        raise BackupError("the backup holds no sealed manifest")
    with pg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS import_staging")  # left out of every dump
    return sealed


def restore_checked(
    path: Path, url: URL, private_key_path: Path
) -> tuple[dict[str, Any], list[str]]:
    """Restore into the (empty, existing) database ``url`` and compare its fingerprints."""
    sealed = _restore_stream(path, url, private_key_path)
    with pg.connect(url) as conn:
        actual = pg.table_fingerprints(conn)
    return sealed, pg.compare_fingerprints(sealed.get("tables", {}), actual)


def verify_backup(
    path: Path, *, private_key_path: Path | None = None, scratch_url: str | URL | None = None
) -> VerifyReport:
    """Integrity against the manifest; with the private key, a full restore drill too.

    The drill restores into a scratch database on ``scratch_url``'s server (default: the
    configured database's server), compares row counts and checksums with what the backup
    recorded, and drops the scratch database. The outcome is saved next to the file.
    """
    started = time.monotonic()
    report = VerifyReport(path=path, checked_at=dt.datetime.now(dt.UTC).isoformat())
    manifest, report.problems = check_integrity(path)
    if manifest is not None and not report.problems and private_key_path is not None:
        base = pg.as_url(scratch_url) if scratch_url is not None else configured_url()
        scratch = f"cims_verify_{int(time.time())}_{os.getpid()}"
        url = base.set(database=scratch)
        pg.drop_stale_scratch(url, "cims_verify_", older_than_seconds=6 * 3600)
        pg.create_empty_database(url, scratch)
        try:
            sealed, differences = restore_checked(path, url, private_key_path)
            report.restored = True
            report.problems += differences
            external = {k: v for k, v in manifest.items() if k not in _FILE_FIELDS}
            if sealed != external:
                report.problems.append("the manifest differs from the one sealed in the file")
        except BackupError as error:
            report.problems.append(str(error))
        finally:
            pg.drop_database(url, scratch)
    report.seconds = time.monotonic() - started
    if path.exists() and path.name.endswith(SUFFIX):
        record = {
            "checked_at": report.checked_at,
            "ok": report.ok,
            "restored": report.restored,
            "problems": report.problems,
        }
        _write_json_atomically(verify_record_path(path), record)
    return report


def configured_url() -> URL:
    """The URL of the configured (live) database."""
    from cims.db import database_url

    return pg.as_url(database_url())
