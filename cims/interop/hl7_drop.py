"""Where HL7 files come from: a drop folder the scheduler watches, and ``cims import hl7``.

A laboratory (or its interface engine) writes files into the drop folder (settings
``hl7_drop_dir``, default ``var/hl7/in``; names starting with "." or ending in .tmp/.part
are still being written and left alone). Every minute one process claims each file by an
atomic rename into ``.work/`` (two app processes cannot both win), imports it in its own
transaction, and only after the commit moves it to ``done/`` (every message accepted) or
``error/`` (any refused), with its ACKs beside it as ``<name>.ack``. A claimed file left in
``.work/`` by a process that died is claimed again after ten minutes; re-importing it adds
nothing, because accepted messages are remembered by control id.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cims.config import get_settings
from cims.interop.hl7_oru import Hl7Report, import_hl7
from cims.security.accounts import build_actor
from cims.security.models import User
from cims.security.rbac import AccessDenied, Actor

log = logging.getLogger("cims.hl7")

STALE_CLAIM: Final = dt.timedelta(minutes=10)
_IN_PROGRESS: Final = (".tmp", ".part", ".ack")


def drop_folder() -> Path | None:
    """The configured drop folder; None in a test run that did not choose one."""
    settings = get_settings()
    if settings.hl7_drop_dir is not None:
        return settings.hl7_drop_dir
    if settings.env == "test":
        return None  # tests never pick up files from the project's own var/
    return settings.data_dir / "hl7" / "in"


def interface_actor(session: Session, username: str) -> Actor | None:
    """The account the drop folder imports as (settings ``hl7_drop_as``), if active."""
    user = session.scalar(select(User).where(User.username == username.lower()))
    if user is None or not user.is_active:
        return None
    return build_actor(session, user)


def _free(folder: Path, name: str) -> Path:
    """``folder/name``, or a timestamped variant when a file of that name is already there."""
    target = folder / name
    stamp = time.strftime("%Y%m%d%H%M%S")
    n = 0
    while target.exists() or target.with_name(target.name + ".ack").exists():
        n += 1
        target = folder / f"{Path(name).stem}-{stamp}-{n}{Path(name).suffix}"
    return target


def _claimable(folder: Path, now: float) -> list[Path]:
    """New files in the folder, then claims in .work/ abandoned by a dead process."""
    fresh = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(_IN_PROGRESS)
    ]
    work = folder / ".work"
    stale = [
        p
        for p in (sorted(work.iterdir()) if work.is_dir() else [])
        if p.is_file() and now - p.stat().st_mtime > STALE_CLAIM.total_seconds()
    ]
    return fresh + stale


def _claim(path: Path, work: Path) -> Path | None:
    """Move the file into .work/ under a unique name; None if another process was first."""
    original = path.name.split("__", 1)[1] if path.parent == work else path.name
    claimed = work / f"{uuid.uuid4().hex[:12]}__{original}"
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None
    os.utime(claimed)  # the claim's age counts from now
    return claimed


def _settle(claimed: Path, folder: Path, report: Hl7Report | None, error: str | None) -> str:
    """Move a processed file to done/ or error/ with its ACKs (or the error) beside it."""
    original = claimed.name.split("__", 1)[1]
    ok = report is not None and not report.refused
    target_dir = folder / ("done" if ok else "error")
    target_dir.mkdir(exist_ok=True)
    target = _free(target_dir, original)
    if report is not None:
        target.with_name(target.name + ".ack").write_bytes(report.acks.encode("utf-8"))
    if error is not None:
        target.with_name(target.name + ".error.txt").write_text(error + "\n", encoding="utf-8")
    os.replace(claimed, target)
    return "done" if ok else "error"


def process_drop_folder(
    engine: Engine, *, folder: Path, username: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Import every file waiting in ``folder`` (one transaction each); a summary for the job."""
    if not folder.is_dir():
        return {"skipped": "no drop folder"}
    with Session(engine) as session:
        actor = interface_actor(session, username)
    if actor is None:
        raise RuntimeError(f"no active account {username} for the HL7 drop folder")
    work = folder / ".work"
    work.mkdir(exist_ok=True)
    clock = (now or dt.datetime.now(dt.UTC)).timestamp()
    summary = {"files": 0, "done": 0, "error": 0, "messages": 0, "refused": 0}
    for path in _claimable(folder, clock):
        claimed = _claim(path, work)
        if claimed is None:
            continue
        summary["files"] += 1
        report, error = None, None
        try:
            with Session(engine) as session, session.begin():
                report = import_hl7(
                    session=session,
                    actor=actor,
                    data=claimed.read_bytes(),
                    label=claimed.name.split("__", 1)[1],
                )
        except DBAPIError:
            raise  # the database, not the file: the claim is taken up again later
        except Exception as failure:  # a file that breaks the import must not loop forever
            log.exception("HL7 file %s failed", path.name)
            error = f"{type(failure).__name__}: {failure}"
        summary[_settle(claimed, folder, report, error)] += 1
        if report is not None:
            summary["messages"] += len(report.outcomes)
            summary["refused"] += len(report.refused)
    return summary


def scheduled_drop_import(session: Session, now: dt.datetime) -> dict[str, Any]:
    """Scheduler job: pick up the drop folder's files (nothing when the folder is absent)."""
    folder = drop_folder()
    if folder is None:
        return {"skipped": "test run without CIMS_HL7_DROP_DIR"}
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    return process_drop_folder(engine, folder=folder, username=get_settings().hl7_drop_as, now=now)


def _summary_line(report: Hl7Report) -> str:
    duplicates = sum(o.duplicate for o in report.outcomes)
    corrected = sum(o.corrected for o in report.outcomes)
    return (
        f"{report.label}: {len(report.outcomes)} message(s), {report.accepted} accepted"
        f" ({duplicates} already imported), {report.added} result(s) added"
        f" ({corrected} correction(s)), {len(report.refused)} refused [run {report.run_id}]"
    )


def run_hl7_import(url: str, files: list[Path], *, as_user: str, ack_dir: Path | None) -> None:
    """``cims import hl7``: each file in its own transaction; ACKs to stdout or ``ack_dir``."""
    import typer
    from sqlalchemy import create_engine

    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        typer.echo(f"no such file: {', '.join(missing)}", err=True)
        raise typer.Exit(code=2)
    if ack_dir is not None:
        ack_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    refused = 0
    try:
        with Session(engine) as session:
            actor = interface_actor(session, as_user)
        if actor is None:
            typer.echo(f"no active account {as_user}", err=True)
            raise typer.Exit(code=1)
        for file in files:
            try:
                with Session(engine) as session, session.begin():
                    report = import_hl7(
                        session=session, actor=actor, data=file.read_bytes(), label=file.name
                    )
            except AccessDenied:
                typer.echo(f"{as_user} may not import data", err=True)
                raise typer.Exit(code=1) from None
            refused += len(report.refused)
            summary = typer.echo if ack_dir is not None else _to_stderr
            summary(_summary_line(report))
            for outcome in report.refused:
                summary(f"  message {outcome.index} {outcome.control_id or '?'}: "
                        f"{outcome.ack_code} {outcome.reason}")  # fmt: skip
            if ack_dir is None:
                typer.echo(report.acks.replace("\r", "\n"), nl=False)
            else:
                (ack_dir / f"{file.name}.ack").write_bytes(report.acks.encode("utf-8"))
    finally:
        engine.dispose()
    if refused:
        raise typer.Exit(code=1)


def _to_stderr(text: str) -> None:
    import typer

    typer.echo(text, err=True)
