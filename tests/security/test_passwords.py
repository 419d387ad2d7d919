"""Password policy and hashing."""

from __future__ import annotations

import pytest

from cims.security.passwords import hash_password, password_problems, verify_password


def test_policy_accepts_long_passphrases_including_chinese() -> None:
    assert password_problems("Correct-Horse-42x") == []
    assert password_problems("我的密码是一句很长的中文短语而且足够安全") == []
    assert password_problems("a much longer passphrase than twenty characters is fine") == []


def test_policy_rejects_short_common_simple_and_guessable() -> None:
    assert "password.too_short" in password_problems("Sh0rt!")
    assert "password.too_common" in password_problems("password1234")
    assert "password.too_simple" in password_problems("aaaaaaaaaaaaaab")
    assert "password.too_guessable" in password_problems("Sunshine2020!")
    assert "password.contains_username" in password_problems("zhangwei-2026-x", username="zhangwei")


def test_hash_verifies_only_the_right_password_and_long_chinese_counts_fully() -> None:
    long_a = "长" * 40 + "甲"
    long_b = "长" * 40 + "乙"  # the same first 72 bytes: bcrypt alone would confuse them
    hashed = hash_password(long_a, rounds=4)
    assert verify_password(long_a, hashed)
    assert not verify_password(long_b, hashed)
    assert not verify_password("wrong", hashed)


def test_unknown_user_spends_a_bcrypt_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import bcrypt

    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    assert not verify_password("Correct-Horse-42x", None)
    assert len(calls) == 1  # the same work as a wrong password, so timing reveals nothing
