"""A backup into a folder with no space left: one clear, translated message (no traceback),
the database unchanged, earlier backups still valid and listed, no partial file kept.

Two ways to run out of room, both in a separate app process (the page and the service
run there through AppTest): a real full filesystem (a small tmpfs filled to the last
page: ENOSPC) where this machine lets the test mount one, and a file size limit
(RLIMIT_FSIZE: EFBIG) that works for any user. Without mount rights the first case also
uses the file size limit.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fault_helpers import changed_tables, child_output, fingerprints, reaped, start_child
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

import factories
from cims.i18n import t
from cims.ops.backup import check_integrity, verify_backup
from cims.ops.backup_service import back_up_now
from cims.ops.backup_store import list_backups
from cims.security.accounts import build_actor
from cims.security.audit_chain import seal_pending
from cims.security.models import AuditEvent, User

FILE_SIZE_LIMIT = 16 * 1024  # the header fits, the first sealed record of the dump does not


@contextmanager
def out_of_room(folder: Path, how: str) -> Iterator[tuple[dict[str, int], str]]:
    """A backup folder that can hold what is in it now and not one page more.

    Yields a function to call once the earlier backup is in place; it fills the folder
    and returns the child's extra arguments plus the error number to expect.
    """
    folder.mkdir(parents=True, exist_ok=True)
    mounted = how == "full_filesystem" and os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", str(folder)],
        capture_output=True,
    ).returncode == 0  # fmt: skip
    try:
        if mounted:
            yield {}, "ENOSPC"
        else:
            yield {"file_size_limit": FILE_SIZE_LIMIT}, "EFBIG"
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


def _fill(folder: Path) -> Path:
    """Write zeros until the filesystem has no page left."""
    filler = folder / "filler.bin"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(bytes(1 << 16))
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def _actor_id(engine: Engine) -> int:
    with Session(engine) as session, session.begin():
        admin = factories.user(session, "admin")
        factories.patient(session)
        return admin.id


def _back_up(engine: Engine, user_id: int) -> Path:
    with Session(engine) as session, session.begin():
        user = session.get(User, user_id)
        assert user is not None
        return back_up_now(session=session, actor=build_actor(session, user)).path


def _backup_audits(engine: Engine, outcome: str = "success") -> int:
    with Session(engine) as session:
        query = select(func.count()).where(
            AuditEvent.action == "backup.create", AuditEvent.outcome == outcome
        )
        return session.scalar(query) or 0


@pytest.mark.parametrize("how", ["full_filesystem", "file_size_limit"])
def test_a_full_backup_folder_gives_one_clear_message_and_loses_nothing(
    how: str, faults_database: tuple[str, Engine], backup_settings: dict[str, str]
) -> None:
    url, engine = faults_database
    folder = Path(backup_settings["CIMS_BACKUP_DIR"])
    private_key = Path(backup_settings["CIMS_BACKUP_PRIVATE_KEY"])
    admin_id = _actor_id(engine)
    with out_of_room(folder, how) as (limit, expected_errno):
        earlier = _back_up(engine, admin_id)
        filler = _fill(folder) if expected_errno == "ENOSPC" else None
        seal_pending(engine)
        before, audits = fingerprints(url), _backup_audits(engine)
        failures = _backup_audits(engine, "failure")

        # The admin page's view of it once (AppTest is slow to start): through the tmpfs.
        with_page = how == "full_filesystem"
        arguments = {"user_id": admin_id, "page": with_page, **limit}
        child = start_child("backup_on_full_disk", url, "faults_full", arguments, backup_settings)
        with reaped(child):
            seen = child_output(child)

        # The service says why in words; the page shows its translated message, no traceback.
        assert seen["service"] == "BackupError", seen
        assert "no space left in the backup folder" in seen["service_message"]
        assert os.strerror(getattr(errno, expected_errno)) in seen["service_message"]
        if with_page:
            assert seen["page_exception"] == []
            assert seen["page_errors"] == [t("backup.failed", "en")]
            assert seen["service_message"] in seen["page_captions"]
            assert seen["page_success"] == []
        # Nothing lost, nothing half-kept.
        assert [e.path for e in list_backups(folder)] == [earlier]
        assert check_integrity(earlier)[1] == []
        leftovers = {p.name for p in folder.iterdir()} - {
            earlier.name,
            earlier.name + ".manifest.json",
        }
        assert leftovers <= {"filler.bin"}, leftovers
        assert _backup_audits(engine) == audits
        # Each failed attempt (the service's, and the page's when it ran) is in the audit
        # trail, written in a transaction of its own.
        assert _backup_audits(engine, "failure") == failures + (2 if with_page else 1)
        # Only the page's visit changed rows: its session, sign-in and view audit rows, which
        # the backup's first step sealed into the audit chain.
        visit = {"audit_log", "audit_seals", "auth_sessions", "users"}
        assert set(changed_tables(before, fingerprints(url))) <= visit

        # Room again: the next backup succeeds and restores.
        if filler is not None:
            filler.unlink()
        retried = _back_up(engine, admin_id)
        if with_page:  # and a full restore drill of it once
            report = verify_backup(retried, private_key_path=private_key, scratch_url=url)
            assert report.ok and report.restored, report.problems
        assert check_integrity(retried)[1] == []
        assert retried in [e.path for e in list_backups(folder)]
        assert _backup_audits(engine) == audits + 1
