"""Analytics services: exactly the privileged roles get through, and every call is audited.

The RBAC matrix test scans ``cims.*`` only; this is the same matrix for ``analytics``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import factories
from analytics import service
from analytics.console import QueryRefused, statement_hash
from analytics.queries import Filters
from cims.security.incidents import LockdownActive, start_lockdown
from cims.security.models import AuditEvent
from cims.security.rbac import ROLE_DEFAULTS, ROLES, AccessDenied, Actor, Privilege

JANUARY = Filters(dt.date(2026, 1, 1), dt.date(2026, 1, 31))
SQL = "SELECT department_code, count(*) AS n FROM visits GROUP BY 1 ORDER BY 1"
TABLE = pd.DataFrame({"bucket": ["0-30"], "balance": [1.0], "patients": [7], "suppressed": [False]})

CALLS: dict[str, tuple[Callable[..., Any], dict[str, Any], tuple[str, ...]]] = {
    "view_dashboard": (service.view_dashboard, {"filters": JANUARY}, ("analytics.view_dashboard",)),
    "export_table": (
        service.export_table,
        {"name": "ar_aging", "frame": TABLE, "fmt": "xlsx"},
        ("analytics.export_table",),
    ),
    "run_query": (service.run_query, {"sql": SQL}, ("analytics.query",)),
    "export_query": (service.export_query, {"sql": SQL}, ("analytics.export",)),
    "save_query": (service.save_query, {"name": "by dept", "sql": SQL}, ("analytics.save_query",)),
    "list_saved_queries": (service.list_saved_queries, {}, ("analytics.list_queries",)),
    "refresh_snapshot": (service.refresh_snapshot, {}, ("analytics.refresh",)),
}


def _audit(session: Session, actor: Actor) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.actor_id == actor.user_id).order_by(AuditEvent.id)
        )
    )


@pytest.mark.parametrize("name", CALLS)
def test_exactly_the_privileged_roles_succeed(
    session: Session, tiny_snapshot: Path, name: str
) -> None:
    function, kwargs, audited = CALLS[name]
    needed = set(function.__cims_privileges__)  # type: ignore[attr-defined]
    for role in ROLES:
        actor = factories.actor(session, role)
        allowed = needed <= ROLE_DEFAULTS[role]
        if allowed:
            function(session=session, actor=actor, **kwargs)
            rows = _audit(session, actor)
            assert tuple(r.action for r in rows) == audited, (name, role)
        else:
            with pytest.raises(AccessDenied):
                function(session=session, actor=actor, **kwargs)
    assert any(needed <= ROLE_DEFAULTS[role] for role in ROLES)


def test_roles_that_see_dashboards_and_query() -> None:
    viewers = {r for r in ROLES if Privilege.VIEW_ANALYTICS in ROLE_DEFAULTS[r]}
    assert viewers == {"manager", "data_staff", "admin"}
    queriers = {r for r in ROLES if Privilege.QUERY_ANALYTICS in ROLE_DEFAULTS[r]}
    assert queriers == {"data_staff"}


def test_a_query_is_audited_by_hash_and_row_count_only(
    session: Session, tiny_snapshot: Path
) -> None:
    analyst = factories.actor(session, "data_staff")
    result = service.run_query(session=session, actor=analyst, sql=SQL)
    [row] = _audit(session, analyst)
    assert row.detail is not None
    assert row.detail["statement"] == statement_hash(SQL) and row.detail["rows"] == 2
    text = json.dumps(row.detail)
    assert "CARD" not in text and "visits" not in text  # neither results nor the statement
    assert list(result.frame["department_code"]) == ["CARD", "ENDO"]


def test_a_refused_statement_is_audited_as_denied(session: Session, tiny_snapshot: Path) -> None:
    analyst = factories.actor(session, "data_staff")
    with pytest.raises(QueryRefused):
        service.run_query(session=session, actor=analyst, sql="DELETE FROM visits")
    # Written in its own transaction, so it survives the caller's rollback.
    engine = session.get_bind()
    with Session(engine) as own:
        rows = own.scalars(
            select(AuditEvent).where(
                AuditEvent.actor_id == analyst.user_id, AuditEvent.outcome == "denied"
            )
        ).all()
        assert [r.action for r in rows] == ["analytics.query"]
        assert rows[0].detail == {
            "statement": statement_hash("DELETE FROM visits"),
            "reason": "analytics.refused_write",
        }


def test_exports_are_blocked_in_a_lockdown(session: Session, tiny_snapshot: Path) -> None:
    analyst = factories.actor(session, "data_staff")
    start_lockdown(session=session, actor=factories.actor(session, "admin"), reason="drill")
    with pytest.raises(LockdownActive):
        service.export_query(session=session, actor=analyst, sql=SQL)
    with pytest.raises(LockdownActive):
        service.export_table(session=session, actor=analyst, name="t", frame=TABLE)


def test_csv_export_has_the_rows(session: Session, tiny_snapshot: Path) -> None:
    analyst = factories.actor(session, "data_staff")
    data = service.export_query(session=session, actor=analyst, sql=SQL)
    assert data.decode("utf-8-sig").splitlines() == ["department_code,n", "CARD,6", "ENDO,4"]


def test_saved_queries_private_and_shared(session: Session, tiny_snapshot: Path) -> None:
    alice = factories.actor(session, "data_staff")
    bob = factories.actor(session, "data_staff")
    service.save_query(session=session, actor=alice, name="mine", sql="SELECT 1")
    service.save_query(session=session, actor=alice, name="team", sql=SQL, shared=True)
    service.save_query(session=session, actor=alice, name="mine", sql="SELECT 2")  # overwrite
    own = service.list_saved_queries(session=session, actor=alice)
    assert {(q.name, q.sql) for q in own if q.mine} >= {("mine", "SELECT 2"), ("team", SQL)}
    seen = service.list_saved_queries(session=session, actor=bob)
    assert "team" in {q.name for q in seen if not q.mine}
    assert "mine" not in {q.name for q in seen if not q.mine}
    with pytest.raises(service.InvalidSavedQuery) as bad:
        service.save_query(session=session, actor=bob, name=" ", sql="DROP TABLE visits")
    assert bad.value.problems == ["analytics.name_required", "analytics.refused_write"]


def test_no_snapshot_is_a_clear_error(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIMS_ANALYTICS_DIR", str(tmp_path / "empty"))
    manager = factories.actor(session, "manager")
    with pytest.raises(service.NoSnapshot):
        service.view_dashboard(session=session, actor=manager, filters=JANUARY)


def test_the_daily_refresh_job_is_registered_once(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analytics.jobs import JOB_NAME, register_analytics_jobs
    from cims.ops import scheduler

    monkeypatch.setattr(scheduler, "JOBS", scheduler.JOBS)  # restored after the test
    monkeypatch.setenv("CIMS_ANALYTICS_DIR", str(tmp_path))
    assert register_analytics_jobs() is False  # test processes skip it unless forced
    assert register_analytics_jobs(force=True) is True
    assert register_analytics_jobs(force=True) is False
    [job] = [j for j in scheduler.JOBS if j.name == JOB_NAME]
    summary = job.run(session, dt.datetime.now(dt.UTC))
    assert summary["rows"] >= 0 and (tmp_path / "snapshot.duckdb").exists()
    assert (tmp_path / "parquet" / "departments.parquet").exists()
