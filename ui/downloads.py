"""Download buttons whose file is built (and audited) only when the user clicks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cims.db import session_scope
from cims.security.rbac import Actor


def deferred(actor: Actor, function: Callable[..., Any], **kwargs: Any) -> Callable[[], bytes]:
    """A ``st.download_button`` data callable running an audited service call on click."""

    def run() -> bytes:
        with session_scope() as db:
            result = function(session=db, actor=actor, **kwargs)
        return result if isinstance(result, bytes) else bytes(result.data)

    return run
