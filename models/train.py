"""Training: clinical baseline, logistic regression and gradient boosting, calibrated.

Validation is done twice: out-of-fold over patient groups (no patient on both sides)
and forward in time (fit on the earlier 80% of prediction times, test on the rest,
leaving out test patients seen in training). The same functions train the product's
models and the diabetes-130 benchmark: only the feature frame differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from models.evaluate import (
    by_group,
    calibration_points,
    distribution_reference,
    roc_points,
    score_metrics,
)

KINDS = ("lr", "hgb")
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class TrainSettings:
    """Knobs of a training run (tests use small ones)."""

    hgb_max_iter: int = 200
    hgb_learning_rate: float = 0.05
    hgb_max_leaf_nodes: int = 15
    hgb_min_samples_leaf: int = 20
    lr_c: float = 0.5
    n_splits: int = 5
    calibration: str = "sigmoid"
    calibration_cv: int = 3
    time_test_share: float = 0.2
    seed: int = 0
    threads: int = 1  # OpenMP on tiny folds is 25x slower than one thread on 2 shared cores
    kinds: tuple[str, ...] = field(default=KINDS)


def make_estimator(kind: str, settings: TrainSettings) -> BaseEstimator:
    """The uncalibrated estimator of ``kind`` (lr or hgb)."""
    if kind == "lr":
        pipeline: Pipeline = make_pipeline(
            StandardScaler(), LogisticRegression(C=settings.lr_c, max_iter=2000)
        )
        return pipeline
    if kind == "hgb":
        return HistGradientBoostingClassifier(
            max_iter=settings.hgb_max_iter,
            learning_rate=settings.hgb_learning_rate,
            max_leaf_nodes=settings.hgb_max_leaf_nodes,
            min_samples_leaf=settings.hgb_min_samples_leaf,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=settings.seed,
        )
    raise ValueError(f"unknown model kind {kind}")


def fit_calibrated(kind: str, x: pd.DataFrame, y: Any, settings: TrainSettings) -> Any:
    """Fit ``kind`` wrapped in CalibratedClassifierCV (probabilities that mean what they say)."""
    y = np.asarray(y, dtype=int)
    folds = max(2, min(settings.calibration_cv, int(np.bincount(y, minlength=2).min())))
    model = CalibratedClassifierCV(
        make_estimator(kind, settings), method=settings.calibration, cv=folds
    )
    model.fit(x.to_numpy(dtype=float), y)
    return model


def predict(model: Any, x: pd.DataFrame) -> np.ndarray:
    """Probability of the positive class."""
    return np.asarray(model.predict_proba(x.to_numpy(dtype=float))[:, 1])


def grouped_oof(
    kind: str, x: pd.DataFrame, y: Any, groups: Any, settings: TrainSettings
) -> np.ndarray:
    """Out-of-fold calibrated probabilities with folds split by patient."""
    y = np.asarray(y, dtype=int)
    out = np.full(len(y), np.nan)
    splits = max(2, min(settings.n_splits, int(np.bincount(y, minlength=2).min())))
    folder = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=settings.seed)
    for train_rows, test_rows in folder.split(x, y, groups):
        model = fit_calibrated(kind, x.iloc[train_rows], y[train_rows], settings)
        out[test_rows] = predict(model, x.iloc[test_rows])
    return out


def time_split(times: Any, groups: Any, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows before the time cut-off, and later rows of patients not seen before it."""
    t = pd.to_datetime(pd.Series(times), utc=True).dt.tz_localize(None).to_numpy("datetime64[s]")
    stamps = t.astype("int64")
    cut = np.quantile(stamps, 1 - share)
    train = stamps < cut
    seen = set(np.asarray(groups)[train].tolist())
    test = ~train & ~np.isin(np.asarray(groups), list(seen))
    return np.flatnonzero(train), np.flatnonzero(test)


@dataclass
class Validation:
    """Validation scores of every candidate, and the chosen kind's plots and groups."""

    metrics: dict[str, Any]
    oof: dict[str, np.ndarray]


