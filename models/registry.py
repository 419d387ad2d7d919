"""The model registry: train and register versions, promote and roll back, check drift.

Artifacts are skops files under ``var/models/`` (or ``CIMS_MODEL_DIR``); loading checks
the recorded SHA-256 and trusts only the types listed in ``TRUSTED_TYPES`` (never pickle,
never "trust everything").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skops.io as sio
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.config import PROJECT_ROOT
from cims.governance.models import ModelVersion
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires
from models.evaluate import PSI_WARN, psi_against
from models.features import SPECS, build_frame
from models.train import Progress, TrainSettings, predict, train

# The types skops does not trust by default that a calibrated LR or HGB model holds.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


class ModelError(ValueError):
    """A registry request that cannot be done; ``key`` is a message key for tr()."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


def model_dir() -> Path:
    """Where artifacts live."""
    path = Path(os.environ.get("CIMS_MODEL_DIR") or PROJECT_ROOT / "var" / "models")
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_artifact(model: Any, model_name: str) -> tuple[str, str]:
    """Write ``model`` as a skops file; returns (path, sha256)."""
    path = model_dir() / f"{model_name}-{uuid.uuid4().hex[:12]}.skops"
    sio.dump(model, path)
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def load_artifact(path: str, sha256: str | None) -> Any:
    """Read a skops artifact after checking its hash; only listed types are trusted."""
    data = Path(path).read_bytes()
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise ModelError("models.error.artifact_changed")
    return sio.loads(data, trusted=list(TRUSTED_TYPES))


_CACHE: dict[int, Any] = {}


def load_version(version: ModelVersion) -> Any:
    """The fitted model of a registered version (cached per process by version id)."""
    if version.id not in _CACHE:
        if not version.artifact_path:
            raise ModelError("models.error.no_artifact")
        _CACHE[version.id] = load_artifact(version.artifact_path, version.artifact_sha256)
    return _CACHE[version.id]


def _check_name(model_name: str) -> None:
    if model_name not in SPECS:
        raise ModelError("models.error.unknown_model")


@requires(Privilege.MANAGE_MODELS)
def train_model(
    *,
    session: Session,
    actor: Actor,
    model_name: str,
    kind: str = "hgb",
    as_of: dt.datetime | None = None,
    settings: TrainSettings | None = None,
    progress: Progress | None = None,
) -> ModelVersion:
    """Train ``model_name`` on everything labelled up to ``as_of``; register a candidate."""
    _check_name(model_name)
    spec = SPECS[model_name]
    frame = build_frame(session, model_name, as_of=as_of or utcnow())
    try:
        result = train(
            frame, spec.features, spec.baseline, kind=kind, settings=settings, progress=progress
        )
    except ValueError as error:
        raise ModelError(
            str(error) if str(error).startswith("models.") else "models.error.bad_kind"
        ) from None
    path, digest = save_artifact(result.model, model_name)
    latest = session.scalar(
        select(func.max(ModelVersion.version)).where(ModelVersion.model_name == model_name)
    )
    version = ModelVersion(
        model_name=model_name,
        version=(latest or 0) + 1,
        status="candidate",
        trained_by_id=actor.user_id,
        train_window_start=result.window[0].date(),
        train_window_end=result.window[1].date(),
        n_train=result.n_train,
        n_validation=result.n_validation,
        features=result.features,
        metrics=result.metrics,
        artifact_path=path,
        artifact_sha256=digest,
    )
    session.add(version)
    session.flush()
    _CACHE[version.id] = result.model
    audit.record(
        session,
        actor,
        "models.train",
        object_type="model_version",
        object_id=version.id,
        detail={
            "model": model_name,
            "version": version.version,
            "kind": kind,
            "rows": result.n_train,
        },
    )
    return version


@requires(Privilege.RUN_RISK_REPORTS)
def list_versions(
    *, session: Session, actor: Actor, model_name: str | None = None
) -> list[ModelVersion]:
    """Registered versions, newest first (optionally of one model)."""
    query = select(ModelVersion).order_by(ModelVersion.model_name, ModelVersion.version.desc())
    if model_name:
        query = query.where(ModelVersion.model_name == model_name)
    return list(session.scalars(query))


