"""The encrypted backup container: AES-256-GCM chunks under an RSA-OAEP-wrapped data key.

Layout::

    MAGIC (8) | header length (4, big-endian) | header JSON | record* | final record

A record is ``length (4) | AES-GCM ciphertext+tag`` of up to ``CHUNK_BYTES`` of dump. The
nonce of record ``i`` is ``i`` (8 bytes) followed by a final flag (4 bytes), and the
associated data is ``sha256(header) || nonce``: a record moved, dropped, repeated or
altered, a header edited, or a file cut short (its last record was not sealed as final)
all fail authentication. The final record's plaintext is the content manifest (JSON),
so the file itself says what the database held; the data key is fresh for every file
and only the private key unwraps it.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cims.config import Settings

MAGIC = b"CIMSBK01"
CHUNK_BYTES = 1 << 20
_LENGTH = struct.Struct(">I")
_NONCE = struct.Struct(">QI")
_MAX_HEADER = 1 << 16
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class BackupError(RuntimeError):
    """A backup could not be made, read, verified or restored (message says why)."""


class BackupKeyError(BackupError):
    """The key material is missing or does not open this backup."""


@dataclass(frozen=True)
class BackupKeys:
    """Where the RSA key pair lives; the private key is optional (backup-only hosts)."""

    public_key: Path
    private_key: Path | None


def backup_keys(settings: Settings) -> BackupKeys:
    """The configured key pair; in development generated once into var/secrets/ (0600)."""
    if settings.backup_public_key is not None:
        return BackupKeys(settings.backup_public_key, settings.backup_private_key)
    if settings.env == "production":
        raise BackupKeyError(
            "production needs CIMS_BACKUP_PUBLIC_KEY (and CIMS_BACKUP_PRIVATE_KEY where "
            "restores and restore drills run); see docs/operations-backup.md"
        )
    folder = settings.secrets_dir
    folder.mkdir(parents=True, exist_ok=True)
    public, private = folder / "backup_public.pem", folder / "backup_private.pem"
    with (folder / ".backup_keys.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two first backups at once make one pair
        if not (public.exists() and private.exists()):
            generate_key_pair(public, private)
    return BackupKeys(public, settings.backup_private_key or private)


def generate_key_pair(public_path: Path, private_path: Path, bits: int = 3072) -> None:
    """Write a new RSA key pair as PEM files (private one mode 0600)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path, data, mode in ((private_path, private_pem, 0o600), (public_path, public_pem, 0o644)):
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)


