"""Clinical notes (encrypted), treatment plans and their follow-up schedules."""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from cims.demo import copyload as cl
from cims.demo.activity import Activity
from cims.demo.encounters import DECEASED, Encounters
from cims.demo.reasons import ER, INP, OUT, REASONS
from cims.demo.vec import DAY, HOUR, Clock, minutes
from cims.demo.vocab import CHRONIC_INDEX, DRUG_INDEX, DRUGS
from cims.security.crypto import FieldCipher

ADMISSION, DISCHARGE, OUTPATIENT, EMERGENCY = range(4)
NOTE_TYPES: Final = ("admission", "discharge", "outpatient", "emergency")
NOTE_TITLES: Final = (
    "入院记录 / Admission note",
    "出院小结 / Discharge summary",
    "门诊病历 / Outpatient record",
    "急诊病历 / Emergency record",
)
_DISPOSITION_ZH: Final = ("离院", "收入院", "转院", "转诊", "死亡", "自动离院")

# (condition, title, goals, follow-up task)
PLANS: Final = (
    ("T2DM", "2型糖尿病综合管理 / Type 2 diabetes management",
     "HbA1c < 7.0%；空腹血糖 4.4–7.0 mmol/L；血压 < 130/80 mmHg；每年眼底及足部检查",
     "复诊：复查糖化血红蛋白 / Follow-up: HbA1c review"),
    ("HF", "心力衰竭管理 / Heart failure management",
     "每日称体重；限盐限水；BNP 较基线下降；避免再入院",
     "复诊：心功能评估及BNP / Follow-up: heart function and BNP"),
    ("HTN", "高血压管理 / Hypertension management",
     "诊室血压 < 140/90 mmHg；家庭血压监测；低盐饮食",
     "复诊：血压随访 / Follow-up: blood pressure check"),
    ("CKD", "慢性肾脏病管理 / Chronic kidney disease management",
     "延缓肾功能下降；血钾正常；血压 < 130/80 mmHg",
     "复诊：复查肾功能 / Follow-up: renal function"),
)  # fmt: skip


def _zh(name: str) -> str:
    return name.split(" / ")[0]


def _plan_text(reason_index: int) -> str:
    drugs = [_zh(DRUGS[DRUG_INDEX[k]].name) for k in REASONS[reason_index].drugs[:2]]
    return "予" + "、".join(drugs) + "治疗" if drugs else "对症处理"


def notes_table(
    e: Encounters, cipher: FieldCipher, clock: Clock, rng: np.random.Generator, offset: int
) -> Any:
    """Admission and discharge notes for stays, records for a share of other visits."""
    n = len(e.ids)
    inpatient = np.flatnonzero(e.kind == INP)
    discharged = inpatient[~e.open[inpatient]]
    out = np.flatnonzero((e.kind == OUT) & (rng.random(n) < 0.35))
    er = np.flatnonzero((e.kind == ER) & (rng.random(n) < 0.6))
    enc = np.concatenate([inpatient, discharged, out, er])
    kind = np.concatenate(
        [
            np.full(len(inpatient), ADMISSION),
            np.full(len(discharged), DISCHARGE),
            np.full(len(out), OUTPATIENT),
            np.full(len(er), EMERGENCY),
        ]
    )
    when = np.where(
        kind == DISCHARGE, e.end[enc], e.start[enc] + minutes(rng.uniform(20, 120, len(enc)))
    )
    order = np.argsort(when, kind="stable")
    enc, kind, when = enc[order], kind[order], when[order]
    ids = offset + 1 + np.arange(len(enc))
    plan = [_plan_text(i) for i in range(len(REASONS))]
    dx = [_zh(r.name) for r in REASONS]
    bodies = []
    starts = e.start.astype("datetime64[D]").astype(str)
    ends = np.where(e.open, clock.today, e.end.astype("datetime64[D]")).astype(str)
    for row, k, note_id in zip(enc.tolist(), kind.tolist(), ids.tolist(), strict=True):
        r = int(e.reason[row])
        complaint = REASONS[r].complaint
        if k == ADMISSION:
            text = f"主诉：{complaint}。\n入院诊断：{dx[r]}。\n诊疗计划：完善相关检查，{plan[r]}。"
        elif k == DISCHARGE:
            died = e.disposition[row] == DECEASED
            outcome = "经积极抢救无效，宣告临床死亡。" if died else "病情好转，准予出院。"
            text = (
                f"入院日期：{starts[row]}，出院日期：{ends[row]}。\n出院诊断：{dx[r]}。\n"
                f"出院情况：{outcome}\n出院医嘱：{plan[r]}，门诊随访。"
            )
        elif k == OUTPATIENT:
            text = (
                f"主诉：{complaint}。\n诊断：{dx[r]}。\n处理：{plan[r]}。\n嘱：按时服药，不适随诊。"
            )
        else:
            gone = _DISPOSITION_ZH[max(int(e.disposition[row]), 0)]
            text = f"主诉：{complaint}。\n初步诊断：{dx[r]}。\n处理：{plan[r]}。\n去向：{gone}。"
        bodies.append(cipher.encrypt(text, table="clinical_notes", column="body", row_id=note_id))
    doctor = e.doctor[enc]
    return cl.table(
        {
            "id": cl.ints(ids),
            "patient_id": cl.ints(e.patient[enc] + 1),
            "encounter_id": cl.ints(e.ids[enc]),
            "author_id": cl.ints(doctor),
            "note_type": cl.labels(kind, NOTE_TYPES),
            "title": cl.labels(kind, NOTE_TITLES),
            "body_enc": cl.hexes(bodies),
            "written_at": cl.times(clock, when),
            # Seeded notes are signed by their author when written (status defaults to signed).
            "signed_at": cl.times(clock, when),
            "signed_by_id": cl.ints(doctor),
            "created_at": cl.times(clock, when),
            "created_by_id": cl.ints(doctor),
        }
    )


