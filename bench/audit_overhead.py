"""Cost of the tamper-evident audit trail on the user's path, and the sealer's speed.

On a fresh database (``cims_bench_audit`` on the configured server), with the background
sealer running as in the app:

- overhead_vs_plain: an audited update of a patient row (the update plus its audit row in
  one transaction) against the same update alone; goal <= 1.3.
- audited_reads_per_s_1 / _50: select a patient row, insert its audit row, commit, with
  1 and with 50 concurrent sessions (threads); plain_reads_per_s_50 is the same without
  the audit row. Writers never wait on the chain: sealing happens after commit.
- seal_rows_per_s: rows linked into the chain per second by ``seal_pending``;
  verify_rows_per_s: rows re-hashed per second by ``verify_chain``.

Last stdout line is one JSON object.

    .venv/bin/python bench/audit_overhead.py [--updates N] [--seconds S] [--seal-rows N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import fresh_database
from sqlalchemy import Engine, create_engine, insert, select, text, update
from sqlalchemy.orm import Session

from cims.patients.models import Patient
from cims.patients.mrn import make_mrn
from cims.security import audit, audit_chain
from cims.security.models import AuditEvent
from cims.security.rbac import Actor

DATABASE = "cims_bench_audit"
PATIENTS = 2000
ACTOR = Actor(user_id=1, username="bench.doctor", display_name="Bench", roles=("doctor",))


def _engine(url: str, pool: int) -> Engine:
    return create_engine(
        url, pool_size=pool, max_overflow=0, connect_args={"options": "-c timezone=UTC"}
    )


def _load_patients(engine: Engine) -> None:
    rows = [
        {
            "mrn": make_mrn(n + 1),
            "family_name": "张",
            "given_name": "三",
            "full_name": "张三",
            "sex": "M",
            "insurance_type": "self_pay",
        }
        for n in range(PATIENTS)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Patient), rows)


def _update(engine: Engine, patient_id: int, audited: bool) -> None:
    with Session(engine) as session:
        session.execute(update(Patient).where(Patient.id == patient_id).values(blood_type="A+"))
        if audited:
            audit.record(
                session, ACTOR, "patients.update", patient_id=patient_id,
                object_type="patient", object_id=patient_id, detail={"fields": ["blood_type"]},
            )  # fmt: skip
        session.commit()


def _read(engine: Engine, patient_id: int, audited: bool) -> None:
    with Session(engine) as session:
        session.execute(select(Patient).where(Patient.id == patient_id)).scalar_one()
        if audited:
            audit.record(session, ACTOR, "patients.view", patient_id=patient_id)
        session.commit()


def overhead(engine: Engine, updates: int) -> dict[str, float]:
    """Audited against plain updates, alternating one by one; medians resist noise."""
    spent: dict[bool, list[float]] = {False: [], True: []}
    for n in range(updates):
        for audited in (False, True) if n % 2 else (True, False):
            began = time.perf_counter()
            _update(engine, n % PATIENTS + 1, audited)
            spent[audited].append(time.perf_counter() - began)
    plain, with_audit = statistics.median(spent[False]), statistics.median(spent[True])
    return {
        "plain_update_ms": round(plain * 1000, 3),
        "audited_update_ms": round(with_audit * 1000, 3),
        "overhead_vs_plain": round(with_audit / plain, 3),
        "overhead_vs_plain_mean": round(
            statistics.mean(spent[True]) / statistics.mean(spent[False]), 3
        ),
    }


def _read_inline_chain(engine: Engine, patient_id: int, audited: bool) -> None:
    """The design not taken: hash-chain inside the user's transaction under one lock."""
    with Session(engine) as session:
        session.execute(select(Patient).where(Patient.id == patient_id)).scalar_one()
        session.execute(text("SELECT pg_advisory_xact_lock(7)"))  # held until commit
        head = session.execute(
            text("SELECT seq, h FROM bench_inline_chain ORDER BY seq DESC LIMIT 1")
        ).first()
        seq, prev = (head[0], bytes(head[1])) if head else (0, audit_chain.GENESIS)
        audit.record(session, ACTOR, "patients.view", patient_id=patient_id)
        digest = hashlib.sha256(prev + f"{patient_id}:{ACTOR.username}".encode()).digest()
        session.execute(
            text("INSERT INTO bench_inline_chain VALUES (:seq, :hash)"),
            {"seq": seq + 1, "hash": digest},
        )
        session.commit()