def _public_key(path: Path) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise BackupKeyError(f"cannot read the backup public key {path}: {error}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise BackupKeyError(f"{path} is not an RSA public key")
    return key


def _private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise BackupKeyError(f"cannot read the backup private key {path}: {error}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BackupKeyError(f"{path} is not an RSA private key")
    return key


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """Short fingerprint of a public key (sha256 of its DER), to name the key a file needs."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


def _aad(header_digest: bytes, nonce: bytes) -> bytes:
    return header_digest + nonce


class EncryptingWriter:
    """Writes the container to an open binary file, chunk by chunk, hashing what it writes."""

    def __init__(self, out: IO[bytes], public_key_path: Path, info: dict[str, Any]) -> None:
        public_key = _public_key(public_key_path)
        data_key = AESGCM.generate_key(bit_length=256)
        header = {
            **info,
            "format": 1,
            "cipher": "AES-256-GCM",
            "chunk_bytes": CHUNK_BYTES,
            "key_id": key_id(public_key),
            "wrapped_key": base64.b64encode(public_key.encrypt(data_key, _OAEP)).decode(),
        }
        header_bytes = json.dumps(header, sort_keys=True).encode()
        self._out = out
        self._aes = AESGCM(data_key)
        self._digest = hashlib.sha256(header_bytes).digest()
        self._index = 0
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._emit(MAGIC + _LENGTH.pack(len(header_bytes)) + header_bytes)

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self.sha256.update(data)
        self.size += len(data)

    def _record(self, plaintext: bytes, final: bool) -> None:
        nonce = _NONCE.pack(self._index, int(final))
        sealed = self._aes.encrypt(nonce, plaintext, _aad(self._digest, nonce))
        self._emit(_LENGTH.pack(len(sealed)) + sealed)
        self._index += 1

    def write_chunk(self, data: bytes) -> None:
        """Encrypt and append one chunk of dump (at most CHUNK_BYTES)."""
        self._record(data, final=False)

    def finish(self, manifest: dict[str, Any]) -> None:
        """Seal the content manifest as the final record: the file is complete after this."""
        self._record(json.dumps(manifest, sort_keys=True).encode(), final=True)


def read_header(handle: IO[bytes]) -> tuple[dict[str, Any], bytes]:
    """The header of an open container and its sha256 (the records' associated data)."""
    magic = handle.read(len(MAGIC))
    if magic != MAGIC:
        raise BackupError("not a CIMS backup file (bad magic)")
    raw_length = handle.read(_LENGTH.size)
    if len(raw_length) != _LENGTH.size:
        raise BackupError("backup file truncated in its header")
    (length,) = _LENGTH.unpack(raw_length)
    header_bytes = handle.read(length)
    if length > _MAX_HEADER or len(header_bytes) != length:
        raise BackupError("backup file truncated or corrupt in its header")
    try:
        header = json.loads(header_bytes)
    except ValueError:
        raise BackupError("backup header is not valid JSON") from None
    return header, hashlib.sha256(header_bytes).digest()


def _unwrap(header: dict[str, Any], private_key_path: Path) -> AESGCM:
    key = _private_key(private_key_path)
    if key_id(key.public_key()) != header.get("key_id"):
        raise BackupKeyError(
            f"this backup was made for key {header.get('key_id')}, "
            f"not for the private key {private_key_path} (key {key_id(key.public_key())})"
        )
    try:
        return AESGCM(key.decrypt(base64.b64decode(header["wrapped_key"]), _OAEP))
    except (ValueError, KeyError) as error:
        raise BackupKeyError(f"the private key does not unwrap this backup: {error}") from None


def _records(handle: IO[bytes]) -> Iterator[tuple[int, bytes, bool]]:
    """(index, sealed record, is last in file) for every record, reading one ahead."""

    def read_one() -> bytes | None:
        raw = handle.read(_LENGTH.size)
        if not raw:
            return None
        if len(raw) != _LENGTH.size:
            raise BackupError("backup file truncated inside a record length")
        (length,) = _LENGTH.unpack(raw)
        if length > CHUNK_BYTES + 64:
            raise BackupError("backup record length is corrupt")
        sealed = handle.read(length)
        if len(sealed) != length:
            raise BackupError("backup file truncated inside a record")
        return sealed

    index, current = 0, read_one()
    while current is not None:
        following = read_one()
        yield index, current, following is None
        index, current = index + 1, following


def decrypt_stream(handle: IO[bytes], private_key_path: Path) -> Iterator[bytes | dict[str, Any]]:
    """Yield each decrypted dump chunk, then the manifest dict; raises on any tampering.

    Every record is authenticated before its plaintext is yielded.
    """
    header, digest = read_header(handle)
    aes = _unwrap(header, private_key_path)
    saw_final = False
    for index, sealed, last in _records(handle):
        nonce = _NONCE.pack(index, int(last))
        try:
            plaintext = aes.decrypt(nonce, sealed, _aad(digest, nonce))
        except InvalidTag:
            where = "the final record" if last else f"record {index}"
            raise BackupError(
                f"{where} fails authentication: the file is corrupt, truncated or altered"
            ) from None
        if last:
            saw_final = True
            try:
                yield json.loads(plaintext)
            except ValueError:
                raise BackupError("the sealed manifest is not valid JSON") from None
        else:
            yield plaintext
    if not saw_final:
        raise BackupError("backup file has no final record: it is incomplete")


def file_sha256(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()
