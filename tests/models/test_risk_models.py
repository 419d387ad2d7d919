"""Risk models on the demo hospital: no leakage, real signal, registry, skops, reasons, access."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from risk_helpers import FAST, demo_actor
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import factories
from cims.appointments.models import Appointment
from cims.base import utcnow
from cims.governance.models import ModelVersion, RiskScore
from cims.records.models import Diagnosis, Encounter
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied
from models import evaluate, explain, features, predict, registry
from models.train import predict as model_predict

FEATURE_COLUMNS = {
    "readmission_30d": list(features.READMISSION_FEATURES),
    "no_show": list(features.NO_SHOW_FEATURES),
}


def _department_id(session: Session) -> int:
    return int(session.scalar(select(Encounter.department_id).limit(1)) or 0)


def test_readmission_features_ignore_rows_after_discharge(risk_engine: Engine) -> None:
    with factories.rolled_back_session(risk_engine) as session:
        now = utcnow()
        before = features.readmission_frame(session, as_of=now)
        row = before.iloc[len(before) // 2]
        patient_id, discharged = int(row.patient_id), row.index_time.to_pydatetime()
        dept = _department_id(session)
        # Everything that happens after the discharge: an ED visit, a readmission, diagnoses.
        for kind, hours in (("emergency", 30), ("inpatient", 48)):
            later = Encounter(
                patient_id=patient_id,
                encounter_type=kind,
                department_id=dept,
                started_at=discharged + dt.timedelta(hours=hours),
                ended_at=discharged + dt.timedelta(hours=hours + 5),
                disposition="admitted" if kind == "emergency" else "home",
                status="closed",
            )
            session.add(later)
            session.flush()
            session.add(
                Diagnosis(
                    patient_id=patient_id,
                    encounter_id=later.id,
                    code="I50.9",
                    description="心力衰竭 / Heart failure",
                    diagnosed_at=later.started_at + dt.timedelta(minutes=5),
                )
            )
        session.flush()
        after = features.readmission_frame(session, as_of=now)
        same = after[after.subject_id == row.subject_id].iloc[0]
        columns = FEATURE_COLUMNS["readmission_30d"] + ["lace"]
        assert same[columns].tolist() == row[columns].tolist()
        assert same.label == 1.0  # the label does look ahead: that is what it is for


def test_no_show_features_ignore_rows_after_booking(risk_engine: Engine) -> None:
    with factories.rolled_back_session(risk_engine) as session:
        now = utcnow()
        before = features.no_show_frame(session, as_of=now)
        row = before.iloc[len(before) // 2]
        booked = row.index_time.to_pydatetime()
        first = session.get(Appointment, int(row.subject_id))
        assert first is not None
        for days in (1, 3):
            session.add(
                Appointment(
                    patient_id=int(row.patient_id),
                    department_id=first.department_id,
                    status="no_show",
                    channel="portal",
                    booked_at=booked - dt.timedelta(days=20) + dt.timedelta(days=days),
                    scheduled_at=booked + dt.timedelta(days=days),
                )
            )
        session.add(
            Diagnosis(
                patient_id=int(row.patient_id),
                code="E11.9",
                description="2型糖尿病 / Type 2 diabetes mellitus",
                diagnosed_at=booked + dt.timedelta(hours=1),
            )
        )
        session.flush()
        after = features.no_show_frame(session, as_of=now)
        same = after[after.subject_id == row.subject_id].iloc[0]
        columns = FEATURE_COLUMNS["no_show"]
        assert same[columns].tolist() == row[columns].tolist()


@pytest.mark.parametrize("model_name", ["readmission_30d", "no_show"])
def test_models_find_the_demo_signal_and_beat_the_baseline(
    risk_engine: Engine, trained: dict[str, int], model_name: str
) -> None:
    with Session(risk_engine) as session:
        version = session.get(ModelVersion, trained[model_name])
        assert version is not None and version.status == "active"
        cv = version.metrics["grouped_cv"]
        kind = version.metrics["kind"]
        assert cv[kind]["roc_auc"] > 0.62, cv
        assert cv[kind]["roc_auc"] > cv["baseline"]["roc_auc"] + 0.03, cv
        assert 0 < cv[kind]["brier"] < 0.2
        assert version.metrics["time_holdout"], "a forward-in-time check was run"
        groups = version.metrics["by_group"]
        assert {g["group"] for g in groups["sex"]} <= {"M", "F", "U"}
        assert len(groups["age_band"]) >= 3
        assert version.metrics["calibration"]["predicted"]
        assert version.n_train and version.train_window_start < version.train_window_end


def test_skops_round_trip_predicts_the_same_and_refuses_a_changed_file(
    risk_engine: Engine, trained: dict[str, int]
) -> None:
    with Session(risk_engine) as session:
        version = session.get(ModelVersion, trained["no_show"])
        assert version is not None and version.artifact_path
        frame = features.no_show_frame(session, as_of=utcnow()).head(200)
    fitted = registry.load_version(version)
    loaded = registry.load_artifact(version.artifact_path, version.artifact_sha256)
    x = frame[version.features]
    assert np.allclose(model_predict(fitted, x), model_predict(loaded, x))
    with pytest.raises(registry.ModelError):
        registry.load_artifact(version.artifact_path, hashlib.sha256(b"other").hexdigest())


def test_registry_promote_and_roll_back(risk_engine: Engine, trained: dict[str, int]) -> None:
    with factories.rolled_back_session(risk_engine) as session:
        analyst = demo_actor(session, "analyst")
        first = session.get(ModelVersion, trained["readmission_30d"])
        assert first is not None
        second = registry.train_model(
            session=session,
            actor=analyst,
            model_name="readmission_30d",
            kind="hgb",
            settings=FAST,
        )
        assert second.version > first.version and second.status == "candidate"
        registry.promote(session=session, actor=analyst, version_id=second.id)
        assert (first.status, second.status) == ("retired", "active")
        back = registry.rollback(session=session, actor=analyst, model_name="readmission_30d")
        assert back.id == first.id
        assert (first.status, second.status) == ("active", "retired")
        with pytest.raises(registry.ModelError):
            registry.rollback(session=session, actor=analyst, model_name="readmission_30d")
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("models.%"))
        ).all()
        assert {"models.train", "models.promote", "models.rollback"} <= set(actions)


def test_lr_explanations_add_up_to_the_logit_and_name_real_features(
    risk_engine: Engine, trained: dict[str, int]
) -> None:
    with Session(risk_engine) as session:
        version = session.get(ModelVersion, trained["readmission_30d"])
        assert version is not None and version.metrics["kind"] == "lr"
        frame = features.readmission_frame(session, as_of=utcnow()).head(100)
    model = registry.load_version(version)
    x = frame[version.features]
    matrix, intercept = explain.lr_contributions(model, x)
    logits = np.mean(
        [m.estimator.decision_function(x.to_numpy(float)) for m in model.calibrated_classifiers_],
        axis=0,
    )
    assert np.allclose(matrix.sum(axis=1) + intercept, logits)
    reasons = explain.top_factors(x, matrix)
    named = {f.feature for row in reasons for f in row}
    assert named and named <= set(version.features)
    assert all(f.contribution > 0 and f.zh and f.en for row in reasons for f in row)
    assert explain.describe("admissions_6m", 3.0) == (
        "近6个月住院 3 次",
        "3 admissions in the last 6 months",
    )


def test_hgb_reasons_point_where_the_score_moves(
    risk_engine: Engine, trained: dict[str, int]
) -> None:
    with Session(risk_engine) as session:
        version = session.get(ModelVersion, trained["no_show"])
        assert version is not None
        frame = features.no_show_frame(session, as_of=utcnow()).head(300)
        scored = predict.score_frame(version, frame)
    model = registry.load_version(version)
    top = max(scored, key=lambda s: s.score)
    assert top.factors, "a high score comes with reasons"
    reason = top.factors[0]
    row = frame[frame.subject_id == top.subject_id][version.features]
    reset = row.copy()
    reset[reason.feature] = version.metrics["explain"]["mean"][reason.feature]
    assert model_predict(model, reset)[0] < top.score


def test_risk_report_lists_the_patients_cims_score_does(
    risk_engine: Engine, risk_url: str, trained: dict[str, int]
) -> None:
    from cims.cli import app

    result = CliRunner().invoke(app, ["score", "no_show", "--cohort", "booked_next_30d"])
    assert result.exit_code == 0, result.output
    cli_patients = [json.loads(line)["patient_id"] for line in result.stdout.splitlines()]
    assert cli_patients
    with factories.rolled_back_session(risk_engine) as session:
        analyst = demo_actor(session, "analyst")
        report = predict.risk_report(session=session, actor=analyst, cohort="booked_next_30d")
        assert [r.patient_id for r in report.rows][: len(cli_patients)] == cli_patients
        assert report.rows[0].mrn and report.rows[0].name
        scores = [r.score for r in report.rows]
        assert scores == sorted(scores, reverse=True)
        stored = session.scalar(
            select(func.count(RiskScore.id)).where(RiskScore.model_version_id == trained["no_show"])
        )
        assert stored and stored >= 2 * len(report.rows)
        assert session.scalar(
            select(func.count(AuditEvent.id)).where(AuditEvent.action == "models.risk_report")
        )


def test_drift_psi_is_small_for_the_same_data_and_warns_on_a_shift(
    risk_engine: Engine, trained: dict[str, int]
) -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0, 1, 5000)
    assert evaluate.psi(base, rng.normal(0, 1, 5000)) < 0.05
    assert evaluate.psi(base, rng.normal(1, 1, 5000)) > evaluate.PSI_WARN
    with factories.rolled_back_session(risk_engine) as session:
        analyst = demo_actor(session, "analyst")
        report = registry.check_drift(
            session=session, actor=analyst, version_id=trained["readmission_30d"], days=365
        )
        assert report.rows > 0 and report.score_psi is not None
        assert set(report.feature_psi) == set(features.READMISSION_FEATURES)


def test_metrics_by_hand() -> None:
    y = pd.Series([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    p = pd.Series([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.9, 0.3])
    metrics = evaluate.score_metrics(y, p)
    assert metrics["roc_auc"] == 1.0 and metrics["lift_top_decile"] == 5.0
    assert features.lace_score([5], [1], [2], [1]).tolist() == [4 + 3 + 2 + 1]
    assert features.charlson_index(["I50.9", "E11.9", "N18.9", "C78.1", "C50.1"]) == 1 + 1 + 2 + 6


@pytest.mark.parametrize("role", ["registrar", "finance", "doctor", "manager"])
def test_every_model_service_refuses_roles_without_the_privilege(
    risk_engine: Engine, trained: dict[str, int], role: str
) -> None:
    calls = _service_calls(trained)
    with factories.rolled_back_session(risk_engine) as session:
        other = factories.actor(session, role)
        for name, call in calls.items():
            with pytest.raises(AccessDenied):
                call(session, other)
            assert name


def test_every_model_service_serves_data_staff(
    risk_engine: Engine, trained: dict[str, int]
) -> None:
    with factories.rolled_back_session(risk_engine) as session:
        staff = factories.actor(session, "data_staff")
        for call in _service_calls(trained).values():
            call(session, staff)


def _service_calls(trained: dict[str, int]) -> dict[str, Any]:
    return {
        "train_model": lambda s, a: registry.train_model(
            session=s, actor=a, model_name="no_show", kind="lr", settings=FAST
        ),
        "list_versions": lambda s, a: registry.list_versions(session=s, actor=a),
        "promote": lambda s, a: registry.promote(session=s, actor=a, version_id=trained["no_show"]),
        "rollback_or_refusal": lambda s, a: _rollback_allowed(s, a),
        "check_drift": lambda s, a: registry.check_drift(
            session=s, actor=a, version_id=trained["no_show"]
        ),
        "score_cohort": lambda s, a: predict.score_cohort(
            session=s, actor=a, cohort="booked_next_7d"
        ),
        "risk_report": lambda s, a: predict.risk_report(
            session=s, actor=a, cohort="discharged_30d"
        ),
    }


def _rollback_allowed(session: Session, actor: Any) -> None:
    """A permitted rollback with nothing to go back to is a ModelError, not a refusal."""
    with contextlib.suppress(registry.ModelError):
        registry.rollback(session=session, actor=actor, model_name="no_show")


def test_the_doctors_summary_reads_the_stored_score_with_reasons(
    risk_engine: Engine, trained: dict[str, int]
) -> None:
    from cims.records.summary import _risks

    with factories.rolled_back_session(risk_engine) as session:
        analyst = demo_actor(session, "analyst")
        _, scored = predict.score_cohort(session=session, actor=analyst, cohort="booked_next_30d")
        once = [s for s in scored if sum(o.patient_id == s.patient_id for o in scored) == 1]
        top = once[0]
        [item] = [r for r in _risks(session, top.patient_id) if r.model_name == "no_show"]
        assert item.version >= 1 and abs(item.score - top.score) < 1e-4
        assert [f["en"] for f in item.factors] == [f.en for f in top.factors]


def test_exports_carry_the_report_and_stop_during_a_lockdown(
    risk_engine: Engine, trained: dict[str, int]
) -> None:
    from cims.security.incidents import LockdownActive, start_lockdown
    from models.export import export_report

    with factories.rolled_back_session(risk_engine) as session:
        analyst = demo_actor(session, "analyst")
        report = predict.risk_report(session=session, actor=analyst, cohort="booked_next_30d")
        text = export_report(
            session=session, actor=analyst, report=report, fmt="csv", language="zh"
        ).decode("utf-8-sig")
        assert "病历号" in text and report.rows[0].mrn in text
        pdf = export_report(session=session, actor=analyst, report=report, fmt="pdf", language="en")
        assert pdf.startswith(b"%PDF")
        start_lockdown(session=session, actor=demo_actor(session, "admin"), reason="test")
        with pytest.raises(LockdownActive):
            export_report(session=session, actor=analyst, report=report, fmt="xlsx", language="en")
