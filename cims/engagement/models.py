"""Patient engagement: reminders, notification outbox, consultations, surveys, FAQ."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, Index, LargeBinary, SmallInteger, func
from sqlalchemy.orm import Mapped, mapped_column

from cims.base import Base, Tracked, fk, one_of, pk

CHANNELS = ("in_app", "sms", "email")


class ReminderRule(Tracked, Base):
    """A reminder rule as data: enabled, thresholds, channel, audience."""

    __tablename__ = "reminder_rules"
    __table_args__ = (
        one_of("channel", CHANNELS),
        one_of("audience", ("patient", "doctor", "nurse", "finance", "care_team")),
    )

    id: Mapped[int] = pk()
    code: Mapped[str] = mapped_column(unique=True)
    enabled: Mapped[bool] = mapped_column(default=True, server_default="true")
    params: Mapped[dict[str, Any]]
    channel: Mapped[str] = mapped_column(default="in_app")
    audience: Mapped[str]


class Reminder(Base):
    """One raised reminder in a user's or patient's inbox; never raised twice per event."""

    __tablename__ = "reminders"
    __table_args__ = (
        one_of("status", ("new", "acknowledged", "snoozed", "dismissed")),
        CheckConstraint(
            "recipient_user_id IS NOT NULL OR recipient_patient_id IS NOT NULL",
            name="has_recipient",
        ),
        Index(
            "uq_reminders_event",
            "rule_code",
            "event_key",
            "recipient_user_id",
            "recipient_patient_id",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
        Index("ix_reminders_user_inbox", "recipient_user_id", "status"),
        Index("ix_reminders_patient_inbox", "recipient_patient_id", "status"),
    )

    id: Mapped[int] = pk()
    rule_code: Mapped[str]
    event_key: Mapped[str]
    recipient_user_id: Mapped[int | None] = fk("users.id")
    recipient_patient_id: Mapped[int | None] = fk("patients.id")
    patient_id: Mapped[int | None] = fk("patients.id")
    message_key: Mapped[str]
    params: Mapped[dict[str, Any]]
    due_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    status: Mapped[str] = mapped_column(default="new")
    snoozed_until: Mapped[dt.datetime | None]
    acknowledged_at: Mapped[dt.datetime | None]


class OutboxMessage(Base):
    """A message waiting for (or sent by) a delivery adapter: SMS, email, one-time codes."""

    __tablename__ = "notification_outbox"
    __table_args__ = (
        one_of("channel", CHANNELS),
        one_of("status", ("pending", "sent", "failed")),
        Index("ix_outbox_pending", "created_at", postgresql_where="status = 'pending'"),
    )

    id: Mapped[int] = pk()
    channel: Mapped[str]
    recipient: Mapped[str]
    template: Mapped[str]
    params: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    status: Mapped[str] = mapped_column(default="pending")
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    sent_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None]


class ConsultationThread(Base):
    """An online consultation (在线咨询) between a patient and a doctor."""

    __tablename__ = "consultation_threads"
    __table_args__ = (
        one_of("status", ("open", "answered", "closed")),
        Index("ix_consultation_threads_doctor", "doctor_id", "status"),
        Index("ix_consultation_threads_patient", "patient_id", "opened_at"),
    )

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    doctor_id: Mapped[int | None] = fk("users.id")
    department_id: Mapped[int | None] = fk("departments.id")
    subject: Mapped[str]
    status: Mapped[str] = mapped_column(default="open")
    opened_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    first_response_at: Mapped[dt.datetime | None]
    last_message_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]


class ConsultationMessage(Base):
    """One message in a consultation thread; the text is encrypted."""

    __tablename__ = "consultation_messages"
    __table_args__ = (Index("ix_consultation_messages_thread_time", "thread_id", "sent_at"),)

    id: Mapped[int] = pk()
    thread_id: Mapped[int] = fk("consultation_threads.id", nullable=False)
    sender_user_id: Mapped[int] = fk("users.id", nullable=False)
    body_enc: Mapped[bytes] = mapped_column(LargeBinary)
    attachment_id: Mapped[int | None] = fk("attachments.id")
    sent_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    read_at: Mapped[dt.datetime | None]


class Survey(Base):
    """A post-visit satisfaction survey: 1–5 ratings and the 0–10 recommend score (NPS)."""

    __tablename__ = "surveys"
    __table_args__ = (
        CheckConstraint(
            "(rating_waiting BETWEEN 1 AND 5 OR rating_waiting IS NULL) AND "
            "(rating_doctor BETWEEN 1 AND 5 OR rating_doctor IS NULL) AND "
            "(rating_environment BETWEEN 1 AND 5 OR rating_environment IS NULL) AND "
            "(rating_billing BETWEEN 1 AND 5 OR rating_billing IS NULL)",
            name="ratings_range",
        ),
        CheckConstraint("recommend BETWEEN 0 AND 10 OR recommend IS NULL", name="nps_range"),
        Index("ix_surveys_department_time", "department_id", "completed_at"),
    )

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False, index=True)
    encounter_id: Mapped[int | None] = fk("encounters.id", unique=True)
    department_id: Mapped[int | None] = fk("departments.id")
    sent_at: Mapped[dt.datetime]
    completed_at: Mapped[dt.datetime | None]
    rating_waiting: Mapped[int | None] = mapped_column(SmallInteger)
    rating_doctor: Mapped[int | None] = mapped_column(SmallInteger)
    rating_environment: Mapped[int | None] = mapped_column(SmallInteger)
    rating_billing: Mapped[int | None] = mapped_column(SmallInteger)
    recommend: Mapped[int | None] = mapped_column(SmallInteger)
    comment: Mapped[str | None]


class FaqEntry(Tracked, Base):
    """The hospital's own FAQ, which the portal assistant answers from."""

    __tablename__ = "faq_entries"
    __table_args__ = (one_of("language", ("zh", "en")),)

    id: Mapped[int] = pk()
    language: Mapped[str]
    topic: Mapped[str]
    question: Mapped[str]
    answer: Mapped[str]
    active: Mapped[bool] = mapped_column(default=True, server_default="true")
