"""Field encryption (AES-256-GCM, envelope keys) and keyed blind indexes.

Ciphertext layout: 2-byte key version || 12-byte random nonce || ciphertext+tag.
The associated data binds a value to its table, column and row, so a ciphertext
copied into another row or column fails to decrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import unicodedata
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cims.config import Settings, get_settings
from cims.security.models import DataKey

NONCE_BYTES = 12
BLIND_INDEX_BYTES = 16
_VERSION = struct.Struct(">H")


class DecryptionError(ValueError):
    """Raised when a ciphertext is tampered with, misplaced or under an unknown key."""


def _dek_aad(version: int) -> bytes:
    return f"cims-data-key:{version}".encode()


def wrap_data_key(master: bytes, version: int, dek: bytes) -> bytes:
    """Encrypt a data key under the master key (bound to its version)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(master[:32]).encrypt(nonce, dek, _dek_aad(version))


def unwrap_data_key(master: bytes, version: int, wrapped: bytes) -> bytes:
    """Decrypt a data key with the master key; DecryptionError if it is the wrong key."""
    try:
        return AESGCM(master[:32]).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _dek_aad(version)
        )
    except InvalidTag as exc:
        raise DecryptionError("data key does not unwrap under this master key") from exc


def normalise_for_index(value: str) -> str:
    """Canonical form for exact-match search: NFKC, trimmed, no inner spaces, upper case."""
    return "".join(unicodedata.normalize("NFKC", value).split()).upper()


@dataclass(frozen=True)
class FieldCipher:
    """Encrypts and decrypts sensitive fields; computes blind indexes."""

    keys: dict[int, AESGCM]
    current_version: int
    blind_key: bytes

    def encrypt(self, value: str | bytes, *, table: str, column: str, row_id: int) -> bytes:
        """Encrypt ``value`` for one cell under the current key."""
        data = value.encode() if isinstance(value, str) else value
        nonce = os.urandom(NONCE_BYTES)
        aad = f"{table}.{column}.{row_id}".encode()
        sealed = self.keys[self.current_version].encrypt(nonce, data, aad)
        return _VERSION.pack(self.current_version) + nonce + sealed

    def decrypt(self, blob: bytes, *, table: str, column: str, row_id: int) -> bytes:
        """Decrypt one cell; raises DecryptionError if it was altered or moved."""
        if len(blob) < _VERSION.size + NONCE_BYTES + 16:
            raise DecryptionError("ciphertext too short")
        (version,) = _VERSION.unpack_from(blob)
        key = self.keys.get(version)
        if key is None:
            raise DecryptionError(f"unknown key version {version}")
        nonce = blob[_VERSION.size : _VERSION.size + NONCE_BYTES]
        aad = f"{table}.{column}.{row_id}".encode()
        try:
            return key.decrypt(nonce, blob[_VERSION.size + NONCE_BYTES :], aad)
        except InvalidTag as exc:
            raise DecryptionError("ciphertext failed authentication") from exc

    def decrypt_text(self, blob: bytes | None, *, table: str, column: str, row_id: int) -> str:
        """Decrypt a text cell ('' for NULL)."""
        if blob is None:
            return ""
        return self.decrypt(blob, table=table, column=column, row_id=row_id).decode()

    def blind_index(self, value: str, *, purpose: str) -> bytes:
        """Truncated HMAC-SHA256 of the normalised value, separated by purpose."""
        message = purpose.encode() + b"\x00" + normalise_for_index(value).encode()
        return hmac.new(self.blind_key, message, hashlib.sha256).digest()[:BLIND_INDEX_BYTES]


def load_cipher(session: Session, settings: Settings | None = None) -> FieldCipher:
    """Unwrap the data keys with the master key, creating key version 1 on first use."""
    settings = settings or get_settings()
    master = settings.key_bytes("master_key")
    rows = session.execute(select(DataKey).order_by(DataKey.version)).scalars().all()
    if not rows:
        # Serialise first-key creation across processes.
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext('cims.data_keys'))"))
        rows = session.execute(select(DataKey).order_by(DataKey.version)).scalars().all()
        if not rows:
            dek = AESGCM.generate_key(bit_length=256)
            session.add(DataKey(version=1, wrapped_key=wrap_data_key(master, 1, dek)))
            session.flush()
            rows = session.execute(select(DataKey)).scalars().all()
    keys = {
        row.version: AESGCM(unwrap_data_key(master, row.version, row.wrapped_key)) for row in rows
    }
    live = [row.version for row in rows if row.retired_at is None] or [max(keys)]
    return FieldCipher(
        keys=keys, current_version=max(live), blind_key=settings.key_bytes("blind_index_key")
    )
