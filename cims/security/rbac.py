"""Privileges, the default role matrix, the acting user and the service-layer check."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Privilege(StrEnum):
    """Everything a role may be allowed to do; checked on service functions."""

    VIEW_PATIENTS = "view_patients"  # find patients, see masked demographics
    REGISTER_PATIENTS = "register_patients"
    EDIT_DEMOGRAPHICS = "edit_demographics"
    VIEW_SENSITIVE_IDS = "view_sensitive_ids"  # unmasked ID and phone
    MERGE_PATIENTS = "merge_patients"
    VIEW_CLINICAL = "view_clinical"
    WRITE_CLINICAL = "write_clinical"
    RECORD_VITALS = "record_vitals"
    MANAGE_BEDS = "manage_beds"  # admit to a bed, transfer, discharge
    PRESCRIBE = "prescribe"
    BREAK_GLASS = "break_glass"
    MANAGE_APPOINTMENTS = "manage_appointments"
    CHECK_IN = "check_in"
    VIEW_BILLING = "view_billing"
    POST_CHARGES = "post_charges"
    TAKE_PAYMENTS = "take_payments"
    APPROVE_REFUNDS = "approve_refunds"
    MANAGE_PRICES = "manage_prices"
    CLOSE_SETTLEMENT = "close_settlement"
    VIEW_ANALYTICS = "view_analytics"
    QUERY_ANALYTICS = "query_analytics"
    RUN_RISK_REPORTS = "run_risk_reports"
    MANAGE_MODELS = "manage_models"
    EXPORT_DATA = "export_data"
    IMPORT_DATA = "import_data"
    ANSWER_CONSULTATIONS = "answer_consultations"
    MANAGE_USERS = "manage_users"
    MANAGE_ROLES = "manage_roles"
    VIEW_AUDIT = "view_audit"
    MANAGE_BACKUPS = "manage_backups"
    MANAGE_INCIDENTS = "manage_incidents"
    PORTAL_SELF = "portal_self"  # a patient acting on their own record


ROLES: dict[str, tuple[str, str]] = {
    "admin": ("系统管理员", "Administrator"),
    "doctor": ("医生", "Doctor"),
    "nurse": ("护士", "Nurse"),
    "registrar": ("挂号员", "Registrar"),
    "finance": ("收费员", "Finance"),
    "manager": ("管理者", "Manager"),
    "data_staff": ("数据分析员", "Data staff"),
    "patient": ("患者", "Patient"),
}

_P = Privilege
ROLE_DEFAULTS: dict[str, frozenset[Privilege]] = {
    "admin": frozenset(
        {
            _P.MANAGE_USERS,
            _P.MANAGE_ROLES,
            _P.VIEW_AUDIT,
            _P.MANAGE_BACKUPS,
            _P.MANAGE_INCIDENTS,
            _P.IMPORT_DATA,
            _P.VIEW_ANALYTICS,
        }
    ),
    "doctor": frozenset(
        {
            _P.VIEW_PATIENTS,
            _P.VIEW_CLINICAL,
            _P.WRITE_CLINICAL,
            _P.PRESCRIBE,
            _P.RECORD_VITALS,
            _P.MANAGE_BEDS,
            _P.BREAK_GLASS,
            _P.ANSWER_CONSULTATIONS,
            _P.MANAGE_APPOINTMENTS,
        }
    ),
    "nurse": frozenset(
        {
            _P.VIEW_PATIENTS,
            _P.VIEW_CLINICAL,
            _P.RECORD_VITALS,
            _P.MANAGE_BEDS,
            _P.CHECK_IN,
            _P.EDIT_DEMOGRAPHICS,
            _P.BREAK_GLASS,
            _P.REGISTER_PATIENTS,
        }
    ),
    "registrar": frozenset(
        {
            _P.VIEW_PATIENTS,
            _P.REGISTER_PATIENTS,
            _P.EDIT_DEMOGRAPHICS,
            _P.VIEW_SENSITIVE_IDS,
            _P.MERGE_PATIENTS,
            _P.MANAGE_APPOINTMENTS,
            _P.CHECK_IN,
        }
    ),
    "finance": frozenset(
        {
            _P.VIEW_PATIENTS,
            _P.VIEW_BILLING,
            _P.POST_CHARGES,
            _P.TAKE_PAYMENTS,
            _P.APPROVE_REFUNDS,
            _P.MANAGE_PRICES,
            _P.CLOSE_SETTLEMENT,
        }
    ),
    "manager": frozenset({_P.VIEW_ANALYTICS}),
    "data_staff": frozenset(
        {
            _P.VIEW_ANALYTICS,
            _P.QUERY_ANALYTICS,
            _P.RUN_RISK_REPORTS,
            _P.MANAGE_MODELS,
            _P.EXPORT_DATA,
            _P.IMPORT_DATA,
        }
    ),
    "patient": frozenset({_P.PORTAL_SELF}),
}


class AccessDenied(PermissionError):
    """The actor lacks the privilege (or relationship) an action needs."""

    def __init__(self, privilege: Privilege | str, actor: Actor | None = None) -> None:
        self.privilege = str(privilege)
        self.username = actor.username if actor else None
        super().__init__(f"{self.username or 'anonymous'} lacks {self.privilege}")


@dataclass(frozen=True)
class Actor:
    """Who is acting: the signed-in user with their roles and effective privileges."""

    user_id: int
    username: str
    display_name: str
    roles: tuple[str, ...]
    privileges: frozenset[Privilege] = field(default_factory=frozenset)
    patient_id: int | None = None  # set for patient-portal accounts
    department_ids: tuple[int, ...] = ()

    @property
    def primary_role(self) -> str:
        """The role whose home page the user lands on."""
        return self.roles[0] if self.roles else ""

    def can(self, privilege: Privilege) -> bool:
        """Whether the actor holds ``privilege``."""
        return privilege in self.privileges

    def require(self, privilege: Privilege) -> None:
        """Raise AccessDenied unless the actor holds ``privilege``."""
        if privilege not in self.privileges:
            raise AccessDenied(privilege, self)


def _audit_refusal(
    session: Any, actor: Any, func: Callable[..., Any], refusal: AccessDenied, kwargs_patient: Any
) -> None:
    """Keep a refused call in the audit log (its own transaction survives the rollback)."""
    from cims.security import audit  # audit imports this module

    bind = session.get_bind() if session is not None else None
    if bind is None:
        return
    audit.record_separately(
        bind,
        actor if isinstance(actor, Actor) else None,
        f"{func.__module__.removeprefix('cims.')}.{func.__name__}",
        outcome="denied",
        detail={"privilege": refusal.privilege},
        patient_id=kwargs_patient if isinstance(kwargs_patient, int) else None,
    )


def requires(*privileges: Privilege) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a service function: its ``actor`` keyword must hold every privilege."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            actor: Any = kwargs.get("actor")
            try:
                if not isinstance(actor, Actor):
                    raise AccessDenied(privileges[0] if privileges else "signed_in", None)
                for privilege in privileges:
                    actor.require(privilege)
            except AccessDenied as refusal:
                _audit_refusal(
                    kwargs.get("session"), actor, func, refusal, kwargs.get("patient_id")
                )
                raise
            return func(*args, **kwargs)

        checked.__cims_privileges__ = privileges  # type: ignore[attr-defined]
        return checked

    return decorate
