"""The app process a fault test kills or starves: one real service call through cims.db.

Run as ``python tests/faults/fault_child.py OPERATION JSON_ARGS`` with CIMS_DATABASE_URL set
(its application_name lets the test find this process's connections). Nothing here hooks
into production code: the test stops the call part-way by holding a lock the call needs,
or by giving it a backup folder with no room. The last stdout line is one JSON object.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from cims.db import session_scope
from cims.security.accounts import build_actor
from cims.security.models import User
from cims.security.rbac import Actor


def _actor(db: Any, user_id: int) -> Actor:
    user = db.get(User, user_id)
    assert user is not None
    return build_actor(db, user)


def pay(args: dict[str, Any]) -> dict[str, Any]:
    """Take a payment at the counter."""
    from cims.billing.payments import take_payment

    with session_scope() as db:
        payment = take_payment(
            session=db,
            actor=_actor(db, args["user_id"]),
            invoice_id=args["invoice_id"],
            amount=Decimal(args["amount"]),
            method="cash",
            idempotency_key=args["key"],
        )
        return {"payment_id": payment.id}


def merge(args: dict[str, Any]) -> dict[str, Any]:
    """Merge a duplicate patient into the survivor."""
    from cims.patients.duplicates import merge_patients

    with session_scope() as db:
        record = merge_patients(
            session=db,
            actor=_actor(db, args["user_id"]),
            survivor_id=args["survivor_id"],
            merged_id=args["merged_id"],
            reason="same person",
        )
        return {"merge_id": record.id}


def import_folder(args: dict[str, Any]) -> dict[str, Any]:
    """Import a Synthea CSV export."""
    from cims.interop.synthea import import_synthea

    with session_scope() as db:
        report = import_synthea(
            session=db, actor=_actor(db, args["user_id"]), folder=Path(args["folder"])
        )
        return {"run_id": report.run_id}


def backup(args: dict[str, Any]) -> dict[str, Any]:
    """Back up now, as the admin page does."""
    from cims.ops.backup_service import back_up_now

    with session_scope() as db:
        result = back_up_now(session=db, actor=_actor(db, args["user_id"]))
        return {"file": result.path.name}


def _limit_file_size(limit: int | None) -> None:
    """No file this process writes may grow past ``limit`` bytes (EFBIG, like a full disk)."""
    if limit is None:
        return
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of dying
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def backup_on_full_disk(args: dict[str, Any]) -> dict[str, Any]:
    """Back up into a full folder: through the service, then (unless told not to) the page."""
    from cims.ops.backup_service import back_up_now
    from cims.security import signin

    with session_scope() as db:
        session_id, actor = signin.start_session(session=db, user_id=args["user_id"])
    page = _admin_backups_page(actor, session_id) if args.get("page", True) else None
    _limit_file_size(args.get("file_size_limit"))
    outcome: dict[str, Any] = {}
    try:
        with session_scope() as db:
            back_up_now(session=db, actor=actor)
        outcome["service"] = "succeeded"
    except Exception as error:  # reported to the test, which says what it expected
        outcome["service"] = type(error).__name__
        outcome["service_message"] = str(error)
    if page is not None:
        [button] = [b for b in page.button if b.key == "backup_now"]
        button.click().run()
        outcome["page_exception"] = [str(e.value) for e in page.exception]
        outcome["page_errors"] = [e.value for e in page.error]
        outcome["page_captions"] = [c.value for c in page.caption]
        outcome["page_success"] = [s.value for s in page.success]
    return outcome


def _admin_backups_page(actor: Actor, session_id: object) -> Any:
    """The admin backups page in AppTest, signed in with a real server-side session."""
    from streamlit.testing.v1 import AppTest

    from cims.config import PROJECT_ROOT

    page = AppTest.from_file(str(PROJECT_ROOT / "pages" / "admin_backups.py"), default_timeout=60)
    page.session_state["lang"] = "en"
    page.session_state["actor"] = actor
    page.session_state["auth_session_id"] = session_id
    return page.run()


OPERATIONS = {
    "pay": pay,
    "merge": merge,
    "import": import_folder,
    "backup": backup,
    "backup_on_full_disk": backup_on_full_disk,
}

if __name__ == "__main__":
    result = OPERATIONS[sys.argv[1]](json.loads(sys.argv[2]))
    print(json.dumps(result, default=str), flush=True)
