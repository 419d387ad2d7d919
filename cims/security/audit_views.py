"""The admin's view of the audit log: who accessed which patient, and chain verification."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.patients.models import Patient
from cims.security import audit
from cims.security.audit_chain import VerifyResult, default_anchor_dir, verify_chain
from cims.security.models import AuditEvent
from cims.security.rbac import Actor, Privilege, requires


@dataclass(frozen=True)
class AuditRow:
    """One audit event as the admin sees it (never sensitive values)."""

    occurred_at: dt.datetime
    username: str | None
    role: str | None
    action: str
    outcome: str
    mrn: str | None
    patient_name: str | None
    object_type: str | None
    object_id: str | None


@requires(Privilege.VIEW_AUDIT)
def search_audit(
    *,
    session: Session,
    actor: Actor,
    start: dt.datetime,
    end: dt.datetime,
    mrn: str | None = None,
    username: str | None = None,
    action_prefix: str | None = None,
    outcome: str | None = None,
    limit: int = 500,
) -> list[AuditRow]:
    """Audit events in a period, newest first, filtered by patient MRN, user, action, outcome."""
    query = (
        select(AuditEvent, Patient.mrn, Patient.full_name)
        .outerjoin(Patient, Patient.id == AuditEvent.patient_id)
        .where(AuditEvent.occurred_at >= start, AuditEvent.occurred_at < end)
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(max(1, min(limit, 5000)))
    )
    if mrn:
        query = query.where(Patient.mrn == mrn.strip())
    if username:
        query = query.where(AuditEvent.actor_username == username.strip().lower())
    if action_prefix:
        query = query.where(AuditEvent.action.startswith(action_prefix.strip(), autoescape=True))
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    rows = [
        AuditRow(
            occurred_at=event.occurred_at,
            username=event.actor_username,
            role=event.actor_role,
            action=event.action,
            outcome=event.outcome,
            mrn=patient_mrn,
            patient_name=name,
            object_type=event.object_type,
            object_id=event.object_id,
        )
        for event, patient_mrn, name in session.execute(query).all()
    ]
    audit.record(
        session,
        actor,
        "audit.search",
        object_type="audit_log",
        detail={
            "filters": sorted(
                k
                for k, v in {
                    "mrn": mrn,
                    "username": username,
                    "action": action_prefix,
                    "outcome": outcome,
                }.items()
                if v
            )
        },
    )
    return rows


@requires(Privilege.VIEW_AUDIT)
def verify_audit_chain(*, session: Session, actor: Actor) -> VerifyResult:
    """Walk the sealed chain and the external anchors; the check itself is audited."""
    bind = session.get_bind()
    result = verify_chain(bind, anchor_dir=default_anchor_dir(bind))
    audit.record(
        session,
        actor,
        "audit.verify",
        object_type="audit_chain",
        outcome="success" if result.ok else "failure",
        detail={"rows": result.rows_checked, "ok": result.ok},
    )
    return result
