"""Metrics of a risk score: discrimination, calibration, lift, by group, and drift (PSI)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

PSI_WARN = 0.2


def _safe(metric: Any, y: Any, p: Any) -> float:
    """A metric that needs both classes; NaN when a group has only one."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(metric(y, p))


def top_decile_lift(y: Any, p: Any) -> float:
    """Positive rate among the highest-scored 10% divided by the overall rate."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(y) == 0 or y.mean() == 0:
        return float("nan")
    top = np.argsort(-p, kind="stable")[: max(1, math.ceil(len(p) * 0.1))]
    return float(y[top].mean() / y.mean())


def score_metrics(y: Any, p: Any) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier score, top-decile lift, rows and positive rate."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    return {
        "roc_auc": _safe(roc_auc_score, y, p),
        "pr_auc": _safe(average_precision_score, y, p),
        "brier": float(brier_score_loss(y, np.clip(p, 0, 1))) if len(y) else float("nan"),
        "lift_top_decile": top_decile_lift(y, p),
        "n": len(y),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
    }


def calibration_points(y: Any, p: Any, bins: int = 10) -> dict[str, list[float]]:
    """Mean predicted against observed rate in quantile bins (for the calibration plot)."""
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), 0, 1)
    if len(np.unique(y)) < 2:
        return {"predicted": [], "observed": []}
    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="quantile")
    return {"predicted": predicted.round(4).tolist(), "observed": observed.round(4).tolist()}


def roc_points(y: Any, p: Any, points: int = 50) -> dict[str, list[float]]:
    """A thinned ROC curve (false and true positive rates) for plotting."""
    y = np.asarray(y, dtype=float)
    if len(np.unique(y)) < 2:
        return {"fpr": [], "tpr": []}
    fpr, tpr, _ = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(points, len(fpr))).astype(int))
    return {"fpr": fpr[keep].round(4).tolist(), "tpr": tpr[keep].round(4).tolist()}


def by_group(y: Any, p: Any, groups: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """The same metrics by each sensitive column (fairlearn MetricFrame), JSON-ready."""
    metrics = {
        "roc_auc": lambda yt, yp: _safe(roc_auc_score, yt, yp),
        "brier": lambda yt, yp: float(brier_score_loss(yt, np.clip(yp, 0, 1))),
        "mean_score": lambda yt, yp: float(np.mean(yp)),
        "positive_rate": lambda yt, yp: float(np.mean(yt)),
        "n": lambda yt, yp: float(len(yt)),
    }
    out: dict[str, list[dict[str, Any]]] = {}
    y_arr, p_arr = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    for column in groups.columns:
        frame = MetricFrame(
            metrics=metrics,
            y_true=y_arr,
            y_pred=p_arr,
            sensitive_features=groups[column].astype(str).to_numpy(),
        )
        table = frame.by_group.reset_index()
        table.columns = ["group", *table.columns[1:]]
        out[column] = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in table.to_dict("records")
        ]
    return out


def psi(expected: Any, actual: Any, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (quantile bins)."""
    ref = distribution_reference(expected, bins)
    return psi_against(ref, actual)


def distribution_reference(values: Any, bins: int = 10) -> dict[str, list[float]]:
    """Bin edges and shares of a training distribution, kept with the model version."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return {"edges": [], "shares": []}
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1))[1:-1])
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    return {"edges": edges.tolist(), "shares": (counts / counts.sum()).tolist()}


def psi_against(reference: dict[str, list[float]], actual: Any) -> float:
    """PSI of ``actual`` against a stored reference distribution."""
    x = np.asarray(actual, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0 or not reference["shares"]:
        return float("nan")
    edges = np.asarray(reference["edges"])
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    expected = np.clip(np.asarray(reference["shares"]), 1e-4, None)
    observed = np.clip(counts / counts.sum(), 1e-4, None)
    return float(np.sum((observed - expected) * np.log(observed / expected)))
