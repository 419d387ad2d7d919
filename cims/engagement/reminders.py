"""Smart reminders (智能提醒): rules as data, evaluated set-wise, and each person's inbox.

A rule is a ``reminder_rules`` row (enabled, thresholds in ``params``, channel, audience); its
code picks one of the candidate queries below. Evaluation is one INSERT ... SELECT per rule:
a reminder's identity is (rule, event, recipient), the unique index ``uq_reminders_event``
(NULLS NOT DISTINCT) holds it, and ``ON CONFLICT DO NOTHING`` makes a second run, or two
processes running at once, add nothing. New reminders are delivered in the same transaction
(``cims.engagement.delivery``). The scheduler runs ``evaluate_reminders`` every 15 minutes.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from cims.base import utcnow
from cims.clock import day_bounds, local_zone, to_local
from cims.engagement.delivery import deliver
from cims.engagement.errors import refuse_if
from cims.engagement.models import Reminder, ReminderRule
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires

log = logging.getLogger("cims.reminders")

# code -> (audience, channel, params): installed once, then edited as data.
DEFAULT_RULES: Final[dict[str, tuple[str, str, dict[str, Any]]]] = {
    "appointment_tomorrow": ("patient", "sms", {"days_ahead": 1}),
    "follow_up_due": ("patient", "in_app", {"days_ahead": 3, "grace_days": 7}),
    "abnormal_lab": (
        "doctor",
        "in_app",
        {"flags": ["H", "L", "HH", "LL", "A"], "min_age_hours": 0, "lookback_days": 14},
    ),
    "invoice_overdue": ("patient", "in_app", {"grace_days": 0, "lookback_days": 90}),
    "invoice_overdue_finance": ("finance", "in_app", {"grace_days": 0}),
    "refill_due": ("patient", "in_app", {"days_before": 3, "grace_days": 7}),
    "high_risk": ("doctor", "in_app", {"threshold": 0.7, "lookback_days": 7}),
}
MAX_SNOOZE_HOURS: Final = 24 * 7
_LIVE_PATIENT: Final = "NOT p.voided AND p.merged_into_id IS NULL AND p.death_date IS NULL"
_IN_TZ: Final = "to_char({col} AT TIME ZONE :tz, 'YYYY-MM-DD HH24:MI')"

# Each query yields: event_key, recipient_user_id, recipient_patient_id, patient_id, params,
# due_at. Bind parameters: :now, :today, :tz and the rule's own (see DEFAULT_RULES).
_CANDIDATES: Final[dict[str, str]] = {
    "appointment_tomorrow": f"""
        SELECT 'appointment:' || a.id, NULL::bigint, a.patient_id, a.patient_id,
               jsonb_build_object('time', {_IN_TZ.format(col="a.scheduled_at")},
                                  'department_zh', d.name_zh, 'department_en', d.name_en),
               a.scheduled_at
        FROM appointments a
        JOIN departments d ON d.id = a.department_id
        JOIN patients p ON p.id = a.patient_id
        WHERE a.status = 'booked' AND a.scheduled_at > :now AND a.scheduled_at < :until
          AND {_LIVE_PATIENT}""",
    "follow_up_due": f"""
        SELECT 'follow_up:' || f.id, NULL::bigint, f.patient_id, f.patient_id,
               jsonb_build_object('date', to_char(f.due_date, 'YYYY-MM-DD'),
                                  'what', f.description),
               (f.due_date::timestamp AT TIME ZONE :tz)
        FROM follow_ups f JOIN patients p ON p.id = f.patient_id
        WHERE f.status = 'due' AND NOT f.voided
          AND f.due_date <= :today + CAST(:days_ahead AS int)
          AND f.due_date >= :today - CAST(:grace_days AS int)
          AND {_LIVE_PATIENT}""",
    "abnormal_lab": f"""
        SELECT 'observation:' || o.id, e.attending_id, NULL::bigint, o.patient_id,
               jsonb_build_object('test', o.name, 'flag', o.abnormal_flag, 'mrn', p.mrn),
               o.observed_at
        FROM observations o
        JOIN encounters e ON e.id = o.encounter_id
        JOIN users u ON u.id = e.attending_id
        JOIN patients p ON p.id = o.patient_id
        WHERE o.abnormal_flag IN ('H', 'L', 'HH', 'LL', 'A') AND o.acknowledged_at IS NULL
          AND o.abnormal_flag = ANY(:flags) AND o.category = 'lab' AND NOT o.voided
          AND o.observed_at >= :now - make_interval(days => CAST(:lookback_days AS integer))
          AND o.observed_at <= :now - make_interval(hours => CAST(:min_age_hours AS integer))
          AND u.is_active AND {_LIVE_PATIENT}""",
    "invoice_overdue": f"""
        SELECT 'invoice:' || i.id, NULL::bigint, i.patient_id, i.patient_id,
               jsonb_build_object('invoice_no', i.invoice_no,
                                  'due', to_char(i.due_date, 'YYYY-MM-DD'),
                                  'balance', to_char(i.patient_amount - i.paid_amount,
                                                     'FM999999990.00')),
               (i.due_date::timestamp AT TIME ZONE :tz)
        FROM invoices i JOIN patients p ON p.id = i.patient_id
        WHERE i.status IN ('issued', 'partly_paid') AND NOT i.voided
          AND i.due_date < :today - CAST(:grace_days AS int)
          AND i.due_date >= :today - CAST(:lookback_days AS int)
          AND i.patient_amount > i.paid_amount AND {_LIVE_PATIENT}""",
    # One digest a day per finance user rather than one reminder per bill.
    "invoice_overdue_finance": """
        SELECT 'invoices_overdue:' || to_char(:today, 'YYYY-MM-DD'), u.id, NULL::bigint,
               NULL::bigint,
               jsonb_build_object('count', o.n,
                                  'total', to_char(o.total, 'FM999999990.00')),
               :now
        FROM (SELECT count(*) AS n, sum(i.patient_amount - i.paid_amount) AS total
              FROM invoices i
              WHERE i.status IN ('issued', 'partly_paid') AND NOT i.voided
                AND i.due_date < :today - CAST(:grace_days AS int)
                AND i.patient_amount > i.paid_amount) o
        CROSS JOIN users u
        JOIN user_roles ur ON ur.user_id = u.id
        JOIN roles r ON r.id = ur.role_id AND r.code = 'finance'
        WHERE o.n > 0 AND u.is_active""",
    "refill_due": f"""
        SELECT 'prescription:' || x.id, NULL::bigint, x.patient_id, x.patient_id,
               jsonb_build_object('drug', x.drug_name,
                                  'date', to_char(x.runs_out, 'YYYY-MM-DD')),
               (x.runs_out::timestamp AT TIME ZONE :tz)
        FROM (SELECT rx.*, (rx.prescribed_at AT TIME ZONE :tz)::date
                           + rx.duration_days * (1 + rx.refills) AS runs_out
              FROM prescriptions rx
              WHERE rx.status = 'active' AND NOT rx.voided) x
        JOIN patients p ON p.id = x.patient_id
        WHERE x.runs_out <= :today + CAST(:days_before AS int)
          AND x.runs_out >= :today - CAST(:grace_days AS int)
          AND {_LIVE_PATIENT}""",
    # One reminder per scored subject, however often the model re-scores it.
    "high_risk": f"""
        SELECT DISTINCT ON (r.subject_type, r.subject_id, doctor)
               'risk:' || r.subject_type || ':' || r.subject_id,
               COALESCE(e.attending_id, a.doctor_id) AS doctor, NULL::bigint, r.patient_id,
               jsonb_build_object('score', round(r.score * 100)::int, 'mrn', p.mrn),
               r.scored_at
        FROM risk_scores r
        JOIN patients p ON p.id = r.patient_id
        LEFT JOIN encounters e ON r.subject_type = 'encounter' AND e.id = r.subject_id
        LEFT JOIN appointments a ON r.subject_type = 'appointment' AND a.id = r.subject_id
        WHERE r.score >= :threshold
          AND r.scored_at >= :now - make_interval(days => CAST(:lookback_days AS integer))
          AND COALESCE(e.attending_id, a.doctor_id) IS NOT NULL AND {_LIVE_PATIENT}
        ORDER BY r.subject_type, r.subject_id, doctor, r.scored_at DESC""",
}

_RAISE: Final = """
    WITH candidates (event_key, recipient_user_id, recipient_patient_id, patient_id, params,
                     due_at) AS ({candidates})
    INSERT INTO reminders (rule_code, event_key, recipient_user_id, recipient_patient_id,
                           patient_id, message_key, params, due_at, status)
    SELECT :rule_code, c.event_key, c.recipient_user_id, c.recipient_patient_id, c.patient_id,
           :message_key, c.params, c.due_at, 'new'
    FROM candidates c
    WHERE NOT EXISTS (
        SELECT 1 FROM reminders r
        WHERE r.rule_code = :rule_code AND r.event_key = c.event_key
          AND r.recipient_user_id IS NOT DISTINCT FROM c.recipient_user_id
          AND r.recipient_patient_id IS NOT DISTINCT FROM c.recipient_patient_id)
    ON CONFLICT DO NOTHING
    RETURNING id"""


def ensure_default_rules(session: Session) -> int:
    """Install the default rules that are missing (never overwrites edited ones)."""
    rows = [
        {"code": code, "audience": audience, "channel": channel, "params": params}
        for code, (audience, channel, params) in DEFAULT_RULES.items()
    ]
    result = session.execute(
        insert(ReminderRule)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["code"])
        .returning(ReminderRule.id)
    )
    return len(result.all())


def _binds(rule: ReminderRule, now: dt.datetime) -> dict[str, Any]:
    today = now.astimezone(local_zone()).date()
    params = {**DEFAULT_RULES.get(rule.code, ("", "", {}))[2], **(rule.params or {})}
    binds: dict[str, Any] = {"now": now, "today": today, "tz": str(local_zone())}
    for name in ("days_ahead", "grace_days", "lookback_days", "min_age_hours", "days_before"):
        if name in params:
            binds[name] = int(params[name])
    if "flags" in params:
        binds["flags"] = [str(flag) for flag in params["flags"]]
    if "threshold" in params:
        binds["threshold"] = float(params["threshold"])
    if rule.code == "appointment_tomorrow":
        binds["until"] = day_bounds(today + dt.timedelta(days=binds["days_ahead"]))[1]
    return binds


def evaluate_rule(session: Session, rule: ReminderRule, now: dt.datetime) -> list[int]:
    """Raise (and deliver) this rule's new reminders; returns their ids."""
    candidates = _CANDIDATES.get(rule.code)
    if candidates is None:
        log.warning("reminder rule %s has no candidate query", rule.code)
        return []
    ids = list(
        session.scalars(
            text(_RAISE.format(candidates=candidates)),
            {**_binds(rule, now), "rule_code": rule.code, "message_key": f"reminder.{rule.code}"},
        )
    )
    deliver(session, channel=rule.channel, reminder_ids=ids)
    return ids


