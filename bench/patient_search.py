"""Front-desk search speed: every indexed key against an unindexed name scan.

Builds the demo hospital once in ``cims_bench_search`` (reused while it holds the requested
number of patients; its state is kept in var/bench/patient_search/), samples real patients,
and times ``search_patients`` end to end (cipher, query, decrypt-and-mask, audit row) per
key; the baseline is ``full_name ILIKE '%x%'`` over the whole table in the same run.
Last stdout line is one JSON object.

    .venv/bin/python bench/patient_search.py [--patients N] [--samples N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from _common import bench_url, fresh_database
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.orm import Session

from cims import migrate
from cims.config import PROJECT_ROOT
from cims.db import ensure_database
from cims.patients.models import Patient
from cims.patients.search import search_patients
from cims.security.accounts import build_actor
from cims.security.crypto import load_cipher
from cims.security.models import User

DATABASE = "cims_bench_search"
STATE = PROJECT_ROOT / "var" / "bench" / "patient_search" / "state.json"
KEYS = ("mrn", "id", "phone", "name_prefix", "pinyin", "name_phone4")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _database(patients: int) -> Engine:
    """The bench database, seeded with ``patients`` unless it already holds exactly that."""
    url = bench_url(DATABASE)
    ensure_database(url)
    migrate.upgrade(url)
    engine = create_engine(url)
    with Session(engine) as session:
        held = session.scalar(select(func.count()).select_from(Patient)) or 0
    if held and held != patients:
        _say(f"{DATABASE} holds {held:,} patients, not {patients:,}: rebuilding")
        engine.dispose()
        url = fresh_database(DATABASE)
        engine = create_engine(url)
        held = 0
    if not held:
        from cims.demo.seed import seed_demo

        _say(f"seeding {patients:,} patients into {DATABASE} (once)")
        started = time.perf_counter()
        seed_demo(engine, patients=patients, progress=_say)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE patients"))
        STATE.parent.mkdir(parents=True, exist_ok=True)
        STATE.write_text(
            json.dumps(
                {
                    "database": DATABASE,
                    "patients": patients,
                    "seeded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "seed_seconds": round(time.perf_counter() - started, 1),
                },
                indent=1,
            )
        )
    else:
        _say(f"reusing {DATABASE} with {held:,} patients (state: {STATE})")
    return engine


def _queries(session: Session, samples: int, rng: random.Random) -> dict[str, list[str]]:
    """Search texts built from randomly chosen identified, live patients."""
    top = session.scalar(select(func.max(Patient.id))) or 0
    ids = rng.sample(range(1, top + 1), min(top, samples * 3))
    rows = session.scalars(
        select(Patient).where(
            Patient.id.in_(ids),
            Patient.national_id_enc.is_not(None),
            Patient.phone_enc.is_not(None),
            Patient.voided.is_(False),
            Patient.merged_into_id.is_(None),
        )
    ).all()[:samples]
    cipher = load_cipher(session)
    out: dict[str, list[str]] = {key: [] for key in KEYS}
    for p in rows:
        phone = cipher.decrypt_text(p.phone_enc, table="patients", column="phone", row_id=p.id)
        national = cipher.decrypt_text(
            p.national_id_enc, table="patients", column="national_id", row_id=p.id
        )
        out["mrn"].append(p.mrn)
        out["id"].append(national)
        out["phone"].append(phone)
        out["name_prefix"].append(p.full_name[:2])
        out["pinyin"].append(p.name_initials or "")
        out["name_phone4"].append(p.full_name + phone[-4:])
    return out


def _time(calls: list[Callable[[], object]]) -> tuple[float, float]:
    """p50 and p95 in milliseconds over the calls (after two warm-ups)."""
    for call in calls[:2]:
        call()
    spent = []
    for call in calls:
        started = time.perf_counter()
        call()
        spent.append((time.perf_counter() - started) * 1000)
    p50, p95 = np.percentile(np.array(spent), [50, 95])
    return round(float(p50), 3), round(float(p95), 3)


def main() -> None:
    """Build or reuse the database, time every key and the scan, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--scan-samples", type=int, default=20)
    args = parser.parse_args()
    engine = _database(args.patients)
    rng = random.Random(20261126)
    result: dict[str, object] = {"bench": "patient_search", "patients": args.patients}
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.username == "registrar"))
        assert user is not None, "the demo registrar is missing"
        actor = build_actor(session, user)
        queries = _queries(session, args.samples, rng)
        p50s = []
        for key in KEYS:
            calls: list[Callable[[], object]] = [
                lambda q=q: search_patients(session=session, actor=actor, query=q)
                for q in queries[key]
            ]
            found = [
                search_patients(session=session, actor=actor, query=q) for q in queries[key][:20]
            ]
            hits = sum(1 for rows in found if rows)
            p50, p95 = _time(calls)
            result[f"{key}_p50_ms"], result[f"{key}_p95_ms"] = p50, p95
            p50s.append(p50)
            _say(f"{key:12s} p50 {p50:8.2f} ms  p95 {p95:8.2f} ms  found {hits}/20")
        scan = text(
            "SELECT id FROM patients WHERE full_name ILIKE :pattern "
            "AND NOT voided AND merged_into_id IS NULL ORDER BY full_name LIMIT 20"
        )
        names = queries["name_phone4"][: args.scan_samples]
        scan_calls: list[Callable[[], object]] = [
            lambda n=n: session.execute(scan, {"pattern": f"%{n[:-4]}%"}).all() for n in names
        ]
        scan_p50, scan_p95 = _time(scan_calls)
        result["scan_p50_ms"], result["scan_p95_ms"] = scan_p50, scan_p95
        _say(f"{'ILIKE scan':12s} p50 {scan_p50:8.2f} ms  p95 {scan_p95:8.2f} ms")
        # Against the slowest indexed key: the ratio a user feels in the worst case.
        result["speedup_vs_scan"] = round(scan_p50 / max(p50s), 1)
        session.rollback()  # the bench's own audit rows are not kept
    engine.dispose()
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
