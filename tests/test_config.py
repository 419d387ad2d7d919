"""Settings: development keys are generated once; production refuses weak secrets."""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

import pytest

from cims.config import InsecureSettingsError, Settings, ensure_development_secrets


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def test_development_generates_keys_once_with_private_mode(tmp_path: Path) -> None:
    settings = ensure_development_secrets(Settings(env="development", data_dir=tmp_path))
    files = sorted(p.name for p in (tmp_path / "secrets").iterdir())
    assert files == ["blind_index_key", "cookie_key", "master_key"]
    for path in (tmp_path / "secrets").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ensure_development_secrets(Settings(env="development", data_dir=tmp_path))
    assert again.master_key is not None and settings.master_key is not None
    assert again.master_key.get_secret_value() == settings.master_key.get_secret_value()
    assert len(settings.key_bytes("master_key")) == 32


def test_secrets_print_masked(tmp_path: Path) -> None:
    settings = ensure_development_secrets(Settings(env="development", data_dir=tmp_path))
    assert settings.master_key is not None
    assert settings.master_key.get_secret_value() not in repr(settings)


def test_production_refuses_missing_keys(tmp_path: Path) -> None:
    with pytest.raises(InsecureSettingsError, match="CIMS_MASTER_KEY"):
        Settings(env="production", data_dir=tmp_path)


def test_production_refuses_the_generated_development_keys(tmp_path: Path) -> None:
    dev = ensure_development_secrets(Settings(env="development", data_dir=tmp_path))
    assert dev.master_key and dev.blind_index_key and dev.cookie_key
    with pytest.raises(InsecureSettingsError, match="development key"):
        Settings(
            env="production",
            data_dir=tmp_path,
            master_key=dev.master_key,
            blind_index_key=dev.blind_index_key,
            cookie_key=dev.cookie_key,
        )


def test_production_refuses_short_keys_and_cheap_bcrypt(tmp_path: Path) -> None:
    with pytest.raises(InsecureSettingsError, match="32 bytes"):
        Settings(
            env="production",
            data_dir=tmp_path,
            master_key="short",
            blind_index_key=_key(),
            cookie_key=_key(),
        )
    with pytest.raises(InsecureSettingsError, match="BCRYPT"):
        Settings(
            env="production",
            data_dir=tmp_path,
            master_key=_key(),
            blind_index_key=_key(),
            cookie_key=_key(),
            bcrypt_rounds=4,
        )


def test_production_accepts_its_own_strong_keys(tmp_path: Path) -> None:
    settings = Settings(
        env="production",
        data_dir=tmp_path,
        master_key=_key(),
        blind_index_key=_key(),
        cookie_key=_key(),
        bcrypt_rounds=12,
    )
    assert ensure_development_secrets(settings) is settings
    assert not (tmp_path / "secrets").exists()


def test_environment_variables_use_the_cims_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIMS_PORT", "8600")
    monkeypatch.setenv("CIMS_DATABASE_URL", "postgresql://u@h/db")
    settings = Settings()
    assert settings.port == 8600
    assert settings.database_url == "postgresql://u@h/db"
    assert os.environ["CIMS_ENV"] == "test"
