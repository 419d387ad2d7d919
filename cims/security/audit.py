"""Writing audit rows: who did what, to which patient/object, with what outcome.

Rows never hold sensitive values. A successful action's row is added to the caller's
session (it commits with the action); a refusal is written in its own transaction so
it survives the action's rollback. Writing is a plain INSERT: rows are hash-chained
shortly after commit by the sealer in ``cims.security.audit_chain`` (docs/audit.md), so
no user waits on a chain lock. The database lets the app only INSERT and SELECT here.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from cims.security.models import AuditEvent
from cims.security.rbac import Actor

# The Table, not the mapped class: a plain Core INSERT without the ORM bulk path.
_INSERT = insert(AuditEvent.metadata.tables["audit_log"])


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
    client_address: str | None = None,
    session_id: uuid.UUID | None = None,
) -> None:
    """Insert one audit row in ``session``'s transaction (committed with the action)."""
    # One prepared Core INSERT, no RETURNING and no unit-of-work object: every audited
    # action pays for this statement, and nothing reads the row back in the same session.
    session.execute(
        _INSERT,
        {
            "actor_id": actor.user_id if actor else None,
            "actor_username": actor.username if actor else username,
            "actor_role": actor.primary_role if actor else None,
            "action": action,
            "outcome": outcome,
            "patient_id": patient_id,
            "object_type": object_type,
            "object_id": None if object_id is None else str(object_id),
            "detail": detail,
            "client_address": client_address,
            "session_id": session_id,
        },
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
