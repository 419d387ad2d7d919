"""External validation: the readmission model's code on the UCI diabetes-130 hospitals data.

Only the feature extraction differs from the product (this file maps the extract's columns
to the readmission feature frame, plus a few columns the extract has and CIMS does not);
training, calibration and metrics are ``models.train`` and ``models.evaluate``.

    python bench/readmission_diabetes130.py [--data PATH]          # 5-fold, grouped by patient
    python bench/readmission_diabetes130.py --train A.csv --test B.csv

Last line: {"bench": "readmission_diabetes130", "roc_auc", "pr_auc", "brier",
"lace_like_auc", "n_test"} for the target readmitted == "<30".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from cims.config import shared_data_dir  # noqa: E402
from models.evaluate import score_metrics  # noqa: E402
from models.features import lace_score  # noqa: E402
from models.train import TrainSettings, fit_calibrated, grouped_oof, predict  # noqa: E402

DEFAULT_DATA = shared_data_dir() / "diabetes130" / "diabetic_data_dev.csv"
SETTINGS = TrainSettings(
    hgb_max_iter=250,
    hgb_learning_rate=0.05,
    hgb_max_leaf_nodes=31,
    hgb_min_samples_leaf=50,
    n_splits=5,
    calibration="sigmoid",
    calibration_cv=5,
    kinds=("hgb",),
)
# ICD-9 Charlson groups (Deyo/Quan): (weight, lower, upper) over the numeric code.
CHARLSON_ICD9 = (
    (1, 410, 410.99), (1, 412, 412.99), (1, 428, 428.99), (1, 441, 441.99), (1, 443.9, 443.9),
    (1, 430, 438.99), (1, 290, 290.99), (1, 490, 505.99), (1, 710, 710.99), (1, 714, 714.99),
    (1, 725, 725.99), (1, 531, 534.99), (1, 571, 571.99), (1, 250, 250.39), (2, 250.4, 250.99),
    (2, 342, 342.99), (2, 344, 344.99), (2, 582, 586.99), (2, 588, 588.99), (2, 140, 195.99),
    (2, 200, 208.99), (6, 196, 199.99), (6, 42, 44.99),
)  # fmt: skip
DRUGS = ("metformin", "glipizide", "glyburide", "pioglitazone", "rosiglitazone", "insulin")


def _codes(df: pd.DataFrame) -> np.ndarray:
    """The three diagnosis codes as numbers (V and E codes and '?' as NaN)."""
    return np.column_stack(
        [pd.to_numeric(df[c], errors="coerce").to_numpy() for c in ("diag_1", "diag_2", "diag_3")]
    )


def _charlson(codes: np.ndarray) -> np.ndarray:
    score = np.zeros(len(codes))
    for weight, low, high in CHARLSON_ICD9:
        score += weight * ((codes >= low) & (codes <= high)).any(axis=1)
    return score


def _any(codes: np.ndarray, low: float, high: float) -> np.ndarray:
    return ((codes >= low) & (codes <= high)).any(axis=1).astype(float)


def feature_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Map the extract into the readmission feature frame (same names as models.features)."""
    codes = _codes(df)
    age_low = df["age"].str.extract(r"\[(\d+)-")[0].astype(float)
    out = pd.DataFrame(
        {
            "patient_id": df["patient_nbr"].to_numpy(),
            "index_time": pd.Timestamp("2000-01-01", tz="UTC")
            + pd.to_timedelta(df["encounter_id"].rank(method="first").to_numpy(), unit="m"),
            "age": age_low + 5,
            "male": (df["gender"] == "Male").astype(float),
            "length_of_stay": df["time_in_hospital"].astype(float),
            "emergency_admission": (df["admission_type_id"] == 1).astype(float),
            "charlson": _charlson(codes),
            "ed_visits_6m": df["number_emergency"].astype(float),
            "admissions_6m": df["number_inpatient"].astype(float),
            "admissions_12m": df["number_inpatient"].astype(float),
            "outpatient_visits_12m": df["number_outpatient"].astype(float),
            "heart_failure": _any(codes, 428, 428.99),
            "copd": _any(codes, 490, 496.99),
            "renal_disease": _any(codes, 585, 586.99),
            "diabetes": 1.0,
            "diagnoses_this_stay": df["number_diagnoses"].astype(float),
        }
    )
    # What the extract has beyond CIMS's record.
    extra = {
        "lab_procedures": df["num_lab_procedures"].astype(float),
        "procedures": df["num_procedures"].astype(float),
        "medications": df["num_medications"].astype(float),
        "a1c": df["A1Cresult"].map({">8": 2.0, ">7": 1.0, "Norm": 0.0}).fillna(-1.0),
        "glucose": df["max_glu_serum"].map({">300": 2.0, ">200": 1.0, "Norm": 0.0}).fillna(-1.0),
        "med_change": (df["change"] == "Ch").astype(float),
        "diabetes_med": (df["diabetesMed"] == "Yes").astype(float),
        # Earlier encounters of the same patient in the extract (ids grow with time).
        "prior_encounters": df.groupby("patient_nbr")["encounter_id"].rank(method="first") - 1,
        "primary_circulatory": _any(codes[:, :1], 390, 459.99),
        "primary_respiratory": _any(codes[:, :1], 460, 519.99),
        "primary_injury": _any(codes[:, :1], 800, 999.99),
    }
    for drug in DRUGS:
        extra[f"drug_{drug}"] = (
            df[drug].map({"No": 0.0, "Steady": 1.0, "Down": 2.0, "Up": 3.0}).fillna(0.0)
        )
    for column, values in (
        ("discharge_disposition_id", (1, 2, 3, 4, 5, 6, 7, 11, 13, 14, 18, 22, 23, 25)),
        ("admission_source_id", (1, 2, 4, 6, 7, 17)),
        ("admission_type_id", (1, 2, 3, 5, 6)),
    ):
        for value in values:
            extra[f"{column}_{value}"] = (df[column] == value).astype(float)
    for value in ("Caucasian", "AfricanAmerican", "Hispanic", "?"):
        extra[f"race_{value}"] = (df["race"] == value).astype(float)
    for value in (
        "InternalMedicine",
        "Emergency/Trauma",
        "Family/GeneralPractice",
        "Cardiology",
        "Surgery-General",
        "Nephrology",
        "?",
    ):
        extra[f"specialty_{value}"] = (df["medical_specialty"] == value).astype(float)
    out = pd.concat([out, pd.DataFrame(extra)], axis=1)
    out["lace"] = lace_score(
        out["length_of_stay"], out["emergency_admission"], out["charlson"], out["ed_visits_6m"]
    )
    out["label"] = (df["readmitted"] == "<30").astype(int)
    return out


