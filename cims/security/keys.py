"""Key rotation: a new data-encryption key, then every encrypted cell re-encrypted under it.

Rotation runs without downtime: the new key becomes current at once (new writes use it),
old keys stay available for reading, and cells are re-encrypted in small committed batches
found by their key-version prefix — so an interrupted rotation simply resumes. The old key
is retired (kept, never deleted: old backups need it) only when no cell uses it any more.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Engine, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.config import get_settings
from cims.schema import metadata
from cims.security.crypto import FieldCipher, load_cipher, unwrap_data_key, wrap_data_key
from cims.security.models import DataKey

# (table, ciphertext column, associated-data column name) of every encrypted cell.
ENCRYPTED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("patients", "national_id_enc", "national_id"),
    ("patients", "phone_enc", "phone"),
    ("patients", "address_enc", "address"),
    ("patients", "emergency_contact_enc", "emergency_contact"),
    ("patient_identifiers", "value_enc", "value"),
    ("clinical_notes", "body_enc", "body"),
    ("attachments", "content_enc", "content"),
    ("consultation_messages", "body_enc", "body"),
    ("users", "totp_secret_enc", "totp_secret"),
)


@dataclass
class RotationReport:
    """Which key is now current and how many cells each table re-encrypted."""

    new_version: int
    reencrypted: dict[str, int]
    retired_versions: list[int]


def add_data_key(session: Session) -> int:
    """Create a new data-encryption key (wrapped by the master key); it becomes current."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('cims.data_keys'))"))
    latest = session.scalar(select(func.max(DataKey.version))) or 0
    version = latest + 1
    master = get_settings().key_bytes("master_key")
    session.add(
        DataKey(
            version=version, wrapped_key=wrap_data_key(master, version, AESGCM.generate_key(256))
        )
    )
    session.flush()
    return version


def _stale(column: ColumnElement[bytes], version: int) -> ColumnElement[bool]:
    """Cells whose 2-byte key-version prefix is not ``version``."""
    return func.substring(column, 1, 2) != struct.pack(">H", version)


def reencrypt_column(
    engine: Engine, cipher: FieldCipher, table: str, column: str, aad: str, *, batch: int = 2000
) -> int:
    """Re-encrypt one column's stale cells in committed batches; returns cells rewritten."""
    target = metadata.tables[table]
    col = target.c[column]
    done = 0
    while True:
        with Session(engine) as session, session.begin():
            rows = session.execute(
                select(target.c.id, col)
                .where(col.is_not(None), _stale(col, cipher.current_version))
                .order_by(target.c.id)
                .limit(batch)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return done
            values = [
                {
                    "row_id": row_id,
                    "value": cipher.encrypt(
                        cipher.decrypt(blob, table=table, column=aad, row_id=row_id),
                        table=table,
                        column=aad,
                        row_id=row_id,
                    ),
                }
                for row_id, blob in rows
            ]
            session.connection().execute(
                update(target)
                .where(target.c.id == bindparam("row_id"))
                .values({column: bindparam("value")}),
                values,
            )
            done += len(values)


def rotate_keys(
    engine: Engine, *, resume: bool = False, progress: Callable[[str], None] | None = None
) -> RotationReport:
    """Make a new key current (unless resuming) and move every cell onto it."""
    say = progress or (lambda _m: None)
    with Session(engine) as session, session.begin():
        if resume:
            load_cipher(session)
            version = int(session.scalar(select(func.max(DataKey.version))) or 1)
        else:
            load_cipher(session)  # creates key 1 on a database that never had one
            version = add_data_key(session)
    say(f"current data key: version {version}")
    with Session(engine) as session:
        cipher = load_cipher(session)
    counts: dict[str, int] = {}
    for table, column, aad in ENCRYPTED_COLUMNS:
        counts[f"{table}.{column}"] = reencrypt_column(engine, cipher, table, column, aad)
        say(f"{table}.{column}: {counts[f'{table}.{column}']} cells re-encrypted")
    retired: list[int] = []
    with Session(engine) as session, session.begin():
        for key in session.scalars(
            select(DataKey).where(DataKey.version != version, DataKey.retired_at.is_(None))
        ):
            key.retired_at = utcnow()
            retired.append(key.version)
    return RotationReport(new_version=version, reencrypted=counts, retired_versions=retired)


def rewrap_data_keys(session: Session, *, old_master: bytes, new_master: bytes) -> int:
    """Re-wrap every data key under a new master key (one transaction; cells untouched).

    After it commits, the new master key must be the configured one: the old key no longer
    opens anything in the database (old backups still need the old key).
    """
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('cims.data_keys'))"))
    keys = session.scalars(select(DataKey).order_by(DataKey.version)).all()
    for key in keys:
        plain = unwrap_data_key(old_master, key.version, key.wrapped_key)
        key.wrapped_key = wrap_data_key(new_master, key.version, plain)
    session.flush()
    return len(keys)
