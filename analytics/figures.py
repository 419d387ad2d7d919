"""Plotly figures as pure functions: data in, figure out (no Streamlit, no database)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from cims.clock import to_local
from cims.i18n import t
from cims.records.summary import ABNORMAL, EncounterItem, LabSeries

TYPE_COLOURS = {"outpatient": "#1f77b4", "inpatient": "#d62728", "emergency": "#ff7f0e"}
NORMAL_COLOUR = "#1f77b4"
ABNORMAL_COLOUR = "#d62728"
BAND_COLOUR = "rgba(44, 160, 44, 0.12)"


def _type_label(encounter_type: str, language: str) -> str:
    labels = {
        "outpatient": t("summary.type_outpatient", language),
        "inpatient": t("summary.type_inpatient", language),
        "emergency": t("summary.type_emergency", language),
    }
    return labels.get(encounter_type, encounter_type)


def encounter_timeline(encounters: Sequence[EncounterItem], language: str) -> go.Figure:
    """Encounters over time: x = start date, y = department, colour = encounter type."""
    figure = go.Figure()
    for encounter_type, colour in TYPE_COLOURS.items():
        rows = [e for e in encounters if e.encounter_type == encounter_type]
        if not rows:
            continue
        figure.add_trace(
            go.Scatter(
                x=[to_local(e.started_at) for e in rows],
                y=[e.department_zh if language == "zh" else e.department_en for e in rows],
                mode="markers",
                name=_type_label(encounter_type, language),
                marker={"color": colour, "size": 10, "symbol": "circle"},
                text=[e.diagnosis or e.chief_complaint or "" for e in rows],
                customdata=[e.id for e in rows],
                hovertemplate="%{x|%Y-%m-%d}<br>%{y}<br>%{text}<extra>%{customdata}</extra>",
            )
        )
    departments = len({e.department_en for e in encounters})
    figure.update_layout(
        height=max(180, 60 + 36 * departments),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis_title=t("summary.fig_date", language),
        yaxis_title=t("summary.fig_department", language),
        legend={"orientation": "h", "y": -0.25},
    )
    return figure


def lab_sparkline(series: LabSeries) -> go.Figure:
    """A small line of one lab's results with its reference band and abnormal points in red."""
    x = [to_local(p.observed_at) for p in series.points]
    y = [p.value for p in series.points]
    colours = [ABNORMAL_COLOUR if p.flag in ABNORMAL else NORMAL_COLOUR for p in series.points]
    figure = go.Figure(
        go.Scatter(
            x=x,
            y=y,
            mode="lines+markers",
            line={"color": NORMAL_COLOUR, "width": 1.5},
            marker={"color": colours, "size": 6},
            hovertemplate="%{x|%Y-%m-%d}: %{y}<extra></extra>",
            showlegend=False,
        )
    )
    if series.ref_low is not None or series.ref_high is not None:
        # An open-ended range (e.g. LDL "< 3.4") is drawn to the edge of the data.
        low = series.ref_low if series.ref_low is not None else min([*y, 0.0])
        high = series.ref_high if series.ref_high is not None else max(y) * 1.1
        figure.add_hrect(y0=low, y1=high, fillcolor=BAND_COLOUR, line_width=0, layer="below")
    figure.update_layout(
        height=120,
        margin={"l": 0, "r": 0, "t": 4, "b": 0},
        xaxis={"visible": True, "showgrid": False, "tickfont": {"size": 9}},
        yaxis={"showgrid": False, "tickfont": {"size": 9}},
    )
    return figure
