"""Vital signs and lab results that follow each patient over time.

Every patient carries latent levels and yearly drifts (a diabetic's HbA1c creeping up, a
CKD patient's creatinine rising, treated blood pressure falling); each measurement is that
curve at the visit plus noise, shifted by the visit's reason (fever, exacerbation, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from cims.demo import copyload as cl
from cims.demo.activity import Activity
from cims.demo.encounters import Encounters
from cims.demo.patients import People
from cims.demo.reasons import ER, ER_INDEX, INP, REASON_INDEX, REASONS
from cims.demo.staff import Staff
from cims.demo.vec import DAY, Clock, FloatArray, IntArray, TimeArray, minutes, repeat_index
from cims.demo.vocab import CHRONIC_INDEX, DEPT_INDEX, OBS_INDEX, OBSERVATIONS, PANEL_KEYS, PANELS
from cims.records.models import ABNORMAL_FLAGS

_RESPIRATORY: Final = ("COPD", "ASTHMA", "BRONCH", "COPD_IP", "PNEU", "URTI")
_N, _L, _H, _LL, _HH = (ABNORMAL_FLAGS.index(f) for f in ("N", "L", "H", "LL", "HH"))


@dataclass
class LabOrders:
    """Lab panels ordered per encounter (for orders and charges)."""

    encounter: IntArray  # encounter row
    panel: IntArray  # index into PANEL_KEYS


def latents(
    people: People, act: Activity, clock: Clock, rng: np.random.Generator
) -> dict[str, FloatArray]:
    """Per-patient baseline levels and yearly drifts of each measured quantity."""
    n = people.n
    has = act.has

    def c(key: str) -> NDArray[np.bool_]:
        return has[:, CHRONIC_INDEX[key]]

    age = np.nan_to_num(people.age_at(np.full(n, clock.today)), nan=45.0)
    male = people.male
    dm, htn, ckd, hf, lipid, copd = c("T2DM"), c("HTN"), c("CKD"), c("HF"), c("LIPID"), c("COPD")
    a1c_slope = np.where(dm, rng.normal(0.12, 0.35, n), rng.normal(0.02, 0.03, n))
    # The demo clinic's patients show a clear trend, up for some and down for others.
    clinic = act.demo_clinic
    a1c_slope[clinic] = np.where(rng.random(len(clinic)) < 0.6, 0.4, -0.3)
    return {
        "a1c": np.where(
            dm,
            np.clip(rng.normal(7.4, 1.0, n), 6.3, 11.5),
            np.clip(rng.normal(5.4, 0.3, n), 4.5, 6.1),
        ),
        "a1c_slope": a1c_slope,
        "cr": np.where(male, 80.0, 62.0)
        * (1 + 0.004 * np.maximum(age - 40, 0))
        * np.exp(rng.normal(0, 0.1, n))
        + ckd * np.clip(rng.normal(80, 30, n), 20, None),
        "cr_slope": ckd * rng.normal(10, 4, n) + dm * 1.5 + 0.3,
        "sbp": 112 + 0.45 * np.maximum(age - 30, 0) + htn * 20 + rng.normal(0, 8, n),
        "sbp_slope": np.where(htn, rng.normal(-1.5, 1.5, n), rng.normal(0.4, 0.5, n)),
        "hr": 74 + hf * 6 + rng.normal(0, 6, n),
        "ldl": np.where(lipid, rng.normal(3.9, 0.5, n), rng.normal(2.8, 0.5, n)),
        "ldl_slope": np.where(lipid, rng.normal(-0.15, 0.1, n), 0.0),
        "bnp": np.where(hf, rng.normal(np.log(450), 0.6, n), rng.normal(np.log(35), 0.5, n)),
        "bnp_slope": hf * rng.normal(0.1, 0.15, n),
        "hb": np.where(male, rng.normal(148, 9, n), rng.normal(130, 9, n))
        - ckd * 15
        - 8 * (age > 75),
        "k": rng.normal(4.2, 0.3, n) + ckd * 0.4,
        "spo2": np.where(copd, rng.normal(93, 2, n), rng.normal(98, 0.8, n)),
        "dm_onset": np.where(
            dm,
            act.onset[:, CHRONIC_INDEX["T2DM"]].astype("datetime64[D]").astype(np.float64),
            np.inf,
        ),
    }


def _values(
    code: IntArray,
    patient: IntArray,
    reason: IntArray,
    when: TimeArray,
    child: NDArray[np.bool_],
    lat: dict[str, FloatArray],
    clock: Clock,
    rng: np.random.Generator,
) -> FloatArray:
    """Measured value per row: the patient's curve at that time, the visit's effect, noise."""
    m = len(code)
    t = clock.years_since_start(when)
    noise = rng.standard_normal(m)
    infection = np.array([r.infection for r in REASONS])[reason]
    is_r = {k: reason == REASON_INDEX[k] for k in ("HF_IP", "COPD_IP", "DM_IP", "HTN_IP", "ANEM")}
    is_r["E_DYSP"] = reason == ER_INDEX["E_DYSP"]
    is_r["E_HYPO"] = reason == ER_INDEX["E_HYPO"]
    day = when.astype("datetime64[D]").astype(np.float64)
    a1c = lat["a1c"][patient] + lat["a1c_slope"][patient] * t + 0.25 * noise
    a1c = np.where(day < lat["dm_onset"][patient], np.minimum(a1c, 6.2), a1c) + 1.5 * is_r["DM_IP"]
    v = np.zeros(m)

    def put(key: str, values: FloatArray) -> None:
        rows = code == OBS_INDEX[key]
        v[rows] = values[rows]

    put("HBA1C", np.clip(a1c, 4.2, 15.0))
    glucose = 1.59 * a1c - 2.59 + 0.8 * noise
    put("GLU", np.clip(np.where(is_r["E_HYPO"], 2.6 + 0.4 * noise, glucose), 1.8, 30.0))
    put(
        "CREA",
        np.clip(lat["cr"][patient] + lat["cr_slope"][patient] * t, 30, 900) * np.exp(0.06 * noise),
    )
    put("K", np.clip(lat["k"][patient] + 0.25 * noise, 2.6, 6.8))
    put("LDL", np.clip(lat["ldl"][patient] + lat["ldl_slope"][patient] * t + 0.3 * noise, 0.8, 7.0))
    put(
        "TC",
        np.clip(lat["ldl"][patient] + lat["ldl_slope"][patient] * t + 1.7 + 0.35 * noise, 2.0, 9.5),
    )
    put("WBC", np.clip(np.where(infection, 12.5 + 3.0 * noise, 6.5 + 1.5 * noise), 1.5, 35.0))
    put("HB", np.clip(lat["hb"][patient] - 30 * is_r["ANEM"] + 7 * noise, 50, 190))
    bnp = (
        lat["bnp"][patient]
        + lat["bnp_slope"][patient] * t
        + 0.3 * noise
        + 0.9 * (is_r["HF_IP"] | is_r["E_DYSP"])
    )
    put("BNP", np.clip(np.exp(bnp), 5, 5000))
    sbp = lat["sbp"][patient] + lat["sbp_slope"][patient] * t + 8 * noise + 35 * is_r["HTN_IP"]
    put("SBP", np.clip(np.where(child, 100 + 6 * noise, sbp), 75, 230))
    dbp = 0.55 * sbp + 8 + 5 * rng.standard_normal(m)
    put("DBP", np.clip(np.where(child, 62 + 5 * noise, dbp), 40, 135))
    put(
        "HR",
        np.clip(
            np.where(child, 105 + 12 * noise, lat["hr"][patient] + 7 * noise + 12 * infection),
            40,
            170,
        ),
    )
    put("TEMP", np.clip(np.where(infection, 38.3 + 0.6 * noise, 36.6 + 0.25 * noise), 35.2, 41.0))
    put(
        "SPO2",
        np.clip(lat["spo2"][patient] + noise - 4 * (is_r["COPD_IP"] | is_r["E_DYSP"]), 80, 100),
    )
    return v


def observations(
    e: Encounters,
    people: People,
    act: Activity,
    staff: Staff,
    clock: Clock,
    rng: np.random.Generator,
    offset: int,
) -> tuple[Any, LabOrders]:
    """Vitals at every encounter, lab panels by visit reason; returns the table and lab orders."""
    n = len(e.ids)
    child = people.age_at(e.start, e.patient) < 14
    respiratory = np.isin(e.reason, [REASON_INDEX[k] for k in _RESPIRATORY]) | (
        e.reason == ER_INDEX["E_DYSP"]
    )
    infection = np.array([r.infection for r in REASONS])[e.reason]
    # Blood pressure for every adult; pulse, temperature and SpO2 where they matter.
    vitals = np.zeros((n, len(OBSERVATIONS)), bool)
    acute = (e.kind == ER) | (e.kind == INP)
    cardiac = e.dept == DEPT_INDEX["CARD"]
    vitals[:, OBS_INDEX["SBP"]] = vitals[:, OBS_INDEX["DBP"]] = ~child
    vitals[:, OBS_INDEX["HR"]] = child | acute | cardiac
    vitals[:, OBS_INDEX["TEMP"]] = child | infection | acute
    vitals[:, OBS_INDEX["SPO2"]] = respiratory
    p_panel = np.array([[dict(r.panels).get(k, 0.0) for k in PANEL_KEYS] for r in REASONS])
    chosen = rng.random((n, len(PANEL_KEYS))) < p_panel[e.reason]
    v_enc, v_code = np.nonzero(vitals)
    l_enc, l_panel = np.nonzero(chosen)
    panel_obs = [[OBS_INDEX[k] for k in PANELS[p][1]] for p in PANEL_KEYS]
    per = np.array([len(x) for x in panel_obs])[l_panel]
    rep = repeat_index(per)
    within = np.arange(len(rep)) - np.repeat(np.cumsum(per) - per, per)
    flat = np.array([x + [0] * (2 - len(x)) for x in panel_obs])
    lab_code = flat[l_panel[rep], within]
    enc = np.concatenate([v_enc, l_enc[rep]])
    code = np.concatenate([v_code, lab_code])
    is_lab = np.arange(len(enc)) >= len(v_enc)
    m = len(enc)
    when = e.start[enc] + minutes(np.where(is_lab, rng.uniform(20, 60, m), rng.uniform(2, 10, m)))
    patient = e.patient[enc]
    value = _values(
        code, patient, e.reason[enc], when, child[enc], latents(people, act, clock, rng), clock, rng
    )
    dec = np.array([o.decimals for o in OBSERVATIONS])[code]
    value = np.round(value * 10.0**dec) / 10.0**dec
    female = ~people.male[patient]
    low = _limit(code, female, "low")
    high = _limit(code, female, "high")
    crit_low = np.array([np.nan if o.crit_low is None else o.crit_low for o in OBSERVATIONS])[code]
    crit_high = np.array([np.nan if o.crit_high is None else o.crit_high for o in OBSERVATIONS])[
        code
    ]
    flag = np.full(m, _N)
    flag = np.where(value < low, _L, flag)
    flag = np.where(value > high, _H, flag)
    flag = np.where(value <= crit_low, _LL, flag)
    flag = np.where(value >= crit_high, _HH, flag)
    ack = (flag != _N) & is_lab & (when < clock.now - 3 * DAY)
    acked_at = np.minimum(when + minutes(rng.uniform(240, 2880, m)), clock.now)
    nurse = (
        staff.nurse_id[rng.integers(0, len(staff.nurse_id), m)]
        if len(staff.nurse_id)
        else np.zeros(m, np.int64)
    )
    scale = (10.0 ** (4 - dec)).astype(np.int64)
    scaled = (np.round(value * 10.0**dec)).astype(np.int64) * scale
    table = cl.table(
        {
            "id": cl.ints(offset + 1 + np.arange(m)),
            "patient_id": cl.ints(patient + 1),
            "encounter_id": cl.ints(e.ids[enc]),
            "category": cl.labels(is_lab.astype(np.int64), ("vital", "lab")),
            "code_system": cl.const("LOINC", m),
            "code": cl.labels(code, [o.loinc for o in OBSERVATIONS]),
            "name": cl.labels(code, [o.name for o in OBSERVATIONS]),
            "value_num": cl.decimals(scaled, 14, 4),
            "unit": cl.labels(code, [o.unit for o in OBSERVATIONS]),
            "ref_low": cl.decimals(_scaled(low), 14, 4, mask=np.isnan(low)),
            "ref_high": cl.decimals(_scaled(high), 14, 4, mask=np.isnan(high)),
            "abnormal_flag": cl.labels(flag, ABNORMAL_FLAGS),
            "observed_at": cl.times(clock, when),
            "recorded_by_id": cl.ints(nurse, mask=is_lab | (len(staff.nurse_id) == 0)),
            "acknowledged_at": cl.times(clock, acked_at, mask=~ack),
            "acknowledged_by_id": cl.ints(e.doctor[enc], mask=~ack),
            "created_at": cl.times(clock, when),
        }
    )
    return table, LabOrders(l_enc.astype(np.int64), l_panel.astype(np.int64))


def _limit(code: IntArray, female: NDArray[np.bool_], which: str) -> FloatArray:
    """Reference limit per row (female-specific where the test has one; NaN when none)."""
    base = np.array(
        [np.nan if getattr(o, which) is None else getattr(o, which) for o in OBSERVATIONS]
    )
    fem = np.array(
        [
            np.nan if getattr(o, which + "_f") is None else getattr(o, which + "_f")
            for o in OBSERVATIONS
        ]
    )
    out: FloatArray = np.where(female & ~np.isnan(fem[code]), fem[code], base[code])
    return out


def _scaled(limit: FloatArray) -> IntArray:
    """Limits as NUMERIC(14,4) integers (NaN → 0; masked as NULL by the caller)."""
    return np.round(np.nan_to_num(limit) * 10_000).astype(np.int64)
