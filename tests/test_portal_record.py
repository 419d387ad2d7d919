"""A patient reads their own record in the portal: no staff notes, no one else's record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from sqlalchemy.orm import Session
from test_pages import _signed_in_page

import factories
from cims.records.summary import my_summary
from cims.security.rbac import AccessDenied


@pytest.fixture(scope="module")
def seeded_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small seeded demo hospital that the app under test is pointed at."""
    with seeded_app_database("portal_record", patients=150, seed=19) as url:
        yield url


def test_the_portal_record_page_shows_my_record(seeded_url: str) -> None:
    at = _signed_in_page(seeded_url, "patient", "pages/portal_record.py")
    assert not at.exception, at.exception
    assert at.title[0].value == "My health record"
    headings = [h.value for h in at.subheader]
    assert "My visits" in headings and "Recent notes" not in headings


def test_my_summary_is_mine_only_and_leaves_out_staff_notes(session: Session) -> None:
    me = factories.patient(session)
    portal = factories.actor(session, "patient", patient_id=me.id)
    record = my_summary(session=session, actor=portal, today=dt.date(2026, 11, 26))
    assert record.header.patient_id == me.id and record.notes == () and record.risks == ()
    with pytest.raises(AccessDenied):
        my_summary(session=session, actor=factories.actor(session, "doctor"), today=dt.date.today())