def _load(path: Path) -> pd.DataFrame:
    return feature_frame(pd.read_csv(path, keep_default_na=False, low_memory=False))


def _columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("patient_id", "index_time", "label", "lace")]


def _run(args: argparse.Namespace) -> tuple[Any, Any, Any, list[str], str]:
    """Predictions for the evaluated rows: grouped out-of-fold, or fit-then-test."""
    if args.train:
        train_frame, test_frame = _load(args.train), _load(args.test)
        features = _columns(train_frame)
        model = fit_calibrated("hgb", train_frame[features], train_frame["label"], SETTINGS)
        p = predict(model, test_frame[features])
        return test_frame["label"], p, test_frame["lace"], features, "train_test"
    frame = _load(args.data or DEFAULT_DATA)
    features = _columns(frame)
    y = frame["label"]
    p = grouped_oof("hgb", frame[features], y, frame["patient_id"], SETTINGS)
    return y, p, frame["lace"], features, "grouped_5fold"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="One file: 5-fold CV grouped by patient.")
    parser.add_argument("--train", type=Path, help="Fit on this file ...")
    parser.add_argument("--test", type=Path, help="... and evaluate on this one.")
    args = parser.parse_args()
    if bool(args.train) != bool(args.test):
        parser.error("--train and --test go together")
    started = time.perf_counter()
    # One OpenMP thread: on a shared 2-core machine the default pool thrashes.
    with threadpool_limits(1):
        y, p, lace, features, mode = _run(args)
    metrics = score_metrics(y, p)
    lace_metrics = score_metrics(y, lace)
    print(
        f"mode={mode} rows={len(y)} positives={int(np.sum(y))} features={len(features)} "
        f"lift_top_decile={metrics['lift_top_decile']:.2f} "
        f"seconds={time.perf_counter() - started:.0f}",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "bench": "readmission_diabetes130",
                "roc_auc": round(metrics["roc_auc"], 4),
                "pr_auc": round(metrics["pr_auc"], 4),
                "brier": round(metrics["brier"], 5),
                "lace_like_auc": round(lace_metrics["roc_auc"], 4),
                "n_test": len(y),
            }
        )
    )


if __name__ == "__main__":
    main()