def active_version(session: Session, model_name: str) -> ModelVersion | None:
    """The version in use for ``model_name``, if any."""
    return session.scalar(
        select(ModelVersion).where(
            ModelVersion.model_name == model_name, ModelVersion.status == "active"
        )
    )


@requires(Privilege.MANAGE_MODELS)
def promote(*, session: Session, actor: Actor, version_id: int) -> ModelVersion:
    """Make a version the active one; the previous active version is retired."""
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise ModelError("models.error.unknown_version")
    current = active_version(session, version.model_name)
    if current is not None and current.id != version.id:
        current.status = "retired"
        session.flush()  # the one-active index must see the old one gone first
    version.status = "active"
    version.promoted_at = utcnow()
    version.promoted_by_id = actor.user_id
    session.flush()
    audit.record(
        session,
        actor,
        "models.promote",
        object_type="model_version",
        object_id=version.id,
        detail={"model": version.model_name, "version": version.version},
    )
    return version


@requires(Privilege.MANAGE_MODELS)
def rollback(*, session: Session, actor: Actor, model_name: str) -> ModelVersion:
    """Retire the active version and bring back the one promoted before it."""
    _check_name(model_name)
    current = active_version(session, model_name)
    if current is None or current.promoted_at is None:
        raise ModelError("models.error.nothing_to_roll_back")
    previous = session.scalar(
        select(ModelVersion)
        .where(
            ModelVersion.model_name == model_name,
            ModelVersion.id != current.id,
            ModelVersion.promoted_at.is_not(None),
            ModelVersion.promoted_at <= current.promoted_at,
        )
        .order_by(ModelVersion.promoted_at.desc(), ModelVersion.id.desc())
        .limit(1)
    )
    if previous is None:
        raise ModelError("models.error.nothing_to_roll_back")
    current.status = "retired"
    session.flush()
    previous.status = "active"
    session.flush()
    audit.record(
        session,
        actor,
        "models.rollback",
        object_type="model_version",
        object_id=previous.id,
        detail={"model": model_name, "from": current.version, "to": previous.version},
    )
    return previous


@dataclass(frozen=True)
class DriftReport:
    """PSI of each feature and of the score, recent rows against training."""

    version_id: int
    rows: int
    feature_psi: dict[str, float | None]
    score_psi: float | None
    warnings: tuple[str, ...]  # features (or "score") with PSI above the threshold


@requires(Privilege.MANAGE_MODELS)
def check_drift(
    *,
    session: Session,
    actor: Actor,
    version_id: int,
    as_of: dt.datetime | None = None,
    days: int = 90,
) -> DriftReport:
    """Compare the last ``days`` of subjects with the version's training distributions."""
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise ModelError("models.error.unknown_version")
    now = as_of or utcnow()
    since = now - dt.timedelta(days=days)
    if version.model_name == "no_show":
        frame = build_frame(
            session,
            version.model_name,
            as_of=now,
            statuses=("seen", "checked_in", "no_show", "booked"),
            scheduled_from=since,
        )
    else:
        frame = build_frame(session, version.model_name, as_of=now, since=since)
    reference = version.metrics.get("reference", {})
    feature_psi: dict[str, float | None] = {}
    score_psi: float | None = None
    if len(frame):
        for feature in version.features:
            ref = reference.get("features", {}).get(feature)
            value = psi_against(ref, frame[feature]) if ref else float("nan")
            feature_psi[feature] = None if value != value else round(value, 4)
        scores = predict(load_version(version), frame[version.features])
        value = psi_against(reference["score"], scores) if "score" in reference else float("nan")
        score_psi = None if value != value else round(value, 4)
    warnings = [f for f, v in feature_psi.items() if v is not None and v > PSI_WARN]
    if score_psi is not None and score_psi > PSI_WARN:
        warnings.append("score")
    audit.record(
        session,
        actor,
        "models.drift",
        object_type="model_version",
        object_id=version.id,
        detail={"rows": len(frame), "warnings": len(warnings)},
    )
    return DriftReport(version.id, len(frame), feature_psi, score_psi, tuple(warnings))