def validate(
    frame: pd.DataFrame,
    features: Sequence[str],
    baseline: str,
    settings: TrainSettings,
    progress: Progress | None = None,
) -> Validation:
    """Grouped-CV and forward-in-time metrics of the baseline, lr and hgb."""
    say = progress or (lambda _f, _m: None)
    y = frame["label"].to_numpy(dtype=int)
    groups = frame["patient_id"].to_numpy()
    inputs = {"baseline": frame[[baseline]], **{k: frame[list(features)] for k in settings.kinds}}
    kinds = {"baseline": "lr", **{k: k for k in settings.kinds}}
    train_rows, test_rows = time_split(frame["index_time"], groups, settings.time_test_share)
    metrics: dict[str, Any] = {"grouped_cv": {}, "time_holdout": {}}
    oof: dict[str, np.ndarray] = {}
    steps = len(inputs) * 2
    for step, (name, x) in enumerate(inputs.items()):
        say(step / steps, f"grouped:{name}")
        oof[name] = grouped_oof(kinds[name], x, y, groups, settings)
        metrics["grouped_cv"][name] = score_metrics(y, oof[name])
        say((step + 0.5) / steps, f"time:{name}")
        ok = len(np.unique(y[train_rows])) == 2 and len(test_rows) > 0
        if ok:
            model = fit_calibrated(kinds[name], x.iloc[train_rows], y[train_rows], settings)
            metrics["time_holdout"][name] = score_metrics(
                y[test_rows], predict(model, x.iloc[test_rows])
            )
    metrics["grouped_cv"]["baseline_raw_auc"] = score_metrics(y, frame[baseline])["roc_auc"]
    return Validation(metrics, oof)


@dataclass
class TrainResult:
    """A fitted model and everything the registry keeps about it."""

    kind: str
    model: Any
    features: list[str]
    metrics: dict[str, Any]
    n_train: int
    n_validation: int
    window: tuple[Any, Any]


def train(
    frame: pd.DataFrame,
    features: Sequence[str],
    baseline: str,
    *,
    kind: str = "hgb",
    settings: TrainSettings | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Validate all candidates, then fit ``kind`` on every labelled row."""
    settings = settings or TrainSettings()
    with threadpool_limits(settings.threads):
        return _train(frame, features, baseline, kind, settings, progress)


def _train(
    frame: pd.DataFrame,
    features: Sequence[str],
    baseline: str,
    kind: str,
    settings: TrainSettings,
    progress: Progress | None,
) -> TrainResult:
    say = progress or (lambda _f, _m: None)
    labelled = frame.dropna(subset=["label"]).reset_index(drop=True)
    y = labelled["label"].to_numpy(dtype=int)
    if len(labelled) < 50 or len(np.unique(y)) < 2 or y.sum() < 10:
        raise ValueError("models.error.too_few_rows")
    if kind not in settings.kinds:
        settings = TrainSettings(**{**settings.__dict__, "kinds": (*settings.kinds, kind)})
    checked = validate(labelled, features, baseline, settings, lambda f, m: say(0.85 * f, m))
    say(0.85, "final")
    x = labelled[list(features)]
    model = fit_calibrated(kind, x, y, settings)
    scores = predict(model, x)
    chosen = checked.oof[kind]
    metrics = dict(checked.metrics)
    metrics.update(
        kind=kind,
        validation_kind="grouped_cv",
        calibration=calibration_points(y, chosen),
        calibration_baseline=calibration_points(y, checked.oof["baseline"]),
        roc=roc_points(y, chosen),
        roc_baseline=roc_points(y, checked.oof["baseline"]),
        by_group=by_group(y, chosen, labelled[["sex", "age_band"]]),
        reference={
            "features": {f: distribution_reference(labelled[f]) for f in features},
            "score": distribution_reference(scores),
        },
        explain={
            "mean": {f: float(labelled[f].mean()) for f in features},
            "std": {f: float(labelled[f].std(ddof=0) or 1.0) for f in features},
            "importance": _importance(model, labelled, list(features)),
        },
    )
    say(1.0, "done")
    times = labelled["index_time"]
    return TrainResult(
        kind=kind,
        model=model,
        features=list(features),
        metrics=clean_json(metrics),
        n_train=len(labelled),
        n_validation=len(labelled),
        window=(times.min(), times.max()),
    )


def _importance(model: Any, frame: pd.DataFrame, features: list[str]) -> dict[str, float]:
    """Global importance: mean |prediction change| when a feature is reset to its mean."""
    sample = frame[features].iloc[:2000]
    base = predict(model, sample)
    out = {}
    for feature in features:
        reset = sample.copy()
        reset[feature] = float(frame[feature].mean())
        out[feature] = float(np.mean(np.abs(base - predict(model, reset))))
    return out


def clean_json(value: Any) -> Any:
    """Nested metrics made JSON-safe: NaN and infinities become None, numpy types plain."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
