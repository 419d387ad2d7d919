"""Display formatting: money, times, percentages, localised names."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from cims.records.drugs import FREQUENCIES, ROUTES
from ui.i18n import language, tr

# Characters that make markdown (or Streamlit's :color[...] and $math$ extensions) inside a
# line: links and images need "[", HTML and autolinks "<" or ":", entities "&". A backslash
# makes each literal; the rendered text looks the same.
_INLINE_SYNTAX = re.compile(r"([\\`*_\[\]<>|~:$&])")
# Block syntax only counts at the start of a line: headings, lists, quotes, rules.
_LINE_START = re.compile(r"^([ \t]*\d*)([#>+=.)-])", re.MULTILINE)


def plain(text: str) -> str:
    """User text shown literally inside st.markdown/st.write/st.info/st.caption.

    Links, images, headings, lists, HTML and entities, colour directives and LaTeX all show
    as typed (no remote image is fetched, no link is made); line breaks are kept.
    """
    escaped = _INLINE_SYNTAX.sub(r"\\\1", text)
    escaped = _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), escaped)
    return escaped.replace("\n", "  \n")


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


def route_name(code: str | None) -> str:
    """A prescription's route in the reader's language (an imported unknown code as is)."""
    return tr(f"encounter.route_{code}") if code in ROUTES else (code or "")


def frequency_name(code: str | None) -> str:
    """A prescription's frequency in the reader's language ("Twice daily (bid)")."""
    return tr(f"encounter.frequency_{code}") if code in FREQUENCIES else (code or "")
