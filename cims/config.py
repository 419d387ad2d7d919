"""One typed settings object for the whole system (environment variables ``CIMS_*``)."""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Keys that development generates once into var/secrets/ and production must be given.
SECRET_KEYS = ("master_key", "blind_index_key", "cookie_key")


class InsecureSettingsError(RuntimeError):
    """Raised when production is started with missing or development secrets."""


class Settings(BaseSettings):
    """Runtime configuration; secrets are ``SecretStr`` so they print masked."""

    model_config = SettingsConfigDict(env_prefix="CIMS_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    database_url: str | None = None
    data_dir: Path = PROJECT_ROOT / "var"
    port: int = 8501
    default_language: Literal["zh", "en"] = "zh"
    timezone: str = "Asia/Shanghai"

    master_key: SecretStr | None = None
    blind_index_key: SecretStr | None = None
    cookie_key: SecretStr | None = None
    backup_dir: Path | None = None
    backup_public_key: Path | None = None
    backup_private_key: Path | None = None
    backup_at: dt.time = dt.time(2, 0)  # hospital-local time of the daily backup
    backup_keep_daily: int = 7  # retention: newest backup of each of the last N days,
    backup_keep_weekly: int = 4  # ... of each of the last N ISO weeks,
    backup_keep_monthly: int = 12  # ... and of each of the last N months

    bcrypt_rounds: int = 12
    login_sleep_seconds: float = 0.7
    session_idle_minutes: float = 15  # a fraction is allowed (tests use seconds)
    session_absolute_hours: int = 12
    lockout_failures: int = 5
    lockout_minutes: int = 15
    care_window_days: int = 90
    break_glass_minutes: int = 60
    message_codes: Literal["outbox", "off"] = "outbox"
    attachment_max_mb: int = 10
    # Declared content types accepted for attachments (the bytes must match, too).
    attachment_types: tuple[str, ...] = ("application/pdf", "image/png", "image/jpeg", "text/plain")
    dormant_days: int = 90  # accounts without a sign-in for this long are disabled daily
    daily_jobs_at: dt.time = dt.time(3, 0)  # hospital-local time of the daily housekeeping
    booking_cutoff_hours: int = 2  # patients cancel or move a booking up to this before it
    no_show_grace_minutes: int = 30  # a booking not checked in this long after its slot ends
    slot_horizon_days: int = 28  # slots are generated this far ahead from the schedules
    # Electronic payment: the provider's callback signing key (the sandbox derives one when
    # unset) and where the provider posts callbacks (default: this server's own route).
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    payment_webhook_key: SecretStr | None = None
    payment_callback_url: str | None = None
    # HL7 lab results: the folder the scheduler watches (default var/hl7/in under data_dir;
    # test runs use only one they set) and the account its imports run as.
    hl7_drop_dir: Path | None = None
    hl7_drop_as: str = "admin"

    @model_validator(mode="after")
    def _refuse_weak_production(self) -> Settings:
        if self.env != "production":
            return self
        missing = [name for name in SECRET_KEYS if getattr(self, name) is None]
        if missing:
            raise InsecureSettingsError(
                "production refuses to start without: "
                + ", ".join(f"CIMS_{name.upper()}" for name in missing)
            )
        dev_dir = self.secrets_dir
        for name in SECRET_KEYS:
            value = getattr(self, name).get_secret_value()
            if len(_decode_key(value)) < 32:
                raise InsecureSettingsError(f"CIMS_{name.upper()} must hold at least 32 bytes")
            dev_file = dev_dir / name
            if dev_file.exists() and dev_file.read_text().strip() == value:
                raise InsecureSettingsError(
                    f"CIMS_{name.upper()} is the generated development key; "
                    "production needs its own"
                )
        if self.bcrypt_rounds < 12:
            raise InsecureSettingsError("production needs CIMS_BCRYPT_ROUNDS of at least 12")
        return self

    @property
    def secrets_dir(self) -> Path:
        """Folder where development keys are generated (never used in production)."""
        return self.data_dir / "secrets"

    @property
    def pgdata_dir(self) -> Path:
        """Data directory of the embedded PostgreSQL."""
        return self.data_dir / "pgdata"

    def key_bytes(self, name: str) -> bytes:
        """Raw bytes of a configured secret key (base64 or hex or plain text)."""
        value: SecretStr | None = getattr(self, name)
        if value is None:
            raise InsecureSettingsError(f"CIMS_{name.upper()} is not configured")
        return _decode_key(value.get_secret_value())


def _decode_key(text: str) -> bytes:
    """Interpret a key written as url-safe base64, falling back to its UTF-8 bytes."""
    try:
        raw = base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))
        if len(raw) >= 32:
            return raw
    except ValueError:
        pass
    return text.encode()


def ensure_development_secrets(settings: Settings) -> Settings:
    """Fill missing keys from var/secrets/, generating each once (mode 0600)."""
    if settings.env == "production":
        return settings
    folder = settings.secrets_dir
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    updates: dict[str, SecretStr] = {}
    for name in SECRET_KEYS:
        if getattr(settings, name) is not None:
            continue
        path = folder / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        updates[name] = SecretStr(path.read_text().strip())
    return settings.model_copy(update=updates)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, with development keys filled in."""
    return ensure_development_secrets(Settings())


def shared_data_dir() -> Path:
    """The shared sample data (Synthea, FHIR, Diabetes 130) used by tests and benchmarks.

    ``CIMS_SHARED_DATA`` if set, else ``../shared/data`` beside the project, else the
    workplace's ``/work/shared/data`` (a clone elsewhere still finds it).
    """
    given = os.environ.get("CIMS_SHARED_DATA")
    candidates = [Path(given)] if given else []
    candidates += [PROJECT_ROOT.parent / "shared" / "data", Path("/work/shared/data")]
    return next((path for path in candidates if path.exists()), candidates[0])
