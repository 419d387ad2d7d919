"""A sandbox payment provider that behaves like WeChat Pay or Alipay do, for a real flow.

It is the *provider's* system, so it keeps its own ledger (a SQLite file under
``<data dir>/sandbox-pay/``), not rows in CIMS's database. A checkout is created pending;
the payer then pays, declines or walks away (timeout: no callback ever comes, the checkout
expires). The provider tells the merchant by an HTTP callback signed with HMAC-SHA256, and
can be made to send it twice (duplicate) or late (after a delay) — the cases a real
integration must survive. ``query`` is the provider's status API used by reconciliation.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Final, Literal

from cims.config import get_settings

SIGNATURE_HEADER: Final = "X-Sandbox-Signature"
CHECKOUT_MINUTES: Final = 15  # a checkout not paid within this expires
Outcome = Literal["success", "decline"]
Deliver = Callable[[bytes, str], None]


@dataclass(frozen=True)
class Checkout:
    """A created checkout: the provider's reference and where the payer goes to pay."""

    provider_reference: str
    checkout_url: str


@dataclass(frozen=True)
class ProviderStatus:
    """What the provider's status API says about one checkout."""

    provider_reference: str
    merchant_reference: str
    status: str  # pending | succeeded | declined | expired
    amount: Decimal


def webhook_secret() -> bytes:
    """The key the sandbox signs callbacks with (derived; a real provider issues its own)."""
    configured = get_settings().payment_webhook_key
    if configured is not None:
        return get_settings().key_bytes("payment_webhook_key")
    base = get_settings().key_bytes("cookie_key")
    return hmac.new(base, b"cims-sandbox-payments", hashlib.sha256).digest()


def sign(body: bytes, secret: bytes | None = None) -> str:
    """Hex HMAC-SHA256 of a callback body."""
    return hmac.new(secret or webhook_secret(), body, hashlib.sha256).hexdigest()


def _http_deliver(url: str) -> Deliver:
    def deliver(body: bytes, signature: str) -> None:
        request = urllib.request.Request(  # noqa: S310 (our own configured callback URL)
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        )
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310
            pass

    return deliver


class SandboxProvider:
    """The sandbox provider: checkouts, the payer's choice, signed callbacks, status queries."""

    name: Final = "sandbox"

    def __init__(self, ledger: Path | None = None, deliver: Deliver | None = None) -> None:
        settings = get_settings()
        self.ledger = ledger or settings.data_dir / "sandbox-pay" / "ledger.sqlite3"
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        url = f"http://127.0.0.1:{settings.port}/cims/pay/callback/sandbox"
        self.deliver = deliver or _http_deliver(settings.payment_callback_url or url)
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS checkouts (reference TEXT PRIMARY KEY,"
                " merchant_reference TEXT UNIQUE, amount TEXT, method TEXT, status TEXT,"
                " created_at TEXT, paid_at TEXT)"
            )

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.ledger, timeout=10, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def create_checkout(self, *, merchant_reference: str, amount: Decimal, method: str) -> Checkout:
        """Open a checkout; the same merchant reference returns the same checkout."""
        reference = "SBX" + secrets.token_hex(8).upper()
        now = dt.datetime.now(dt.UTC).isoformat()
        with self._db() as db:
            db.execute(
                "INSERT OR IGNORE INTO checkouts VALUES (?, ?, ?, ?, 'pending', ?, NULL)",
                (reference, merchant_reference, str(amount), method, now),
            )
            (reference,) = db.execute(
                "SELECT reference FROM checkouts WHERE merchant_reference = ?",
                (merchant_reference,),
            ).fetchone()
        return Checkout(reference, f"sandbox://pay/{reference}")

    def _row(self, reference: str) -> tuple[str, str, str, str] | None:
        with self._db() as db:
            row = db.execute(
                "SELECT merchant_reference, amount, status, created_at FROM checkouts"
                " WHERE reference = ?",
                (reference,),
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def query(self, reference: str, *, now: dt.datetime | None = None) -> ProviderStatus | None:
        """The provider's view of a checkout (expired once unpaid past its window)."""
        row = self._row(reference)
        if row is None:
            return None
        merchant, amount, status, created = row
        now = now or dt.datetime.now(dt.UTC)
        window = dt.timedelta(minutes=CHECKOUT_MINUTES)
        if status == "pending" and dt.datetime.fromisoformat(created) + window < now:
            status = "expired"
        return ProviderStatus(reference, merchant, status, Decimal(amount))

    def pay(
        self,
        reference: str,
        outcome: Outcome = "success",
        *,
        duplicate: bool = False,
        delay_seconds: float = 0.0,
    ) -> None:
        """The payer confirms (or is declined) on the checkout page; the callback follows."""
        row = self._row(reference)
        if row is None or row[2] != "pending":
            return
        status = "succeeded" if outcome == "success" else "declined"
        with self._db() as db:
            db.execute(
                "UPDATE checkouts SET status = ?, paid_at = ? WHERE reference = ?"
                " AND status = 'pending'",
                (status, dt.datetime.now(dt.UTC).isoformat(), reference),
            )
        body = json.dumps(
            {
                "event_id": "EVT" + secrets.token_hex(8).upper(),
                "provider_reference": reference,
                "merchant_reference": row[0],
                "status": status,
                "amount": row[1],
            },
            sort_keys=True,
        ).encode()
        signature = sign(body)
        times = 2 if duplicate else 1

        def send() -> None:
            for _ in range(times):
                # An unreachable merchant misses the callback; reconciliation finds it.
                with contextlib.suppress(OSError):
                    self.deliver(body, signature)

        if delay_seconds > 0:
            timer = threading.Timer(delay_seconds, send)
            timer.daemon = True
            timer.start()
        else:
            send()

    def confirmed_since(self, since: dt.datetime) -> list[ProviderStatus]:
        """Every checkout the provider marked paid since ``since`` (for reconciliation)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT reference, merchant_reference, status, amount FROM checkouts"
                " WHERE status = 'succeeded' AND paid_at >= ?",
                (since.isoformat(),),
            ).fetchall()
        return [ProviderStatus(r[0], r[1], r[2], Decimal(r[3])) for r in rows]
