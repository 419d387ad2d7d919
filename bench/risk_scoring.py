"""Scoring speed: one patient (p50/p99, with and without one OpenMP thread) and batch rows/s.

Seeds a small demo hospital in a database of its own, trains the no-show model
(HistGradientBoosting) and the readmission model, then times:
- single: one appointment's features from the database, score and reasons (the page's wait);
- model_only: predict_proba of one row, under one thread and under the default pool;
- batch: a cohort replicated to ``--rows`` rows, scored with reasons in batches.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd
from _common import fresh_database
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from threadpoolctl import threadpool_limits

from cims.base import utcnow
from cims.demo.seed import seed_demo
from cims.security.accounts import build_actor
from cims.security.models import User
from models.features import no_show_frame
from models.predict import score_frame
from models.registry import load_version, train_model
from models.train import TrainSettings, predict


def _quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=800)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    url = fresh_database("bench_risk_scoring")
    engine = create_engine(url)
    seed_demo(engine, patients=args.patients, seed=11)
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.username == "analyst"))
        assert user is not None
        actor = build_actor(session, user)
        version = train_model(
            session=session,
            actor=actor,
            model_name="no_show",
            kind="hgb",
            settings=TrainSettings(hgb_max_iter=100, n_splits=3),
        )
        session.commit()
        now = utcnow()
        frame = no_show_frame(session, as_of=now)
        ids = frame["subject_id"].tolist()
        model = load_version(version)
        x = frame[version.features]

        single: list[float] = []
        for i in range(args.runs):
            start = time.perf_counter()
            row = no_show_frame(session, as_of=now, subject_ids=[ids[i % len(ids)]])
            score_frame(version, row)
            single.append((time.perf_counter() - start) * 1000)
        one_thread: list[float] = []
        default_pool: list[float] = []
        for i in range(args.runs):
            row_x = x.iloc[[i % len(x)]]
            with threadpool_limits(1):
                start = time.perf_counter()
                predict(model, row_x)
                one_thread.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            predict(model, row_x)
            default_pool.append((time.perf_counter() - start) * 1000)

        big = pd.concat([frame] * (args.rows // len(frame) + 1), ignore_index=True).head(args.rows)
        start = time.perf_counter()
        scored = score_frame(version, big)
        batch_seconds = time.perf_counter() - start
        start = time.perf_counter()
        predict(model, big[version.features])
        predict_seconds = time.perf_counter() - start
    engine.dispose()
    p50, p99 = _quantiles(single)
    m50, m99 = _quantiles(one_thread)
    d50, d99 = _quantiles(default_pool)
    print(
        json.dumps(
            {
                "bench": "risk_scoring",
                "single_p50_ms": round(p50, 2),
                "single_p99_ms": round(p99, 2),
                "model_only_1thread_p50_ms": round(m50, 3),
                "model_only_1thread_p99_ms": round(m99, 3),
                "model_only_default_threads_p99_ms": round(d99, 3),
                "default_threads_p50_ms": round(d50, 3),
                "batch_rows_per_s_with_reasons": round(len(scored) / batch_seconds),
                "batch_rows_per_s_predict_only": round(len(big) / predict_seconds),
                "rows": len(big),
            }
        )
    )


if __name__ == "__main__":
    main()
