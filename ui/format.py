"""Display formatting: money, times, percentages, localised names."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ui.i18n import language


def money(amount: Decimal | float | int) -> str:
    """¥ with thousands separators and two decimals."""
    return f"¥{Decimal(amount):,.2f}"


def hhmm(moment: dt.datetime | None) -> str:
    """Local clock time, or a dash."""
    return moment.strftime("%H:%M") if moment else "—"


def when(moment: dt.datetime | None) -> str:
    """Local date and time, or a dash."""
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "—"


def percent_change(ratio: float | None) -> str | None:
    """'+12.5%' style delta for st.metric (None hides the delta)."""
    return None if ratio is None else f"{ratio:+.1%}"


def localised(name_zh: str, name_en: str) -> str:
    """Pick the name in the session's language."""
    return name_zh if language() == "zh" else name_en
