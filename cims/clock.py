"""Hospital-local calendar days over UTC storage."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from cims.config import get_settings


def local_zone() -> ZoneInfo:
    """The hospital's time zone (settings.timezone)."""
    return ZoneInfo(get_settings().timezone)


def local_today() -> dt.date:
    """Today's date in the hospital's time zone."""
    return dt.datetime.now(local_zone()).date()


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """UTC start (inclusive) and end (exclusive) of a hospital-local calendar day."""
    zone = local_zone()
    start = dt.datetime.combine(day, dt.time.min, tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def to_local(moment: dt.datetime | None) -> dt.datetime | None:
    """A stored UTC time shown in the hospital's time zone."""
    return moment.astimezone(local_zone()) if moment is not None else None


def age_on(birth: dt.date | None, day: dt.date) -> int | None:
    """Whole years of age on ``day``."""
    if birth is None:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
