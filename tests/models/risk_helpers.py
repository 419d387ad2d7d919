"""Helpers shared by the risk-model tests."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.security.accounts import build_actor
from cims.security.models import User
from cims.security.rbac import Actor
from models.train import TrainSettings

FAST = TrainSettings(hgb_max_iter=40, n_splits=3, calibration_cv=3)


def demo_actor(session: Session, username: str) -> Actor:
    """The demo account's actor (analyst = data staff)."""
    user = session.scalar(select(User).where(User.username == username))
    assert user is not None
    return build_actor(session, user)
