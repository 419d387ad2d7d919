"""The demo hospital's audit history: sign-ins, record views and changes, break-glass.

Derived from the rows the seed loads: each table is shown to ``AuditHistory.take`` as it is
queued for COPY, so every audit row names a real encounter, diagnosis, payment ... at the
time it happened. The rows are COPYed in time order (ids follow time) and sealed afterwards
by the ordinary sealer. A real trail holds every action and sealing manages ~17,000 rows/s,
so the trail covers a window ending "now" sized by a row budget: the whole history for a
small demo, the last weeks for a million patients (the audit module "went live" then).
Detail never holds identifying values: only small fixed vocabularies.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from cims.config import get_settings
from cims.demo import copyload as cl
from cims.demo.staff import Staff
from cims.demo.vec import Clock, IntArray, TimeArray, stream

ROWS_PER_PATIENT: Final = 10  # keeps the default 2,000-patient seed within ~2 s of audit work
MAX_ROWS: Final = 400_000  # ~25 s of sealing, whatever the size of the hospital
ROWS_PER_ENCOUNTER: Final = 7.0  # measured: audit rows per encounter in the window, all told
DAY: Final = 86_400

ACTIONS: Final = (
    "auth.sign_in", "auth.password", "auth.totp", "auth.locked", "admin.unlock",
    "records.view_summary", "records.create_encounter", "records.add_diagnosis",
    "records.prescribe", "records.record_vitals", "patients.register", "appointments.book",
    "billing.take_payment", "clinical.break_glass", "clinical.access",
    "audit.list_break_glass", "audit.review_break_glass",
)  # fmt: skip
OUTCOMES: Final = ("success", "denied")
OBJECT_TYPES: Final = (
    None, "session", "user", "patient", "encounter", "diagnosis", "prescription", "appointment",
    "payment", "break_glass",
)  # fmt: skip
# Tables whose every row is one audited action: (time, actor, action, object type, detail).
# Rows without an actor (portal bookings, online payments) are the patient's own doing.
SOURCES: Final = {
    "appointments": ("booked_at", "created_by_id", "appointments.book", "appointment", "channel"),
    "diagnoses": ("diagnosed_at", "diagnosed_by_id", "records.add_diagnosis", "diagnosis", "rank"),
    "prescriptions": ("prescribed_at", "prescriber_id", "records.prescribe", "prescription", ""),
    "payments": ("received_at", "cashier_id", "billing.take_payment", "payment", "method"),
}
ROLES: Final = ("doctor", "nurse", "registrar", "finance", "admin", None)
# Names that outsiders try against the sign-in page; no account is called this.
PROBE_NAMES: Final = ("root", "administrator", "test", "guest", "sa")
GRANT_REASONS: Final = (
    "急诊会诊，需查看既往病史 / Emergency consult, prior history needed",
    "夜班抢救，主管医生不在 / Night resuscitation, attending unavailable",
    "转科前评估用药史 / Medication history before transfer",
)
GRANT_NOTE: Final = "会诊记录已核实 / Consult record verified"
_FIELDS: Final = ("t", "user", "anon", "action", "outcome", "patient", "otype", "oid", "detail")
Events = dict[str, IntArray]


@dataclass
class Sessions:
    """Signed-in working sessions: who, when they signed in, when they were last active."""

    user: IntArray
    at: IntArray
    last: IntArray


def _ints(table: Any, name: str) -> IntArray:
    """An integer column as int64 (NULL → 0)."""
    out: IntArray = pc.fill_null(table.column(name), 0).to_numpy().astype(np.int64)
    return out


def _utc(seconds: IntArray, mask: NDArray[np.bool_] | None = None) -> Any:
    """timestamptz column from UTC epoch seconds (written as UTC wall time, like cl.times)."""
    return pa.array(seconds, pa.int64(), mask=mask).cast(pa.timestamp("s"))


class AuditHistory:
    """Collects audit events from the seeded tables and builds the audit-trail tables."""

    def __init__(
        self, *, seed: int, clock: Clock, staff: Staff, usernames: Mapping[int, str], patients: int
    ) -> None:
        self._seed, self._staff = seed, staff
        self._offset = int(clock.utc_offset.total_seconds())
        self.now = int(clock.now.astype("datetime64[s]").astype(np.int64)) - self._offset
        start = clock.history_start.astype("datetime64[s]").astype(np.int64)
        self.since = int(start) - self._offset
        self.budget = min(MAX_ROWS, ROWS_PER_PATIENT * patients)
        self._ids = np.array(sorted(usernames), np.int64)
        self._names = [usernames[i] for i in self._ids.tolist()]
        self._names += [n for n in PROBE_NAMES if n not in set(usernames.values())]
        self.admin = staff.demo_ids.get("admin", 0)
        groups: list[Any] = [staff.doctor_id, staff.nurse_id, staff.registrar_id, staff.cashier_id]
        role = {int(u): r for r, ids in enumerate([*groups, [self.admin]]) for u in ids}
        self._role = np.array([role.get(u, len(ROLES) - 1) for u in self._ids.tolist()], np.int64)
        self._demo = np.array(sorted(staff.demo_ids.values()), np.int64)
        self._details: list[str | None] = [None]
        self._chunks: list[Events] = []
        self._attempts: list[Events] = []
        empty = np.zeros(0, np.int64)
        self._visits: dict[str, IntArray] = {k: empty for k in ("t", "patient", "doctor", "acute")}
        self.sessions = Sessions(empty, empty, empty)

    @property
    def days(self) -> float:
        """Length of the audited window in days."""
        return (self.now - self.since) / DAY

    def plan(self, starts: TimeArray) -> None:
        """Start the trail on the day from which the newest encounters fill the row budget."""
        n = int(self.budget / ROWS_PER_ENCOUNTER)
        if 0 < n < len(starts):
            day = np.sort(starts)[len(starts) - n].astype("datetime64[D]").astype("datetime64[s]")
            self.since = max(self.since, int(day.astype(np.int64)) - self._offset)

    # --- events from the seeded tables ---------------------------------------------------

    def take(self, name: str, table: Any) -> None:
        """Derive audit events from one table as it is queued for COPY (others are ignored)."""
        rng = stream(self._seed, "audit." + name)
        if name in SOURCES:
            when, actor, action, otype, detail = SOURCES[name]
            t, rows = self._rows(table, when, ("id", "patient_id", actor, detail))
            who = _ints(rows, actor)
            mine = who > 0
            code = self._detail(rows, detail, detail) if detail else np.zeros(len(t), np.int64)
            self._add(t[mine], who[mine], action, patient=_ints(rows, "patient_id")[mine],
                      otype=otype, oid=_ints(rows, "id")[mine], detail=code[mine])  # fmt: skip
        elif name in ("encounters", "patients", "observations"):
            getattr(self, "_from_" + name)(table, rng)

    def _rows(self, table: Any, when: str, cols: tuple[str, ...]) -> tuple[IntArray, Any]:
        """Times (UTC seconds) and chosen columns of the rows that fall in the window."""
        t = table.column(when).to_numpy().astype("datetime64[s]").astype(np.int64)
        keep = np.flatnonzero((t >= self.since) & (t < self.now))  # NaT is far in the past
        return t[keep], table.select([c for c in cols if c]).take(pa.array(keep))

    def _detail(self, table: Any, name: str, key: str) -> IntArray:
        """Detail codes ``{key: label}`` for a small-vocabulary column."""
        col = table.column(name).combine_chunks()
        codes = [self._code({key: v}) for v in col.dictionary.to_pylist()]
        out: IntArray = np.array(codes, np.int64)[col.indices.to_numpy()]
        return out

    def _code(self, detail: dict[str, Any]) -> int:
        text = json.dumps(detail)
        if text not in self._details:
            self._details.append(text)
        return self._details.index(text)

    def _add(self, t: IntArray, user: Any, action: str, **fields: Any) -> None:
        """Queue events (scalars broadcast); anything not yet happened by "now" is dropped."""
        fields["otype"] = OBJECT_TYPES.index(fields.get("otype"))
        defaults = {"anon": 0, "outcome": 0, "patient": 0, "oid": -1, "detail": 0}
        values = {**defaults, **fields, "t": t, "user": user, "action": ACTIONS.index(action)}
        chunk = {k: np.broadcast_to(np.asarray(values[k], np.int64), (len(t),)) for k in _FIELDS}
        keep = chunk["t"] < self.now
        self._chunks.append({k: v[keep] for k, v in chunk.items()})

    def _from_encounters(self, table: Any, rng: np.random.Generator) -> None:
        cols = ("id", "patient_id", "attending_id", "encounter_type")
        t, rows = self._rows(table, "started_at", cols)
        patient, doctor = _ints(rows, "patient_id"), _ints(rows, "attending_id")
        kind = self._detail(rows, "encounter_type", "encounter_type")
        self._add(t, doctor, "records.create_encounter", patient=patient, otype="encounter",
                  oid=_ints(rows, "id"), detail=kind)  # fmt: skip
        # The attending opens the patient's record as the visit starts.
        self._add(t + rng.integers(30, 240, len(t)), doctor, "records.view_summary",
                  patient=patient, otype="patient", oid=patient)  # fmt: skip
        acute = (kind != self._code({"encounter_type": "outpatient"})).astype(np.int64)
        self._visits = {"t": t, "patient": patient, "doctor": doctor, "acute": acute}

    def _from_patients(self, table: Any, rng: np.random.Generator) -> None:
        t, rows = self._rows(table, "registered_at", ("id",))
        clerks, patient = self._staff.registrar_id, _ints(rows, "id")
        if len(clerks):
            self._add(t, clerks[rng.integers(0, len(clerks), len(t))], "patients.register",
                      patient=patient, otype="patient", oid=patient)  # fmt: skip

    def _from_observations(self, table: Any, rng: np.random.Generator) -> None:
        cols = ("encounter_id", "patient_id", "recorded_by_id")
        t, rows = self._rows(table, "observed_at", cols)
        nurse = _ints(rows, "recorded_by_id")  # NULL for lab results
        keep = np.flatnonzero(nurse > 0)
        enc, t = _ints(rows, "encounter_id")[keep], t[keep]
        order = np.lexsort((t, enc))
        enc, t, keep = enc[order], t[order], keep[order]
        first = np.flatnonzero(np.r_[True, enc[1:] != enc[:-1]])
        count = np.minimum(np.diff(np.r_[first, len(enc)]), 9)
        detail = np.array([self._code({"observations": k}) for k in range(10)])[count]
        # One row per encounter's vital signs, by the nurse who entered the first of them.
        self._add(t[first], nurse[keep[first]], "records.record_vitals", otype="encounter",
                  patient=_ints(rows, "patient_id")[keep[first]], oid=enc[first],
                  detail=detail)  # fmt: skip

    # --- events the data does not imply: break-glass, refusals, sign-ins ------------------

    def _outsiders(self, attending: IntArray, rng: np.random.Generator) -> IntArray:
        """A doctor of another department than each row's attending: outside the care."""
        doctors, depts = self._staff.doctor_id, self._staff.doctor_dept
        by_id = np.argsort(doctors)
        own = depts[by_id[np.searchsorted(doctors, attending, sorter=by_id)]]
        pick = rng.integers(0, len(doctors), (len(attending), 16))
        first = np.argmax(depts[pick] != own[:, None], axis=1)
        out: IntArray = doctors[pick[np.arange(len(pick)), first]]
        return out

    def _break_glass(self, offset: int, rng: np.random.Generator) -> Any:
        """A few emergency accesses: refused, glass broken, record read; most reviewed since."""
        v, now = self._visits, self.now
        acute = np.flatnonzero(v["acute"])
        t = v["t"][acute]
        old, recent = acute[t < now - 4 * DAY], acute[(t >= now - 8 * DAY) & (t < now - 3 * 3600)]
        n_old = min(len(old), int(np.clip(self.days / 90, 3, 10)))
        rows = np.r_[rng.choice(old, n_old, replace=False),
                     rng.choice(recent, min(len(recent), 2), replace=False)]  # fmt: skip
        n = len(rows)
        granted = np.minimum(v["t"][rows] + rng.integers(1200, 10_800, n), now - 3000)
        order = np.argsort(granted, kind="stable")  # grant ids in time order
        reviewed = ((np.arange(n) < n_old) & (self.admin > 0))[order]
        rows, granted, ids = rows[order], granted[order], offset + 1 + np.arange(n)
        doctor, patient = self._outsiders(v["doctor"][rows], rng), v["patient"][rows]
        reason = rng.integers(0, len(GRANT_REASONS), n)
        length = np.array([self._code({"reason_length": len(r)}) for r in GRANT_REASONS])
        self._add(granted - rng.integers(20, 90, n), doctor, "clinical.access", outcome=1,
                  patient=patient, otype="patient", oid=patient)  # fmt: skip
        self._add(granted, doctor, "clinical.break_glass", patient=patient, otype="break_glass",
                  oid=ids, detail=length[reason])  # fmt: skip
        self._add(granted + rng.integers(30, 120, n), doctor, "records.view_summary",
                  patient=patient, otype="patient", oid=patient)  # fmt: skip
        review = granted + rng.integers(DAY // 2, 3 * DAY, n)
        r = np.flatnonzero(reviewed)
        self._add(review[r] - rng.integers(30, 300, len(r)), self.admin, "audit.list_break_glass",
                  otype="break_glass")  # fmt: skip
        justified = self._code({"outcome": "justified"})
        self._add(review[r], self.admin, "audit.review_break_glass", patient=patient[r],
                  otype="break_glass", oid=ids[r], detail=justified)  # fmt: skip
        expires = granted + 60 * get_settings().break_glass_minutes
        pending = (~reviewed).astype(np.int64)
        return cl.table({
            "id": cl.ints(ids), "user_id": cl.ints(doctor), "patient_id": cl.ints(patient),
            "reason": cl.labels(reason, GRANT_REASONS), "granted_at": _utc(granted),
            "expires_at": _utc(expires), "reviewed_at": _utc(review, ~reviewed),
            "reviewed_by_id": cl.ints(np.full(n, self.admin), ~reviewed),
            "review_outcome": cl.labels(pending, ("justified", None)),
            "review_note": cl.labels(pending, (GRANT_NOTE, None)),
        })  # fmt: skip

    def _refusals(self, rng: np.random.Generator) -> None:
        """Now and then a clinician opens a patient outside their care and is refused."""
        v = self._visits
        if len(v["t"]):
            rows = rng.choice(len(v["t"]), int(np.clip(self.days / 30, 2, 20)))
            patient = v["patient"][rows]
            self._add(v["t"][rows] + rng.integers(600, 6 * 3600, len(rows)),
                      self._outsiders(v["doctor"][rows], rng), "clinical.access", outcome=1,
                      patient=patient, otype="patient", oid=patient)  # fmt: skip

    def _merged(self) -> Events:
        return {k: np.concatenate([c[k] for c in self._chunks]) for k in _FIELDS}

    def _sign_ins(self, users: NDArray[np.bool_], rng: np.random.Generator) -> Sessions:
        """One sign-in per working day, a few minutes before the user's first action."""
        ev = self._merged()
        mine = np.isin(ev["user"], self._ids[users]) & (ev["anon"] == 0)
        order = np.lexsort((ev["t"][mine], ev["user"][mine]))
        u, t = ev["user"][mine][order], ev["t"][mine][order]
        day = (t + self._offset) // DAY  # the hospital's local day
        start = np.flatnonzero(np.r_[True, (u[1:] != u[:-1]) | (day[1:] != day[:-1])])
        start = start[start < len(u)]
        last = t[np.r_[start[1:], len(u)] - 1]
        at = t[start] - rng.integers(60, 600, len(start))
        # Each sign-in is a password step and then a TOTP step.
        self._attempt(at - rng.integers(15, 45, len(at)), u[start], 0, 0)
        self._attempt(at, u[start], 1, 0)
        return Sessions(u[start], at, last)

    def _attempt(self, t: IntArray, user: Any, stage: int, reason: int) -> None:
        row = {"t": t, "user": user, "stage": stage, "reason": reason}
        self._attempts.append(
            {k: np.broadcast_to(np.asarray(v, np.int64), (len(t),)) for k, v in row.items()}
        )

    def _failures(self, s: Sessions, rng: np.random.Generator) -> None:
        """Typos, wrong codes, a few lockouts (unlocked by the admin) and outsiders' probes."""
        # Never the published demo logins, never the last day: history must not lock anyone.
        ok = ~np.isin(s.user, self._demo) & (s.at < self.now - DAY)
        n = len(s.at)
        typo, code = ok & (rng.random(n) < 0.01), ok & (rng.random(n) < 0.004)
        miss = s.at[typo] - rng.integers(60, 180, int(typo.sum()))
        self._attempt(miss, s.user[typo], 0, 1)
        self._add(miss, s.user[typo], "auth.password", anon=1, outcome=1)
        wrong = s.at[code] - rng.integers(5, 14, int(code.sum()))
        self._attempt(wrong, s.user[code], 1, 2)
        self._add(wrong, s.user[code], "auth.totp", anon=1, outcome=1)
        tries = get_settings().lockout_failures
        k = min(int(ok.sum()), int(np.clip(self.days / 90, 2, 8)))
        chosen = np.sort(rng.choice(np.flatnonzero(ok), k, replace=False))
        victim = s.user[chosen]
        unlock = s.at[chosen] - rng.integers(60, 300, k)
        locked = unlock - rng.integers(600, 2400, k)
        # A burst of wrong passwords; the last one locks the account.
        gaps = np.arange(tries)[::-1] * rng.integers(10, 40, (k, 1))
        burst, who = (locked[:, None] - gaps).ravel(), np.repeat(victim, tries)
        self._attempt(burst, who, 0, 1)
        self._add(burst, who, "auth.password", anon=1, outcome=1)
        self._add(locked, victim, "auth.locked", anon=1, otype="user", oid=victim)
        if self.admin:
            self._add(unlock, self.admin, "admin.unlock", otype="user", oid=victim)
        probes = int(np.clip(self.days / 180, 1, 4))
        night = self.now - rng.integers(1, max(2, int(self.days)), probes) * DAY - 6 * 3600
        t = (night[:, None] + np.arange(3) * rng.integers(15, 60, (probes, 1))).ravel()
        name = np.repeat(-1 - rng.integers(0, len(self._names) - len(self._ids), probes), 3)
        self._attempt(t, name, 0, 1)
        self._add(t, name, "auth.password", anon=1, outcome=1)

    # --- tables ----------------------------------------------------------------------------

    def tables(self, grant_offset: int) -> list[tuple[str, Any]]:
        """The audit_log, sign_in_attempts, auth_sessions and break_glass_grants COPY tables."""
        rng = stream(self._seed, "audit.security")
        grants = self._break_glass(grant_offset, rng)
        self._refusals(rng)
        staff = self._sign_ins(self._role < ROLES.index("admin"), rng)
        self._failures(staff, rng)  # adds the admin's unlocks: the admin's sign-ins come after
        admin = self._sign_ins(self._role == ROLES.index("admin"), rng)
        pairs = zip(vars(staff).values(), vars(admin).values(), strict=True)
        parts = [np.concatenate(pair) for pair in pairs]
        order = np.argsort(parts[1], kind="stable")
        s = self.sessions = Sessions(*(p[order] for p in parts))
        self._add(s.at, s.user, "auth.sign_in", otype="session", oid=np.arange(len(s.at)))
        raw = stream(self._seed, "audit.sessions").integers(0, 256, (len(s.at), 16), np.uint8)
        raw[:, 6], raw[:, 8] = raw[:, 6] & 0x0F | 0x40, raw[:, 8] & 0x3F | 0x80  # version 4
        keys = pa.array([str(uuid.UUID(bytes=bytes(r))) for r in raw], pa.string())
        return [
            ("audit_log", self._audit_table(keys)),
            ("sign_in_attempts", self._attempt_table()),
            ("auth_sessions", self._session_table(keys, rng)),
            ("break_glass_grants", grants),
        ]

    def _name(self, user: IntArray) -> IntArray:
        """Index into the username vocabulary (negative = a probe name)."""
        out: IntArray = np.where(
            user < 0, len(self._ids) - 1 - user, np.searchsorted(self._ids, user)
        )
        return out

    def _audit_table(self, keys: Any) -> Any:
        ev = self._merged()
        ev = {k: v[np.argsort(ev["t"], kind="stable")] for k, v in ev.items()}
        anon, name = ev["anon"] == 1, self._name(ev["user"])
        role = np.where(anon, len(ROLES) - 1, self._role[np.minimum(name, len(self._ids) - 1)])
        session = ev["otype"] == OBJECT_TYPES.index("session")
        oid = pa.array(ev["oid"], mask=ev["oid"] < 0).cast(pa.string())
        if len(keys):  # sign-ins name their session's UUID
            oid = pc.if_else(session, keys.take(np.where(session, ev["oid"], 0)), oid)
        return cl.table({
            "occurred_at": _utc(ev["t"]), "actor_id": cl.ints(ev["user"], anon),
            "actor_username": cl.labels(name, self._names), "actor_role": cl.labels(role, ROLES),
            "action": cl.labels(ev["action"], ACTIONS),
            "outcome": cl.labels(ev["outcome"], OUTCOMES),
            "patient_id": cl.ints(ev["patient"], ev["patient"] == 0),
            "object_type": cl.labels(ev["otype"], OBJECT_TYPES), "object_id": oid,
            "detail": cl.labels(ev["detail"], self._details),
        })  # fmt: skip

    def _attempt_table(self) -> Any:
        a = {k: np.concatenate([c[k] for c in self._attempts]) for k in self._attempts[0]}
        a = {k: v[np.argsort(a["t"], kind="stable")] for k, v in a.items()}
        return cl.table({
            "username": cl.labels(self._name(a["user"]), self._names),
            "user_id": cl.ints(a["user"], a["user"] < 0), "attempted_at": _utc(a["t"]),
            "success": cl.bools(a["reason"] == 0),
            "stage": cl.labels(a["stage"], ("password", "totp")),
            "reason": cl.labels(a["reason"], (None, "signin.invalid", "signin.bad_code")),
        })  # fmt: skip

    def _session_table(self, keys: Any, rng: np.random.Generator) -> Any:
        s = self.sessions
        out = s.last + rng.integers(120, 1800, len(s.at))
        live = out >= self.now  # still signed in at "now"
        lifetime = 3600 * get_settings().session_absolute_hours
        return cl.table({
            "id": keys, "user_id": cl.ints(s.user), "created_at": _utc(s.at),
            "last_seen_at": _utc(s.last), "mfa_passed_at": _utc(s.at),
            "cookie_expires_at": _utc(s.at + lifetime), "revoked_at": _utc(out, live),
            "revoke_reason": cl.labels(live.astype(np.int64), ("logout", None)),
        })  # fmt: skip

    def last_logins(self) -> list[dict[str, Any]]:
        """``{"id", "last_login_at"}`` of every user who signed in, for a bulk UPDATE."""
        latest: dict[int, int] = {}
        for user, at in zip(self.sessions.user.tolist(), self.sessions.at.tolist(), strict=True):
            latest[user] = max(at, latest.get(user, at))
        return [{"id": u, "last_login_at": dt.datetime.fromtimestamp(t, dt.UTC)}
                for u, t in sorted(latest.items())]  # fmt: skip
