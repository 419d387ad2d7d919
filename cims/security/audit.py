"""Writing audit rows: who did what, to which patient/object, with what outcome.

Rows never hold sensitive values. A successful action's row is added to the caller's
session (it commits with the action); a refusal is written in its own transaction so
it survives the action's rollback.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cims.security.models import AuditEvent
from cims.security.rbac import Actor


def record(
    session: Session,
    actor: Actor | None,
    action: str,
    *,
    patient_id: int | None = None,
    object_type: str | None = None,
    object_id: object | None = None,
    outcome: str = "success",
    detail: dict[str, Any] | None = None,
    username: str | None = None,
) -> None:
    """Add one audit row to ``session`` (committed with the surrounding action)."""
    session.add(
        AuditEvent(
            actor_id=actor.user_id if actor else None,
            actor_username=actor.username if actor else username,
            actor_role=actor.primary_role if actor else None,
            action=action,
            outcome=outcome,
            patient_id=patient_id,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            detail=detail,
        )
    )


def record_separately(
    bind: Engine | Any,
    actor: Actor | None,
    action: str,
    **fields: Any,
) -> None:
    """Write an audit row in its own transaction (refusals, failures)."""
    engine = bind.engine if hasattr(bind, "engine") else bind
    with Session(engine) as own:
        record(own, actor, action, **fields)
        own.commit()
