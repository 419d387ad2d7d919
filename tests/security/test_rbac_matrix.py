"""The RBAC matrix: every privileged service function, run as every role.

Every function decorated with ``@requires`` is discovered; each must have an entry here
(so a new service cannot slip past the matrix). Run as every role, exactly the roles whose
default grants hold the function's privileges succeed; every other role is refused, and
each success leaves exactly the expected audit rows (``AUDITED_AS``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import itertools
import pkgutil
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import cims
import factories
from cims.base import utcnow
from cims.security.models import AccessReviewItem, AuditEvent, Permission, Role, RolePermission
from cims.security.rbac import ROLE_DEFAULTS, ROLES, AccessDenied, Actor, Privilege

TODAY = dt.date(2026, 11, 26)
Args = Callable[[Session, Actor], dict[str, Any]]


def _privileged_functions() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for info in pkgutil.walk_packages(cims.__path__, "cims."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            decorated = callable(value) and hasattr(value, "__cims_privileges__")
            if decorated and getattr(value, "__module__", "") == info.name:
                found[f"{info.name}.{name}"] = value
    return found


def _user_id(session: Session, _actor: Actor) -> dict[str, Any]:
    return {"user_id": factories.user(session, "nurse").id}


def _patient(session: Session, _actor: Actor) -> dict[str, Any]:
    return {"patient_id": factories.patient(session).id, "reason": "unconscious in the ED"}


def _grant(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.security.care import open_break_glass

    doctor = factories.actor(session, "doctor")
    patient = factories.patient(session)
    grant = open_break_glass(
        session=session, actor=doctor, patient_id=patient.id, reason="unconscious in the ED"
    )
    return {"grant_id": grant.id, "justified": True}


def _review_item(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.security.reviews import start_access_review

    review = start_access_review(session=session, actor=factories.actor(session, "admin"))
    item = session.scalars(
        select(AccessReviewItem).where(AccessReviewItem.review_id == review.id)
    ).first()
    assert item is not None
    return {"item_id": item.id, "certify": True}


def _lifted(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.security.incidents import start_lockdown

    start_lockdown(session=session, actor=factories.actor(session, "admin"), reason="drill")
    return {"note": "drill over"}


def _registration(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.patients.resident_id import check_digit
    from cims.patients.schemas import PatientInput

    first17 = "110101" + "19850312" + f"{next(_serial) % 1000:03d}"
    return {
        "data": PatientInput(
            family_name="王",
            given_name="小明",
            sex="M" if int(first17[-1]) % 2 else "F",
            birth_date=dt.date(1985, 3, 12),
            national_id=first17 + check_digit(first17),
            mobile="13912345678",
            insurance_type="self_pay",
        ),
        "confirm_not_duplicate": True,
        "today": TODAY,
    }


def _demographics(session: Session, actor: Actor) -> dict[str, Any]:
    patient = factories.patient(session)
    data = _registration(session, actor)["data"]
    return {"patient_id": patient.id, "data": data, "reason": "typo", "today": TODAY}


def _two_patients(session: Session, _actor: Actor) -> dict[str, Any]:
    return {
        "survivor_id": factories.patient(session).id,
        "merged_id": factories.patient(session).id,
        "reason": "same person",
    }


def _merge(session: Session, _actor: Actor) -> dict[str, Any]:
    from cims.patients.duplicates import merge_patients

    merge = merge_patients(
        session=session,
        actor=factories.actor(session, "registrar"),
        **_two_patients(session, _actor),
    )
    return {"merge_id": merge.id}


def _temporary(session: Session, _actor: Actor) -> dict[str, Any]:
    unknown = factories.patient(session, is_unidentified=True, temporary_label="无名氏-急诊-0001")
    return {"temporary_id": unknown.id, "patient_id": factories.patient(session).id}


def _in_care(session: Session, actor: Actor) -> dict[str, Any]:
    from cims.records.models import Encounter

    department = factories.department(session, "ENDO")
    patient = factories.patient(session)
    session.add(
        Encounter(
            patient_id=patient.id,
            encounter_type="outpatient",
            department_id=department.id,
            attending_id=actor.user_id,
            started_at=utcnow(),
            status="open",
        )
    )
    session.flush()
    return {"patient_id": patient.id, "today": TODAY}


_serial = itertools.count(101, 2)

ARGS: dict[str, Args] = {
    "cims.patients.duplicates.find_duplicates": lambda s, a: {
        "patient_id": factories.patient(s).id
    },
    "cims.patients.duplicates.identify_unidentified": _temporary,
    "cims.patients.duplicates.merge_patients": _two_patients,
    "cims.patients.duplicates.undo_merge": _merge,
    "cims.patients.search.search_patients": lambda s, a: {"query": "张三"},
    "cims.patients.service.get_patient": lambda s, a: {"patient_id": factories.patient(s).id},
    "cims.patients.service.register_patient": _registration,
    "cims.patients.service.update_demographics": _demographics,
    "cims.patients.service.void_patient": lambda s, a: {
        "patient_id": factories.patient(s).id,
        "reason": "registered in error",
    },
    "cims.records.summary.build_summary": _in_care,
    "cims.appointments.service.list_my_clinic": lambda s, a: {"day": TODAY},
    "cims.appointments.service.list_front_desk_day": lambda s, a: {"day": TODAY},
    "cims.appointments.service.list_departments": lambda s, a: {},
    "cims.records.service.list_my_inpatients": lambda s, a: {"today": TODAY},
    "cims.billing.service.takings_for_day": lambda s, a: {"day": TODAY},
    "cims.reporting.service.headline": lambda s, a: {"today": TODAY},
    "cims.portal.service.portal_overview": lambda s, a: {"now": utcnow()},
    "cims.security.admin.list_accounts": lambda s, a: {"now": utcnow()},
    "cims.security.admin.unlock_account": _user_id,
    "cims.security.admin.reset_mfa": _user_id,
    "cims.security.admin.sign_out_everywhere": _user_id,
    "cims.security.admin.set_account_active": lambda s, a: {
        **_user_id(s, a),
        "active": False,
        "reason": "left the hospital",
    },
    "cims.security.care.open_break_glass": _patient,
    "cims.security.care.list_break_glass_for_review": lambda s, a: {},
    "cims.security.care.review_break_glass": _grant,
    "cims.security.incidents.start_lockdown": lambda s, a: {"reason": "drill"},
    "cims.security.incidents.lift_lockdown": _lifted,
    "cims.security.incidents.list_incidents": lambda s, a: {},
    "cims.security.reviews.start_access_review": lambda s, a: {},
    "cims.security.reviews.decide": _review_item,
    "cims.security.reviews.open_review": lambda s, a: {},
    "cims.security.reviews.security_report": lambda s, a: {
        "start": utcnow() - dt.timedelta(days=1),
        "end": utcnow(),
    },
    "cims.security.roles.privilege_matrix": lambda s, a: {},
    "cims.security.audit_views.search_audit": lambda s, a: {
        "start": utcnow() - dt.timedelta(days=1),
        "end": utcnow(),
        "mrn": "0000000018",
    },
    "cims.security.audit_views.verify_audit_chain": lambda s, a: {},
    "cims.security.roles.set_grant": lambda s, a: {
        "role": "manager",
        "privilege": Privilege.EXPORT_DATA,
        "granted": True,
    },
}
# Exactly the audit rows one successful call leaves, in order (one per patient touched).
# Reference data without patient or financial content is privileged but not audited: ().
AUDITED_AS: dict[str, tuple[str, ...]] = {
    "cims.appointments.service.list_departments": (),
    "cims.appointments.service.list_front_desk_day": ("appointments.list_day",),
    "cims.appointments.service.list_my_clinic": ("appointments.list_clinic",),
    "cims.billing.service.takings_for_day": ("billing.view_takings",),
    "cims.patients.duplicates.find_duplicates": ("patients.find_duplicates",),
    "cims.patients.duplicates.identify_unidentified": ("patients.identify_unidentified",) * 2,
    "cims.patients.duplicates.merge_patients": ("patients.merge",) * 2,
    "cims.patients.duplicates.undo_merge": ("patients.undo_merge",) * 2,
    "cims.patients.search.search_patients": ("patients.search",),
    "cims.patients.service.get_patient": ("patients.view",),
    "cims.patients.service.register_patient": ("patients.register",),
    "cims.patients.service.update_demographics": ("patients.update_demographics",),
    "cims.patients.service.void_patient": ("patients.void",),
    "cims.portal.service.portal_overview": ("portal.view_overview",),
    "cims.records.service.list_my_inpatients": ("records.list_inpatients",),
    "cims.records.summary.build_summary": ("records.view_summary",),
    "cims.reporting.service.headline": ("reporting.view_headline",),
    "cims.security.admin.list_accounts": ("admin.list_accounts",),
    "cims.security.admin.reset_mfa": ("admin.mfa_reset",),
    "cims.security.admin.set_account_active": ("admin.disable",),
    "cims.security.admin.sign_out_everywhere": ("admin.sign_out_everywhere",),
    "cims.security.admin.unlock_account": ("admin.unlock",),
    "cims.security.audit_views.search_audit": ("audit.search",),
    "cims.security.audit_views.verify_audit_chain": ("audit.verify",),
    "cims.security.care.list_break_glass_for_review": ("audit.list_break_glass",),
    "cims.security.care.open_break_glass": ("clinical.break_glass",),
    "cims.security.care.review_break_glass": ("audit.review_break_glass",),
    "cims.security.incidents.lift_lockdown": ("incident.lockdown_lifted",),
    "cims.security.incidents.list_incidents": ("incident.list",),
    "cims.security.incidents.start_lockdown": ("incident.lockdown_started",),
    "cims.security.reviews.decide": ("access_review.certify",),
    "cims.security.reviews.open_review": ("access_review.view",),
    "cims.security.reviews.security_report": ("audit.security_report",),
    "cims.security.reviews.start_access_review": ("access_review.start",),
    "cims.security.roles.privilege_matrix": ("roles.view_matrix",),
    "cims.security.roles.set_grant": ("roles.grant",),
}
FUNCTIONS = _privileged_functions()


def test_every_privileged_function_is_in_the_matrix() -> None:
    assert sorted(set(FUNCTIONS) - set(ARGS)) == []
    assert sorted(set(ARGS) - set(FUNCTIONS)) == []
    assert sorted(set(ARGS) ^ set(AUDITED_AS)) == []


def test_database_grants_match_the_defaults(session: Session) -> None:
    rows = session.execute(
        select(Role.code, Permission.code)
        .join(RolePermission, RolePermission.role_id == Role.id)
        .join(Permission, Permission.id == RolePermission.permission_id)
    ).all()
    stored: dict[str, set[str]] = {role: set() for role in ROLES}
    for role, privilege in rows:
        stored[role].add(privilege)
    assert stored == {role: {p.value for p in grants} for role, grants in ROLE_DEFAULTS.items()}


def _actor_for(session: Session, role: str) -> Actor:
    if role == "patient":
        return factories.actor(session, role, patient_id=factories.patient(session).id)
    return factories.actor(session, role)


@pytest.mark.parametrize("name", sorted(ARGS))
def test_exactly_the_privileged_roles_succeed(session: Session, name: str) -> None:
    function = FUNCTIONS[name]
    needed = set(function.__cims_privileges__)
    succeeded = set()
    for role in ROLES:
        savepoint = session.begin_nested()
        actor = _actor_for(session, role)
        kwargs = ARGS[name](session, actor)
        before = session.scalar(select(func.max(AuditEvent.id))) or 0
        try:
            function(session=session, actor=actor, **kwargs)
        except AccessDenied:
            savepoint.rollback()
            continue
        succeeded.add(role)
        session.flush()
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.id > before).order_by(AuditEvent.id)
        ).all()
        assert tuple(actions) == AUDITED_AS[name], (name, role, actions)
        savepoint.rollback()
    expected = {role for role, grants in ROLE_DEFAULTS.items() if needed <= grants}
    assert succeeded == expected
