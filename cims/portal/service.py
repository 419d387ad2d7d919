"""The patient portal: a patient sees only their own bookings and bills."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.appointments.models import Appointment
from cims.billing.models import Invoice
from cims.clock import to_local
from cims.org.models import Department
from cims.patients.models import Patient
from cims.security import audit
from cims.security.models import User
from cims.security.rbac import AccessDenied, Actor, Privilege, requires


@dataclass(frozen=True)
class PortalAppointment:
    """An upcoming booking as the patient sees it."""

    scheduled_at: dt.datetime
    department_zh: str
    department_en: str
    doctor_name: str | None
    status: str


@dataclass(frozen=True)
class PortalInvoice:
    """An unpaid or partly paid bill as the patient sees it."""

    invoice_id: int
    invoice_no: str
    issued_at: dt.datetime | None
    due_date: dt.date | None
    patient_amount: Decimal
    paid_amount: Decimal

    @property
    def balance(self) -> Decimal:
        """What is still to pay."""
        return self.patient_amount - self.paid_amount


@dataclass(frozen=True)
class PortalOverview:
    """The portal's home: who I am, what is booked, what I owe."""

    patient_name: str
    mrn: str
    appointments: list[PortalAppointment]
    open_invoices: list[PortalInvoice]


@requires(Privilege.PORTAL_SELF)
def portal_overview(*, session: Session, actor: Actor, now: dt.datetime) -> PortalOverview:
    """The signed-in patient's own upcoming appointments and open invoices."""
    if actor.patient_id is None:
        raise AccessDenied(Privilege.PORTAL_SELF, actor)
    patient = session.get(Patient, actor.patient_id)
    if patient is None:
        raise AccessDenied(Privilege.PORTAL_SELF, actor)
    appointments = [
        PortalAppointment(
            scheduled_at=to_local(appt.scheduled_at) or appt.scheduled_at,
            department_zh=dept.name_zh,
            department_en=dept.name_en,
            doctor_name=doctor,
            status=appt.status,
        )
        for appt, dept, doctor in session.execute(
            select(Appointment, Department, User.display_name)
            .join(Department, Department.id == Appointment.department_id)
            .outerjoin(User, User.id == Appointment.doctor_id)
            .where(
                Appointment.patient_id == patient.id,
                Appointment.scheduled_at >= now,
                Appointment.status.in_(("booked", "checked_in")),
            )
            .order_by(Appointment.scheduled_at)
        )
    ]
    invoices = [
        PortalInvoice(
            invoice_id=inv.id,
            invoice_no=inv.invoice_no,
            issued_at=to_local(inv.issued_at),
            due_date=inv.due_date,
            patient_amount=inv.patient_amount,
            paid_amount=inv.paid_amount,
        )
        for inv in session.execute(
            select(Invoice)
            .where(
                Invoice.patient_id == patient.id,
                Invoice.status.in_(("issued", "partly_paid")),
                Invoice.voided.is_(False),
            )
            .order_by(Invoice.issued_at)
        ).scalars()
    ]
    audit.record(
        session,
        actor,
        "portal.view_overview",
        patient_id=patient.id,
        object_type="patient",
        object_id=patient.id,
    )
    return PortalOverview(
        patient_name=patient.full_name,
        mrn=patient.mrn,
        appointments=appointments,
        open_invoices=invoices,
    )
