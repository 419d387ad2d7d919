"""Analytics services the pages call: privilege-checked and audited like ``cims`` services.

They live here because ``cims`` never imports ``analytics``. Every successful call writes
one audit row in the caller's transaction; refused or failed console queries write theirs
in a separate transaction (the caller's rolls back), with the statement's hash only.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from analytics import console
from analytics.queries import Filters, dashboard_frames, departments, display_table
from analytics.snapshot import (
    PARQUET_EVERY,
    Progress,
    SnapshotInfo,
    build_snapshot,
    connect,
    parquet_age,
    read_info,
    snapshot_mtime,
    snapshot_path,
)
from cims.base import utcnow
from cims.governance.models import SavedQuery
from cims.security import audit
from cims.security.incidents import require_no_lockdown
from cims.security.rbac import Actor, Privilege, requires
from cims.text_limits import MAX_SAVED_QUERY_NAME, TOO_LONG_KEY, too_long

EXPORT_ROW_LIMIT: Final = 100_000
EXPORT_FORMATS: Final = ("csv", "xlsx")
Loader = Callable[[str, float, Filters], dict[str, pd.DataFrame]]


class NoSnapshot(LookupError):
    """No analytics snapshot has been built yet."""


class InvalidSavedQuery(ValueError):
    """A saved query needs a name and an acceptable statement; ``problems`` are message keys."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(", ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Dashboard:
    """The snapshot it came from and every frame the dashboard draws."""

    info: SnapshotInfo
    frames: dict[str, pd.DataFrame]


def load_frames(path: str, _mtime: float, filters: Filters) -> dict[str, pd.DataFrame]:
    """Compute the dashboard's frames from the snapshot at ``path`` (pages cache this)."""
    with connect(Path(path), threads=1) as con:
        return dashboard_frames(con, filters)


def _filters_detail(filters: Filters) -> dict[str, Any]:
    return {
        "start": filters.start.isoformat(),
        "end": filters.end.isoformat(),
        "departments": list(filters.departments),
        "visit_types": list(filters.visit_types),
    }


@requires(Privilege.VIEW_ANALYTICS)
def view_dashboard(
    *, session: Session, actor: Actor, filters: Filters, loader: Loader | None = None
) -> Dashboard:
    """The manager dashboard for ``filters`` (de-identified, small groups suppressed)."""
    info = read_info()
    if info is None:
        raise NoSnapshot
    frames = (loader or load_frames)(str(info.path), snapshot_mtime(info.path), filters)
    audit.record(
        session,
        actor,
        "analytics.view_dashboard",
        object_type="dashboard",
        detail=_filters_detail(filters),
    )
    return Dashboard(info, frames)


def table_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    """A table as CSV (UTF-8 with BOM, so Excel reads Chinese) or as an Excel workbook."""
    if fmt == "csv":
        return str(frame.to_csv(index=False)).encode("utf-8-sig")
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False)
    return buffer.getvalue()


@requires(Privilege.VIEW_ANALYTICS)
def export_table(
    *, session: Session, actor: Actor, name: str, frame: pd.DataFrame, fmt: str = "csv"
) -> bytes:
    """Download one dashboard table (aggregates, suppressed); blocked during a lockdown."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError("analytics.bad_format")
    require_no_lockdown(session)
    data = table_bytes(display_table(frame), fmt)
    audit.record(
        session,
        actor,
        "analytics.export_table",
        object_type="dashboard_table",
        object_id=name,
        detail={"rows": len(frame), "format": fmt},
    )
    return data


def _audit_console(
    session: Session, actor: Actor, action: str, sql: str, outcome: str, **detail: Any
) -> None:
    """A refused or failed statement, kept although the caller's transaction rolls back."""
    bind = session.get_bind()
    audit.record_separately(
        bind,
        actor,
        action,
        outcome=outcome,
        object_type="analytics_query",
        detail={"statement": console.statement_hash(sql), **detail},
    )


def _run_audited(
    session: Session, actor: Actor, action: str, sql: str, row_limit: int
) -> console.QueryResult:
    try:
        result = console.run_select(sql, row_limit=row_limit)
    except console.QueryRefused as refusal:
        _audit_console(session, actor, action, sql, "denied", reason=refusal.reason)
        raise
    except console.QueryFailed as failure:
        _audit_console(session, actor, action, sql, "failure", reason=failure.reason)
        raise
    return result


@requires(Privilege.QUERY_ANALYTICS)
def run_query(
    *, session: Session, actor: Actor, sql: str, row_limit: int = console.DEFAULT_ROW_LIMIT
) -> console.QueryResult:
    """Run one read-only SELECT on the snapshot; every attempt is audited (hash, row count)."""
    if read_info() is None:
        raise NoSnapshot
    result = _run_audited(session, actor, "analytics.query", sql, row_limit)
    audit.record(
        session,
        actor,
        "analytics.query",
        object_type="analytics_query",
        detail={
            "statement": result.statement_hash,
            "rows": len(result.frame),
            "truncated": result.truncated,
            "ms": round(result.milliseconds),
        },
    )
    return result


