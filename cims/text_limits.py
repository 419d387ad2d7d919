"""How long free text may be, and the one message that refuses anything longer.

Every limit counts characters after stripping surrounding white space. The message carries
no number: most refusals are lists of keys a page renders without parameters, so the
limit is passed as ``limit=`` only where the refusal type takes parameters.
"""

from __future__ import annotations

from typing import Final

TOO_LONG_KEY: Final = "common.text_too_long"

MAX_REASON: Final = 1_000  # void, disable, break-glass, booking and cancellation reasons
MAX_NOTE: Final = 1_000  # an access review's note
MAX_CLINICAL_REASON: Final = 2_000  # why a prescription was stopped or a chart row voided
MAX_ADDRESS: Final = 500
MAX_ASSISTANT_QUESTION: Final = 2_000
MAX_SAVED_QUERY_NAME: Final = 200
MAX_FILE_NAME: Final = 255  # the longest name common file systems accept


def too_long(text: str | None, limit: int) -> bool:
    """True when ``text`` (stripped) holds more than ``limit`` characters."""
    return len((text or "").strip()) > limit