def evaluate_reminders(session: Session, now: dt.datetime | None = None) -> dict[str, Any]:
    """The scheduled job: wake expired snoozes, then evaluate every enabled rule."""
    now = now or utcnow()
    ensure_default_rules(session)
    woken = session.execute(
        update(Reminder)
        .where(Reminder.status == "snoozed", Reminder.snoozed_until <= now)
        .values(status="new", snoozed_until=None)
    )
    raised: dict[str, int] = {}
    rules = session.scalars(
        select(ReminderRule).where(ReminderRule.enabled).order_by(ReminderRule.code)
    )
    for rule in rules:
        raised[rule.code] = len(evaluate_rule(session, rule, now))
    woke = int(getattr(woken, "rowcount", 0) or 0)
    return {"raised": sum(raised.values()), "woken": woke, "by_rule": raised}


# ---- the inbox --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReminderView:
    """One reminder as its recipient sees it (times hospital-local)."""

    reminder_id: int
    rule_code: str
    message_key: str
    params: dict[str, Any]
    created_at: dt.datetime
    due_at: dt.datetime | None
    status: str
    snoozed_until: dt.datetime | None


def _mine(actor: Actor) -> ColumnElement[bool]:
    """Reminders addressed to this actor: their user, or (a portal patient) their record."""
    own = Reminder.recipient_user_id == actor.user_id
    if actor.patient_id is not None and actor.can(Privilege.PORTAL_SELF):
        return or_(own, Reminder.recipient_patient_id == actor.patient_id)
    return own