def plans_tables(
    e: Encounters,
    act: Activity,
    clock: Clock,
    rng: np.random.Generator,
    *,
    plan_offset: int,
    follow_offset: int,
) -> tuple[Any, Any]:
    """Care plans for some chronic patients (all of the demo clinic), with quarterly follow-ups."""
    cond = np.array([CHRONIC_INDEX[p[0]] for p in PLANS])
    plan_of_reason = np.full(len(REASONS), -1)
    plan_of_reason[cond] = np.arange(len(PLANS))
    recent = clock.today - 730
    rows = np.flatnonzero(
        (e.kind == OUT)
        & (plan_of_reason[e.reason] >= 0)
        & (e.start.astype("datetime64[D]") >= recent)
    )
    # The latest qualifying visit of each patient starts their plan.
    rows = rows[np.lexsort((e.start[rows], e.patient[rows]))]
    last = (
        np.concatenate([e.patient[rows][1:] != e.patient[rows][:-1], [True]])
        if len(rows)
        else np.zeros(0, bool)
    )
    rows = rows[last]
    chosen = (rng.random(len(rows)) < 0.15) | np.isin(e.patient[rows], act.demo_clinic)
    rows = rows[chosen]
    which = plan_of_reason[e.reason[rows]]
    start = e.start[rows].astype("datetime64[D]")
    end = start + 365
    p = len(rows)
    plan_ids = plan_offset + 1 + np.arange(p)
    plans = cl.table(
        {
            "id": cl.ints(plan_ids),
            "patient_id": cl.ints(e.patient[rows] + 1),
            "encounter_id": cl.ints(e.ids[rows]),
            "author_id": cl.ints(e.doctor[rows]),
            "title": cl.labels(which, [x[1] for x in PLANS]),
            "goals": cl.labels(which, [x[2] for x in PLANS]),
            "start_date": cl.dates(start),
            "end_date": cl.dates(end),
            "status": cl.labels((end < clock.today).astype(np.int64), ("active", "completed")),
            "created_at": cl.times(clock, e.end[rows]),
            "created_by_id": cl.ints(e.doctor[rows]),
        }
    )
    step = np.repeat(np.arange(p), 4)
    k = np.tile(np.arange(1, 5), p)
    due = start[step] + (90 * k).astype("m8[D]")
    past = due < clock.today
    done = past & (rng.random(len(due)) < 0.85)
    status = np.where(done, 2, np.where(past, 3, 0))  # due / booked / done / missed
    completed = due.astype("datetime64[s]") + rng.integers(-5, 6, len(due)) * DAY + 10 * HOUR
    completed = np.minimum(completed, clock.now)
    follow = cl.table(
        {
            "id": cl.ints(follow_offset + 1 + np.arange(len(due))),
            "plan_id": cl.ints(plan_ids[step]),
            "patient_id": cl.ints(e.patient[rows][step] + 1),
            "due_date": cl.dates(due),
            "description": cl.labels(which[step], [x[3] for x in PLANS]),
            "status": cl.labels(status, ("due", "booked", "done", "missed")),
            "completed_at": cl.times(clock, completed, mask=~done),
            "created_at": cl.times(clock, e.end[rows][step]),
        }
    )
    return plans, follow