@requires(Privilege.QUERY_ANALYTICS, Privilege.EXPORT_DATA)
def export_query(*, session: Session, actor: Actor, sql: str, fmt: str = "csv") -> bytes:
    """A console query's rows as CSV or Excel; blocked during a lockdown, audited."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError("analytics.bad_format")
    require_no_lockdown(session)
    if read_info() is None:
        raise NoSnapshot
    result = _run_audited(session, actor, "analytics.export", sql, EXPORT_ROW_LIMIT)
    audit.record(
        session,
        actor,
        "analytics.export",
        object_type="analytics_query",
        detail={"statement": result.statement_hash, "rows": len(result.frame), "format": fmt},
    )
    return table_bytes(result.frame, fmt)


@requires(Privilege.QUERY_ANALYTICS)
def save_query(
    *, session: Session, actor: Actor, name: str, sql: str, shared: bool = False
) -> SavedQuery:
    """Save (or overwrite) one of the actor's named queries; only acceptable SELECTs."""
    problems = [] if name.strip() else ["analytics.name_required"]
    if too_long(name, MAX_SAVED_QUERY_NAME):
        problems.append(TOO_LONG_KEY)
    try:
        console.check_select(sql)
    except console.QueryRefused as refusal:
        problems.append(refusal.reason)
    if problems:
        raise InvalidSavedQuery(problems)
    name = name.strip()  # stored stripped, so looked up stripped (" x" would collide)
    saved = session.scalar(
        select(SavedQuery).where(SavedQuery.owner_id == actor.user_id, SavedQuery.name == name)
    )
    if saved is None:
        saved = SavedQuery(owner_id=actor.user_id, name=name, sql=sql, shared=shared)
        session.add(saved)
    else:
        saved.sql, saved.shared, saved.updated_at = sql, shared, utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "analytics.save_query",
        object_type="saved_query",
        object_id=saved.id,
        detail={"statement": console.statement_hash(sql), "shared": shared},
    )
    return saved


@dataclass(frozen=True)
class SavedQueryItem:
    """A saved query the actor may open: their own or one shared by a colleague."""

    id: int
    name: str
    sql: str
    shared: bool
    mine: bool


@requires(Privilege.QUERY_ANALYTICS)
def list_saved_queries(*, session: Session, actor: Actor) -> list[SavedQueryItem]:
    """The actor's own saved queries and those colleagues shared, by name."""
    rows = session.scalars(
        select(SavedQuery)
        .where(or_(SavedQuery.owner_id == actor.user_id, SavedQuery.shared.is_(True)))
        .order_by(SavedQuery.name, SavedQuery.id)
    ).all()
    audit.record(session, actor, "analytics.list_queries", object_type="saved_query")
    return [
        SavedQueryItem(r.id, r.name, r.sql, r.shared, r.owner_id == actor.user_id) for r in rows
    ]


@requires(Privilege.VIEW_ANALYTICS, Privilege.IMPORT_DATA)
def refresh_snapshot(
    *,
    session: Session,
    actor: Actor,
    parquet: bool = False,
    full: bool = False,
    progress: Progress | None = None,
) -> SnapshotInfo:
    """Bring the de-identified snapshot up to date now (admin, data staff): only what
    changed since the last refresh, or everything with ``full``; audited with row counts."""
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    info = build_snapshot(url, parquet=parquet, progress=progress, full=full or None)
    audit.record(
        session,
        actor,
        "analytics.refresh",
        object_type="snapshot",
        detail={
            "rows": sum(info.rows.values()),
            "seconds": round(info.seconds, 2),
            "parquet": parquet,
            "mode": info.mode,
        },
    )
    return info


def department_names(path: str | None = None) -> dict[str, tuple[str, str]]:
    """Clinical department codes and their Chinese and English names (reference data)."""
    with connect(Path(path) if path else None) as con:
        frame = departments(con)
    return {row.code: (row.name_zh, row.name_en) for row in frame.itertuples()}


def snapshot_status() -> SnapshotInfo | None:
    """The current snapshot's age and size (file metadata only, no data)."""
    return read_info()


def scheduled_refresh(session: Session, now: dt.datetime) -> dict[str, Any]:
    """The hourly job: bring the snapshot up to date from this database (what changed; a
    full copy once a week), and its Parquet copy once a day."""
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    info = build_snapshot(url, parquet=parquet_age(now) >= PARQUET_EVERY)
    return {"rows": sum(info.rows.values()), "seconds": round(info.seconds, 2), "mode": info.mode}


def current_path() -> Path:
    """Where the snapshot file lives (for the status line)."""
    return snapshot_path()