def _waiting(now: dt.datetime) -> ColumnElement[bool]:
    return or_(
        Reminder.status == "new",
        and_(Reminder.status == "snoozed", Reminder.snoozed_until <= now),
    )


def _view(row: Reminder) -> ReminderView:
    return ReminderView(
        reminder_id=row.id,
        rule_code=row.rule_code,
        message_key=row.message_key,
        params=dict(row.params or {}),
        created_at=to_local(row.created_at) or row.created_at,
        due_at=to_local(row.due_at),
        status=row.status,
        snoozed_until=to_local(row.snoozed_until),
    )


@requires()
def list_my_reminders(
    *, session: Session, actor: Actor, include_done: bool = False, limit: int = 200
) -> list[ReminderView]:
    """The signed-in person's inbox: waiting reminders (or everything), newest first."""
    query = select(Reminder).where(_mine(actor))
    if not include_done:
        query = query.where(_waiting(utcnow()))
    rows = session.scalars(
        query.order_by(Reminder.created_at.desc(), Reminder.id.desc()).limit(limit)
    )
    views = [_view(row) for row in rows]
    audit.record(
        session,
        actor,
        "engagement.list_reminders",
        patient_id=actor.patient_id,
        object_type="reminder",
        detail={"rows": len(views)},
    )
    return views


