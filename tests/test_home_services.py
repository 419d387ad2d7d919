"""Home-page services: exactly the privileged roles succeed, and each call is audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import factories
from cims.appointments.service import list_front_desk_day, list_my_clinic
from cims.base import utcnow
from cims.billing.service import takings_for_day
from cims.portal.service import portal_overview
from cims.records.service import list_my_inpatients
from cims.reporting.service import headline
from cims.security.admin import list_accounts
from cims.security.models import AuditEvent
from cims.security.rbac import ROLES, AccessDenied, Actor

TODAY = dt.date(2026, 11, 26)

CASES: dict[str, tuple[Callable[..., Any], dict[str, Any], set[str], str]] = {
    "clinic": (list_my_clinic, {"day": TODAY}, {"doctor", "nurse"}, "appointments.list_clinic"),
    "front_desk": (
        list_front_desk_day,
        {"day": TODAY},
        {"nurse", "registrar"},
        "appointments.list_day",
    ),
    "inpatients": (
        list_my_inpatients,
        {"today": TODAY},
        {"doctor", "nurse"},
        "records.list_inpatients",
    ),
    "takings": (takings_for_day, {"day": TODAY}, {"finance"}, "billing.view_takings"),
    "headline": (
        headline,
        {"today": TODAY},
        {"manager", "data_staff", "admin"},
        "reporting.view_headline",
    ),
    "accounts": (list_accounts, {"now": utcnow()}, {"admin"}, "admin.list_accounts"),
    "portal": (portal_overview, {"now": utcnow()}, {"patient"}, "portal.view_overview"),
}


def _actor(session: Session, role: str) -> Actor:
    if role == "patient":
        person = factories.patient(session)
        return factories.actor(session, role, patient_id=person.id)
    return factories.actor(session, role)


@pytest.mark.parametrize("case", sorted(CASES))
def test_only_privileged_roles_succeed_and_are_audited(session: Session, case: str) -> None:
    func, kwargs, allowed, action = CASES[case]
    succeeded = set()
    for role in ROLES:
        actor = _actor(session, role)
        try:
            func(session=session, actor=actor, **kwargs)
        except AccessDenied:
            continue
        succeeded.add(role)
        audited = session.scalars(
            select(AuditEvent.action).where(AuditEvent.actor_id == actor.user_id)
        ).all()
        assert action in audited
    assert succeeded == allowed


def test_no_actor_is_refused(session: Session) -> None:
    with pytest.raises(AccessDenied):
        takings_for_day(session=session, actor=None, day=TODAY)  # type: ignore[arg-type]


def test_a_portal_account_without_a_patient_is_refused(session: Session) -> None:
    actor = factories.actor(session, "patient")
    with pytest.raises(AccessDenied):
        portal_overview(session=session, actor=actor, now=utcnow())
