"""Delivery adapters: every reminder is in the in-app inbox; SMS and email go to the outbox.

The outbox row names its recipient by reference (``patient:<id>`` or ``user:<id>``), never by
phone number or address: the sender resolves the contact at send time, so the outbox holds
no personal data. Delivery runs in the same transaction as the reminders it delivers, so a
reminder raised once is queued once.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

_QUEUE = text(
    """
    INSERT INTO notification_outbox (channel, recipient, template, params, status, attempts)
    SELECT :channel,
           CASE WHEN r.recipient_user_id IS NOT NULL THEN 'user:' || r.recipient_user_id
                ELSE 'patient:' || r.recipient_patient_id END,
           r.message_key,
           r.params, 'pending', 0
    FROM reminders r
    WHERE r.id = ANY(:ids)
    ORDER BY r.id
    """
)


def deliver(session: Session, *, channel: str, reminder_ids: list[int]) -> int:
    """Deliver new reminders on ``channel``; returns how many outbox messages were queued."""
    if channel == "in_app" or not reminder_ids:
        return 0  # the reminder row itself is the in-app delivery
    result = session.execute(_QUEUE, {"channel": channel, "ids": reminder_ids})
    return int(getattr(result, "rowcount", 0) or 0)