@requires()
def count_unread_reminders(*, session: Session, actor: Actor) -> int:
    """How many reminders wait in the signed-in person's inbox (a badge; not audited)."""
    return int(
        session.scalar(
            select(func.count()).select_from(Reminder).where(_mine(actor), _waiting(utcnow()))
        )
        or 0
    )


def _own_or_raise(session: Session, actor: Actor, reminder_id: int) -> Reminder:
    row = session.scalar(
        select(Reminder).where(Reminder.id == reminder_id, _mine(actor)).with_for_update()
    )
    if row is None:  # someone else's reminder is as absent as a missing one
        raise LookupError(reminder_id)
    return row


@requires()
def acknowledge_reminder(*, session: Session, actor: Actor, reminder_id: int) -> ReminderView:
    """Mark one of my reminders as dealt with."""
    row = _own_or_raise(session, actor, reminder_id)
    row.status = "acknowledged"
    row.acknowledged_at = utcnow()
    row.snoozed_until = None
    session.flush()
    audit.record(
        session,
        actor,
        "engagement.acknowledge_reminder",
        patient_id=row.patient_id,
        object_type="reminder",
        object_id=row.id,
    )
    return _view(row)


@requires()
def snooze_reminder(
    *, session: Session, actor: Actor, reminder_id: int, hours: int = 24
) -> ReminderView:
    """Hide one of my reminders for ``hours`` (1 to a week); it comes back by itself."""
    refuse_if([] if 1 <= hours <= MAX_SNOOZE_HOURS else ["engagement.bad_snooze"])
    row = _own_or_raise(session, actor, reminder_id)
    refuse_if([] if row.status != "acknowledged" else ["engagement.already_acknowledged"])
    row.status = "snoozed"
    row.snoozed_until = utcnow() + dt.timedelta(hours=hours)
    session.flush()
    audit.record(
        session,
        actor,
        "engagement.snooze_reminder",
        patient_id=row.patient_id,
        object_type="reminder",
        object_id=row.id,
        detail={"hours": hours},
    )
    return _view(row)


def alert_admins(
    bind: Any, *, rule_code: str, event_key: str, message_key: str, params: dict[str, Any]
) -> int:
    """Raise a reminder for every active administrator, in its own transaction.

    For operational failures (a backup that did not verify): the failing job's own
    transaction rolls back, so the alert must not depend on it. Once per event.
    """
    from cims.security.models import Role, User, UserRole

    admins = (
        select(User.id)
        .join(UserRole, UserRole.user_id == User.id)
        .join(Role, Role.id == UserRole.role_id)
        .where(Role.code == "admin", User.is_active)
    )
    with Session(bind) as own, own.begin():
        rows = [
            {
                "rule_code": rule_code,
                "event_key": event_key,
                "recipient_user_id": user_id,
                "message_key": message_key,
                "params": params,
                "status": "new",
            }
            for user_id in own.scalars(admins)
        ]
        if not rows:
            return 0
        created = own.execute(
            insert(Reminder).values(rows).on_conflict_do_nothing().returning(Reminder.id)
        ).all()
    return len(created)
