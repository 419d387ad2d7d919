"""Incident response: the lockdown switch, recorded as an incident with a timeline."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.security import audit
from cims.security.models import AuthSession, Incident, IncidentEvent, SystemFlag
from cims.security.rbac import Actor, Privilege, requires

LOCKDOWN = "lockdown"


class LockdownActive(PermissionError):
    """Exports and bulk queries are blocked while a lockdown is in force."""


def lockdown_state(session: Session) -> dict[str, object] | None:
    """The active lockdown (incident id, since, reason), or None."""
    flag = session.get(SystemFlag, LOCKDOWN)
    if flag is None or not flag.value.get("active"):
        return None
    return dict(flag.value)


def require_no_lockdown(session: Session) -> None:
    """Call before any export or bulk query; raises LockdownActive during a lockdown."""
    if lockdown_state(session) is not None:
        raise LockdownActive("exports and bulk queries are blocked during a lockdown")


def _set_flag(session: Session, actor: Actor, value: dict[str, object]) -> None:
    session.execute(
        insert(SystemFlag)
        .values(key=LOCKDOWN, value=value, updated_by_id=actor.user_id, updated_at=utcnow())
        .on_conflict_do_update(
            index_elements=[SystemFlag.key],
            set_={"value": value, "updated_by_id": actor.user_id, "updated_at": utcnow()},
        )
    )


@requires(Privilege.MANAGE_INCIDENTS)
def start_lockdown(*, session: Session, actor: Actor, reason: str) -> Incident:
    """Revoke every session, force sign-in with MFA, block exports; opens an incident."""
    if not reason.strip():
        raise ValueError("incident.reason_required")
    if lockdown_state(session) is not None:
        raise ValueError("incident.already_locked_down")
    incident = Incident(
        title=reason.strip(),
        severity="high",
        status="open",
        lockdown=True,
        created_by_id=actor.user_id,
    )
    session.add(incident)
    session.flush()
    ended = session.execute(
        update(AuthSession)
        .where(AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoke_reason="lockdown")
    ).rowcount  # type: ignore[attr-defined]
    _set_flag(
        session,
        actor,
        {
            "active": True,
            "incident_id": incident.id,
            "since": utcnow().isoformat(),
            "reason": reason.strip(),
        },
    )
    session.add(
        IncidentEvent(
            incident_id=incident.id,
            actor_id=actor.user_id,
            kind="lockdown_started",
            detail=f"{ended} sessions revoked",
        )
    )
    audit.record(
        session,
        actor,
        "incident.lockdown_started",
        object_type="incident",
        object_id=incident.id,
        detail={"sessions_revoked": ended},
    )
    return incident


@requires(Privilege.MANAGE_INCIDENTS)
def lift_lockdown(*, session: Session, actor: Actor, note: str) -> None:
    """End the lockdown; the incident stays open for its follow-up."""
    state = lockdown_state(session)
    if state is None:
        raise ValueError("incident.not_locked_down")
    incident_id = int(str(state["incident_id"]))
    _set_flag(session, actor, {"active": False, "incident_id": incident_id})
    incident = session.get(Incident, incident_id)
    if incident is not None:
        incident.status = "contained"
    session.add(
        IncidentEvent(
            incident_id=incident_id,
            actor_id=actor.user_id,
            kind="lockdown_lifted",
            detail=note.strip() or None,
        )
    )
    audit.record(
        session, actor, "incident.lockdown_lifted", object_type="incident", object_id=incident_id
    )


@requires(Privilege.MANAGE_INCIDENTS)
def list_incidents(*, session: Session, actor: Actor) -> list[tuple[Incident, list[IncidentEvent]]]:
    """Incidents, newest first, each with its timeline."""
    incidents = session.scalars(select(Incident).order_by(Incident.opened_at.desc())).all()
    result = []
    for incident in incidents:
        events = session.scalars(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id == incident.id)
            .order_by(IncidentEvent.occurred_at)
        ).all()
        result.append((incident, list(events)))
    audit.record(session, actor, "incident.list", object_type="incidents")
    return result
