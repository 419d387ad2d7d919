"""Headline figures for managers and data staff: aggregates only, never a patient row."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cims.appointments.models import Appointment
from cims.billing.models import Invoice, Payment
from cims.clock import day_bounds
from cims.patients.models import Patient
from cims.records.models import Encounter
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires


@dataclass(frozen=True)
class Headline:
    """Counts for a period and the one before it, for period-over-period change."""

    patients: int
    visits: int
    visits_previous: int
    admissions: int
    admissions_previous: int
    inpatients_now: int
    collections: Decimal
    collections_previous: Decimal
    outstanding: Decimal
    appointments_today: int
    no_show_rate: float | None


@requires(Privilege.VIEW_ANALYTICS)
def headline(*, session: Session, actor: Actor, today: dt.date, days: int = 30) -> Headline:
    """Hospital-wide headline figures for the last ``days`` days against the days before."""
    end = day_bounds(today)[1]
    start = end - dt.timedelta(days=days)
    before = start - dt.timedelta(days=days)

    def encounters(lo: dt.datetime, hi: dt.datetime, kind: str | None = None) -> int:
        query = select(func.count(Encounter.id)).where(
            Encounter.started_at >= lo, Encounter.started_at < hi, Encounter.voided.is_(False)
        )
        if kind:
            query = query.where(Encounter.encounter_type == kind)
        return session.scalar(query) or 0

    def collected(lo: dt.datetime, hi: dt.datetime) -> Decimal:
        total = session.scalar(
            select(func.coalesce(func.sum(Payment.amount - Payment.refunded_amount), 0)).where(
                Payment.received_at >= lo, Payment.received_at < hi, Payment.status != "failed"
            )
        )
        return Decimal(total or 0)

    outcome = dict(
        session.execute(
            select(Appointment.status, func.count())
            .where(
                Appointment.scheduled_at >= start,
                Appointment.scheduled_at < day_bounds(today)[0],
                Appointment.status.in_(("seen", "no_show", "checked_in")),
            )
            .group_by(Appointment.status)
        ).all()
    )
    attended = sum(outcome.values())
    today_start, today_end = day_bounds(today)
    result = Headline(
        patients=session.scalar(
            select(func.count(Patient.id)).where(
                Patient.voided.is_(False), Patient.merged_into_id.is_(None)
            )
        )
        or 0,
        visits=encounters(start, end),
        visits_previous=encounters(before, start),
        admissions=encounters(start, end, "inpatient"),
        admissions_previous=encounters(before, start, "inpatient"),
        inpatients_now=session.scalar(
            select(func.count(Encounter.id)).where(
                Encounter.encounter_type == "inpatient",
                Encounter.ended_at.is_(None),
                Encounter.voided.is_(False),
            )
        )
        or 0,
        collections=collected(start, end),
        collections_previous=collected(before, start),
        outstanding=Decimal(
            session.scalar(
                select(
                    func.coalesce(func.sum(Invoice.patient_amount - Invoice.paid_amount), 0)
                ).where(Invoice.status.in_(("issued", "partly_paid")), Invoice.voided.is_(False))
            )
            or 0
        ),
        appointments_today=session.scalar(
            select(func.count(Appointment.id)).where(
                Appointment.scheduled_at >= today_start,
                Appointment.scheduled_at < today_end,
                Appointment.status != "cancelled",
            )
        )
        or 0,
        no_show_rate=(outcome.get("no_show", 0) / attended) if attended else None,
    )
    audit.record(session, actor, "reporting.view_headline", object_type="headline")
    return result


def change_ratio(current: float | Decimal, previous: float | Decimal) -> float | None:
    """Relative change from ``previous`` to ``current`` (None when previous is zero)."""
    if not previous:
        return None
    return float(current) / float(previous) - 1.0
