"""Risk models (data staff): train with progress, compare versions, plots, fairness, card."""

import pandas as pd
import streamlit as st

from cims.db import session_scope
from cims.governance.models import ModelVersion
from cims.security.rbac import Privilege
from models.features import SPECS
from models.plots import calibration_figure, roc_figure
from models.registry import ModelError, check_drift, list_versions, promote, rollback, train_model
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import when
from ui.i18n import tr

actor = page_guard(Privilege.MANAGE_MODELS)
st.title(tr("models.title"))


def _metric(version: ModelVersion, kind: str, name: str) -> float | None:
    value = version.metrics.get("grouped_cv", {}).get(kind, {}).get(name)
    return None if value is None else round(float(value), 3)


def _train(model_name: str) -> None:
    kinds = {k: tr(f"models.kind.{k}") for k in ("hgb", "lr")}
    kind = st.radio(tr("models.kind"), list(kinds), format_func=kinds.__getitem__, horizontal=True)
    if st.button(tr("models.train"), icon=":material/model_training:", key="models_train"):
        bar = st.progress(0.0, text=tr("models.training"))

        def advance(done: float, _step: str) -> None:
            bar.progress(min(done, 1.0), text=tr("models.training"))

        with session_scope() as db:
            version = train_model(
                session=db,
                actor=actor,
                model_name=model_name,
                kind=kind,
                progress=advance,
            )
            number = version.version
        bar.empty()
        st.success(tr("models.trained", version=number))


def _versions_table(versions: list[ModelVersion]) -> None:
    rows = [
        {
            tr("models.col.version"): v.version,
            tr("models.col.status"): tr(f"models.status.{v.status}"),
            tr("models.col.kind"): tr(f"models.kind.{v.metrics.get('kind', 'hgb')}"),
            tr("models.col.trained_at"): when(v.trained_at),
            tr("models.col.rows"): v.n_train,
            tr("models.col.auc"): _metric(v, v.metrics.get("kind", "hgb"), "roc_auc"),
            tr("models.col.baseline_auc"): _metric(v, "baseline", "roc_auc"),
            tr("models.col.pr_auc"): _metric(v, v.metrics.get("kind", "hgb"), "pr_auc"),
            tr("models.col.brier"): _metric(v, v.metrics.get("kind", "hgb"), "brier"),
            tr("models.col.lift"): _metric(v, v.metrics.get("kind", "hgb"), "lift_top_decile"),
        }
        for v in versions
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def _details(version: ModelVersion, model_name: str) -> None:
    metrics = version.metrics
    labels = {
        k: tr(f"models.plot.{k}")
        for k in ("ideal", "baseline", "model", "predicted", "observed", "chance", "fpr", "tpr")
    }
    left, right = st.columns(2)
    left.plotly_chart(calibration_figure(metrics, labels), key="models_calibration")
    right.plotly_chart(roc_figure(metrics, labels), key="models_roc")
    st.subheader(tr("models.fairness"))
    for column, groups in metrics.get("by_group", {}).items():
        st.caption(tr(f"models.group.{column}"))
        st.dataframe(pd.DataFrame(groups).round(3), hide_index=True)
    st.subheader(tr("models.card"))
    st.markdown(
        tr(
            "models.card_text",
            model=tr(f"models.name.{model_name}"),
            use=tr(f"models.use.{model_name}"),
            start=version.train_window_start,
            end=version.train_window_end,
            rows=version.n_train,
            features=", ".join(version.features),
            auc=_metric(version, metrics.get("kind", "hgb"), "roc_auc"),
            baseline=_metric(version, "baseline", "roc_auc"),
        )
    )
    buttons = st.columns(3)
    if version.status != "active" and buttons[0].button(
        tr("models.promote"), icon=":material/publish:"
    ):
        with session_scope() as db:
            promote(session=db, actor=actor, version_id=version.id)
        st.rerun()
    if buttons[1].button(tr("models.rollback"), icon=":material/undo:"):
        with session_scope() as db:
            rollback(session=db, actor=actor, model_name=model_name)
        st.rerun()
    if buttons[2].button(tr("models.drift"), icon=":material/query_stats:"):
        with session_scope() as db:
            report = check_drift(session=db, actor=actor, version_id=version.id)
        psi = {**report.feature_psi, tr("models.score"): report.score_psi}
        st.dataframe(pd.DataFrame({"PSI": psi}), key="models_drift_table")
        for name in report.warnings:
            st.warning(tr("models.drift_warning", feature=name))


def render() -> None:
    names = {name: tr(f"models.name.{name}") for name in SPECS}
    model_name = st.selectbox(tr("models.model"), list(names), format_func=names.__getitem__)
    try:
        _train(model_name)
        with session_scope() as db:
            versions = list_versions(session=db, actor=actor, model_name=model_name)
            db.expunge_all()
        if not versions:
            st.info(tr("models.no_versions"))
            return
        _versions_table(versions)
        labels = {v.id: f"v{v.version} · {tr(f'models.status.{v.status}')}" for v in versions}
        chosen = st.selectbox(tr("models.version"), list(labels), format_func=labels.__getitem__)
        _details(next(v for v in versions if v.id == chosen), model_name)
    except ModelError as problem:
        st.error(tr(problem.key))


run_safely(render)
