"""Field encryption: round trip, wrong key, tampering, misplacement, blind index, rotation,
and no plaintext of seeded IDs or phones in a pg_dump."""

from __future__ import annotations

import base64
import secrets
import subprocess
from collections.abc import Callable

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

import factories
from cims.config import get_settings
from cims.security.crypto import DecryptionError, load_cipher
from cims.security.keys import ENCRYPTED_COLUMNS, rotate_keys
from cims.security.models import DataKey


def test_round_trip_and_binding_to_the_cell(session: Session) -> None:
    cipher = load_cipher(session)
    blob = cipher.encrypt("11010519491231002X", table="patients", column="national_id", row_id=7)
    assert b"11010519491231002X" not in blob
    assert cipher.decrypt_text(blob, table="patients", column="national_id", row_id=7) == (
        "11010519491231002X"
    )
    again = cipher.encrypt("11010519491231002X", table="patients", column="national_id", row_id=7)
    assert again != blob  # a fresh nonce every time
    for where in ({"row_id": 8}, {"column": "phone"}, {"table": "users"}):
        place = {"table": "patients", "column": "national_id", "row_id": 7} | where
        with pytest.raises(DecryptionError):
            cipher.decrypt(blob, **place)  # type: ignore[arg-type]


def test_tampered_ciphertext_fails(session: Session) -> None:
    cipher = load_cipher(session)
    blob = bytearray(cipher.encrypt("13800138000", table="patients", column="phone", row_id=1))
    blob[-1] ^= 0x01
    with pytest.raises(DecryptionError):
        cipher.decrypt(bytes(blob), table="patients", column="phone", row_id=1)
    with pytest.raises(DecryptionError):
        cipher.decrypt(b"\x00\x01short", table="patients", column="phone", row_id=1)


def test_wrong_master_key_cannot_unwrap(session: Session) -> None:
    load_cipher(session)
    fresh_key = SecretStr(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    other = get_settings().model_copy(update={"master_key": fresh_key})
    with pytest.raises(DecryptionError):
        load_cipher(session, other)


def test_blind_index_is_keyed_normalised_and_separated(session: Session) -> None:
    cipher = load_cipher(session)
    a = cipher.blind_index("11010519491231002x", purpose="national_id")
    assert a == cipher.blind_index(" 110105 19491231002X ", purpose="national_id")
    assert a != cipher.blind_index("11010519491231002X", purpose="phone")
    assert len(a) == 16


def test_rotation_keeps_every_cell_readable(fresh_database: Callable[[str], str]) -> None:
    url = fresh_database("rotation")
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            from cims.security.bootstrap import ensure_roles_and_privileges

            ensure_roles_and_privileges(session)
            cipher = load_cipher(session)
            people = []
            for i in range(5):
                person = factories.patient(session)
                person.phone_enc = cipher.encrypt(
                    f"1380013800{i}", table="patients", column="phone", row_id=person.id
                )
                people.append((person.id, f"1380013800{i}"))
            factories.user(session, "doctor")
        report = rotate_keys(engine)
        assert report.new_version == 2 and report.retired_versions == [1]
        assert report.reencrypted["patients.phone_enc"] == 5
        assert report.reencrypted["users.totp_secret_enc"] == 1
        with Session(engine) as session:
            cipher = load_cipher(session)
            assert cipher.current_version == 2
            for person_id, phone in people:
                blob = session.scalar(
                    text("SELECT phone_enc FROM patients WHERE id = :id"), {"id": person_id}
                )
                assert blob[:2] == b"\x00\x02"
                got = cipher.decrypt_text(blob, table="patients", column="phone", row_id=person_id)
                assert got == phone
            assert session.scalar(select(DataKey.retired_at).where(DataKey.version == 1))
        # Resuming finds nothing left to do.
        assert sum(rotate_keys(engine, resume=True).reencrypted.values()) == 0
    finally:
        engine.dispose()


def test_every_encrypted_column_exists() -> None:
    from cims.schema import metadata

    for table, column, _ in ENCRYPTED_COLUMNS:
        assert column in metadata.tables[table].c


def test_pg_dump_holds_no_plaintext_ids_or_phones(fresh_database: Callable[[str], str]) -> None:
    from cims.demo.seed import seed_demo
    from cims.embedded import postgres_bin_dir

    url = fresh_database("plaintext")
    engine = create_engine(url)
    seed_demo(engine, patients=60, seed=3)
    with Session(engine) as session:
        cipher = load_cipher(session)
        ids, phones = [], []
        for pid, nid, phone in session.execute(
            text("SELECT id, national_id_enc, phone_enc FROM patients")
        ):
            if nid is not None:
                ids.append(
                    cipher.decrypt_text(nid, table="patients", column="national_id", row_id=pid)
                )
            if phone is not None:
                phones.append(
                    cipher.decrypt_text(phone, table="patients", column="phone", row_id=pid)
                )
    engine.dispose()
    assert len(ids) > 40 and len(phones) > 40
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    dump = subprocess.run(
        [str(postgres_bin_dir() / "pg_dump"), "--data-only", "--dbname", plain],
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8", "replace")
    assert "COPY public.patients" in dump
    leaked = [value for value in ids + phones if value in dump]
    assert leaked == []


def test_rewrap_moves_data_keys_to_a_new_master_key(session: Session) -> None:
    from cims.security.keys import rewrap_data_keys

    cipher = load_cipher(session)
    blob = cipher.encrypt("13800138000", table="patients", column="phone", row_id=3)
    old = get_settings().key_bytes("master_key")
    new = secrets.token_bytes(32)
    assert rewrap_data_keys(session, old_master=old, new_master=new) >= 1
    with pytest.raises(DecryptionError):
        load_cipher(session)  # the configured (old) master key no longer opens them
    moved = get_settings().model_copy(
        update={"master_key": SecretStr(base64.urlsafe_b64encode(new).decode())}
    )
    reopened = load_cipher(session, moved)
    assert reopened.decrypt_text(blob, table="patients", column="phone", row_id=3) == "13800138000"
