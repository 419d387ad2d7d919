"""Plotly figures of a model version's validation (pure functions, no streamlit)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go


def calibration_figure(metrics: dict[str, Any], labels: dict[str, str]) -> go.Figure:
    """Predicted against observed risk, model and baseline, with the diagonal."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name=labels["ideal"], line={"dash": "dot"})
    for key, name in (
        ("calibration_baseline", labels["baseline"]),
        ("calibration", labels["model"]),
    ):
        points = metrics.get(key) or {}
        fig.add_scatter(
            x=points.get("predicted", []),
            y=points.get("observed", []),
            mode="lines+markers",
            name=name,
        )
    top = max(
        [
            0.05,
            *(metrics.get("calibration") or {}).get("observed", []),
            *(metrics.get("calibration") or {}).get("predicted", []),
        ]
    )
    fig.update_layout(
        xaxis_title=labels["predicted"], yaxis_title=labels["observed"], height=360,
        xaxis_range=[0, min(1, top * 1.1)], yaxis_range=[0, min(1, top * 1.1)],
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )  # fmt: skip
    return fig


def roc_figure(metrics: dict[str, Any], labels: dict[str, str]) -> go.Figure:
    """ROC curves of the model and the clinical baseline."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name=labels["chance"], line={"dash": "dot"})
    for key, name in (("roc_baseline", labels["baseline"]), ("roc", labels["model"])):
        points = metrics.get(key) or {}
        fig.add_scatter(x=points.get("fpr", []), y=points.get("tpr", []), mode="lines", name=name)
    fig.update_layout(
        xaxis_title=labels["fpr"], yaxis_title=labels["tpr"], height=360,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )  # fmt: skip
    return fig