def concurrent(
    engine: Engine, work: Callable[[Engine, int, bool], None], threads: int, seconds: float,
    audited: bool,
) -> tuple[float, float]:  # fmt: skip
    """Operations per second over all threads, and the p95 latency in ms."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = threading.Event()

    def worker(index: int) -> None:
        n = index
        while not stop.is_set():
            began = time.perf_counter()
            work(engine, n % PATIENTS + 1, audited)
            latencies[index].append(time.perf_counter() - began)
            n += threads

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    began = time.perf_counter()
    for thread in pool:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    every = [x for per in latencies for x in per]
    p95 = statistics.quantiles(every, n=20)[-1] * 1000 if len(every) > 20 else 0.0
    return len(every) / elapsed, p95


def _unsealed(engine: Engine) -> int:
    with engine.connect() as conn:
        count = conn.scalar(
            text(
                "SELECT count(*) FROM audit_log a WHERE NOT EXISTS "
                "(SELECT 1 FROM audit_seals s WHERE s.audit_id = a.id)"
            )
        )
    return int(count or 0)


def seal_speed(engine: Engine, rows: int) -> float:
    """Rows sealed per second from a backlog of ``rows`` fresh audit rows."""
    values = [
        {"action": "bench.bulk", "outcome": "success", "patient_id": n % PATIENTS + 1}
        for n in range(rows)
    ]
    with engine.begin() as conn:
        conn.execute(insert(AuditEvent), values)
    pending = _unsealed(engine)
    began = time.perf_counter()
    sealed = audit_chain.seal_pending(engine)
    spent = time.perf_counter() - began
    assert sealed == pending, (sealed, pending)
    return sealed / spent


def main() -> None:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--seal-rows", type=int, default=50_000)
    args = parser.parse_args()

    url = fresh_database(DATABASE)
    engine = _engine(url, pool=60)
    _load_patients(engine)
    anchors = Path(__file__).resolve().parent.parent / "var" / "bench-audit-anchors"
    sealer = audit_chain.start_sealer(engine, interval_seconds=2.0, anchor_dir=anchors)
    result: dict[str, object] = {"bench": "audit_overhead", "patients": PATIENTS}
    try:
        result.update(overhead(engine, args.updates))
        for threads in (1, 50):
            for audited in (True, False):
                per_s, p95 = concurrent(engine, _read, threads, args.seconds, audited)
                name = "audited" if audited else "plain"
                result[f"{name}_reads_per_s_{threads}"] = round(per_s, 1)
                result[f"{name}_read_p95_ms_{threads}"] = round(p95, 2)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE bench_inline_chain (seq bigint PRIMARY KEY, h bytea)"))
        per_s, p95 = concurrent(engine, _read_inline_chain, 50, args.seconds, True)
        result["inline_chain_reads_per_s_50"] = round(per_s, 1)
        result["inline_chain_read_p95_ms_50"] = round(p95, 2)
        # How long after the last commit until every row is sealed (the sealer's lag).
        began = time.perf_counter()
        while _unsealed(engine) and time.perf_counter() - began < 30:
            time.sleep(0.05)
        result["seal_catch_up_s"] = round(time.perf_counter() - began, 2)
    finally:
        sealer.stop()
    result["sealer_errors"] = 0 if sealer.last_error is None else 1
    result["seal_rows_per_s"] = round(seal_speed(engine, args.seal_rows))
    began = time.perf_counter()
    verdict = audit_chain.verify_chain(engine)
    spent = time.perf_counter() - began
    result["chain_rows"] = verdict.rows_checked
    result["chain_ok"] = verdict.ok
    result["verify_rows_per_s"] = round(verdict.rows_checked / spent)
    reads = {k: v for k, v in result.items() if isinstance(v, float)}
    result["audited_vs_plain_reads_50"] = round(
        reads["audited_reads_per_s_50"] / reads["plain_reads_per_s_50"], 3
    )
    engine.dispose()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
