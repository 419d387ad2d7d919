"""Charges priced from the catalogue on the service date, insurance shares, invoices, payments.

All money is integer cents until it is written as NUMERIC(12,2): the insured share is rounded
half-up once and the patient pays the exact remainder, so every charge, invoice line and
invoice satisfies amount = insurance_amount + patient_amount to the cent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import numpy as np

from cims.demo import copyload as cl
from cims.demo.encounters import Encounters
from cims.demo.orders import Billable, stay_days
from cims.demo.patients import People
from cims.demo.reasons import ER, INP, OUT
from cims.demo.reference import Reference, catalogue_items
from cims.demo.scheduling import Appointments
from cims.demo.staff import DEMO_CASHIER, Staff
from cims.demo.vec import Clock, IntArray, minutes
from cims.demo.vocab import TITLE_FEE
from cims.patients.models import INSURANCE_TYPES

REGISTRATION, ORDER, PRESCRIPTION, BED_DAY = range(4)
SOURCES: Final = ("registration", "order", "prescription", "bed_day")
CASH, CARD, WECHAT, ALIPAY, INSURANCE = range(5)  # order of PAYMENT_METHODS
PROVIDERS: Final = (None, "pos", "wechat", "alipay", "medical_insurance")
_REF_PREFIX: Final = ("", "POS", "WX", "ALI", "YB")
INVOICE_STATUSES: Final = ("issued", "partly_paid", "paid")
ISSUED, PARTLY, PAID = range(3)
PAID_TODAY: Final = 8  # open bills settled at the cashier this morning


def _charges(
    e: Encounters,
    appts: Appointments,
    bed_ids: IntArray,
    bed_rows: IntArray,
    billables: list[Billable],
    staff: Staff,
    ref: Reference,
    clock: Clock,
) -> dict[str, np.ndarray]:
    """Every charge source as parallel arrays (encounter row, item, quantity, source, time)."""
    prices = ref.prices
    idx = prices.index
    visits = np.flatnonzero((e.kind == OUT) & (e.appointment >= 0))
    a = e.appointment[visits]
    fee = np.array([idx(c) for c in TITLE_FEE])[staff.doctor_title[appts.doctor[a]]]
    er = np.flatnonzero(e.kind == ER)
    parts = [
        (visits, fee, np.full(len(visits), 100), REGISTRATION, appts.ids[a], appts.arrived[a]),
        (
            er,
            np.full(len(er), idx("REG-ER")),
            np.full(len(er), 100),
            REGISTRATION,
            np.zeros(len(er), np.int64),
            e.start[er],
        ),
        (
            bed_rows,
            np.full(len(bed_rows), idx("BED-GEN")),
            stay_days(e, bed_rows, clock) * 100,
            BED_DAY,
            bed_ids,
            e.start[bed_rows],
        ),
    ]
    for source, b in zip((ORDER, PRESCRIPTION), billables, strict=True):
        live = np.flatnonzero(b.live)
        parts.append(
            (b.encounter[live], b.item[live], b.quantity[live], source, b.ids[live], b.when[live])
        )
    out = {
        "enc": np.concatenate([p[0] for p in parts]),
        "item": np.concatenate([p[1] for p in parts]),
        "qty": np.concatenate([p[2] for p in parts]).astype(np.int64),
        "source": np.concatenate([np.full(len(p[0]), p[3]) for p in parts]),
        "source_id": np.concatenate([p[4] for p in parts]).astype(np.int64),
        "when": np.concatenate([p[5] for p in parts]),
    }
    order = np.lexsort((out["when"], out["enc"]))
    return {k: v[order] for k, v in out.items()}


def build_bills(
    e: Encounters,
    appts: Appointments,
    people: People,
    staff: Staff,
    ref: Reference,
    clock: Clock,
    rng: np.random.Generator,
    *,
    bed_ids: IntArray,
    bed_rows: IntArray,
    billables: list[Billable],
    offsets: dict[str, int],
    portal: int,
) -> Iterator[tuple[str, Any]]:
    """Invoices, charges, invoice lines and payments, yielded one table at a time (FK order)."""
    c = _charges(e, appts, bed_ids, bed_rows, billables, staff, ref, clock)
    enc, item, qty = c["enc"], c["item"], c["qty"]
    day = c["when"].astype("datetime64[D]")
    price_id, unit = ref.prices.lookup(item, day)
    amount = (qty * unit + 50) // 100
    plan = people.insurance[e.patient[enc]]
    rate = np.where(e.kind[enc] == INP, ref.inpatient_bp[plan], ref.outpatient_bp[plan])
    rate = np.where(ref.excluded[plan, item], 0, rate)
    insured = (amount * rate + 5000) // 10_000
    patient_part = amount - insured
    n_c = len(enc)
    charge_ids = offsets["charges"] + 1 + np.arange(n_c)
    posted = np.minimum(c["when"] + minutes(np.full(n_c, 3.0)), clock.now)

    # One invoice per finished encounter, issued when the patient leaves.
    billed = ~e.open[enc]
    inv_enc, inv_of_charge = np.unique(enc[billed], return_inverse=True)
    n_i = len(inv_enc)
    total = np.bincount(inv_of_charge, weights=amount[billed], minlength=n_i).astype(np.int64)
    ins_total = np.bincount(inv_of_charge, weights=insured[billed], minlength=n_i).astype(np.int64)
    due_total = total - ins_total
    issued = np.minimum(e.end[inv_enc] + minutes(rng.uniform(2, 20, n_i)), clock.now)
    order = np.argsort(issued, kind="stable")
    rank = np.empty(n_i, np.int64)
    rank[order] = np.arange(n_i)
    invoice_ids = offsets["invoices"] + 1 + rank
    stay = e.kind[inv_enc] == INP
    u = rng.random(n_i)
    status = np.where(
        u < np.where(stay, 0.06, 0.02),
        ISSUED,
        np.where(u < np.where(stay, 0.11, 0.03), PARTLY, PAID),
    )
    status = np.where(due_total == 0, PAID, status)
    mine = np.flatnonzero((e.patient[inv_enc] == portal) & (due_total > 0))
    if len(mine):
        status[mine[-1]] = ISSUED  # the portal patient's latest bill is waiting to be paid online
    # Payments: one, or a deposit plus balance for some stays; part payments for a few.
    two = (status == PAID) & stay & (rng.random(n_i) < 0.25) & (due_total >= 200)
    first_share = np.where(
        status == PARTLY, rng.uniform(0.3, 0.8, n_i), np.where(two, rng.uniform(0.6, 0.9, n_i), 1.0)
    )
    first = np.maximum((due_total * first_share).astype(np.int64), 1)
    first = np.minimum(first, due_total)
    second_at = issued + minutes(rng.uniform(60, 14_400, n_i))
    late = two & (second_at > clock.now)
    status = np.where(late, PARTLY, status)
    two &= ~late
    pay1 = (status != ISSUED) & (first > 0)
    p_inv = np.concatenate([np.flatnonzero(pay1), np.flatnonzero(two)])
    p_amount = np.concatenate([first[pay1], (due_total - first)[two]])
    p_at = np.concatenate(
        [
            np.minimum(issued[pay1] + minutes(rng.uniform(1, 15, int(pay1.sum()))), clock.now),
            second_at[two],
        ]
    )
    # This morning the cashier settles a few older open bills, in every way people pay.
    open_bills = np.flatnonzero(
        (status != PAID)
        & (issued < clock.today.astype("datetime64[s]"))
        & (e.patient[inv_enc] != portal)
    )
    settle = (
        open_bills[rng.permutation(len(open_bills))[:PAID_TODAY]] if len(open_bills) else open_bills
    )
    paid_so_far = np.bincount(p_inv, weights=p_amount, minlength=n_i).astype(np.int64)
    morning = clock.today.astype("datetime64[s]") + minutes(
        rng.uniform(8 * 60, 8 * 60 + 55, len(settle))
    )
    p_inv = np.concatenate([p_inv, settle])
    p_amount = np.concatenate([p_amount, due_total[settle] - paid_so_far[settle]])
    p_at = np.concatenate([p_at, morning])
    status[settle] = PAID
    paid_amount = np.bincount(p_inv, weights=p_amount, minlength=n_i).astype(np.int64)
    status = np.where(paid_amount >= due_total, PAID, np.where(paid_amount > 0, PARTLY, ISSUED))

    n_p = len(p_inv)
    years = clock.years_since_start(p_at)
    p_patient = e.patient[inv_enc[p_inv]]
    employee = people.insurance[p_patient] == INSURANCE_TYPES.index("urban_employee")
    w = np.stack(
        [
            0.35 - 0.045 * years,
            0.25 - 0.02 * years,
            0.2 + 0.04 * years,
            0.12 + 0.025 * years,
            np.where(employee & ~stay[p_inv], 0.3, 0.0),
        ],
        axis=1,
    )
    method = (rng.random((n_p, 1)) * w.sum(axis=1, keepdims=True) >= np.cumsum(w, axis=1)).sum(
        axis=1
    )
    method = np.minimum(method, INSURANCE)
    today = p_at >= clock.today.astype("datetime64[s]")
    method[np.flatnonzero(today)] = np.arange(int(today.sum())) % 5  # every method shows up today
    method = np.where(today & (method == INSURANCE) & ~employee, CASH, method)
    online = np.isin(method, [WECHAT, ALIPAY]) & (rng.random(n_p) < 0.4) & ~today
    cashier = staff.cashier_id[rng.integers(0, len(staff.cashier_id), n_p)]
    cashier = np.where(
        today, staff.demo_ids.get(DEMO_CASHIER, int(cashier[0]) if n_p else 0), cashier
    )
    p_order = np.argsort(p_at, kind="stable")
    p_ids = np.empty(n_p, np.int64)
    p_ids[p_order] = offsets["payments"] + 1 + np.arange(n_p)

    descriptions = {code: f"{zh} / {en}" for code, zh, en, *_ in catalogue_items()}
    names = [descriptions[x] for x in ref.prices.codes]
    ymd = issued.astype("datetime64[D]").astype(str)
    numbers = [
        f"INV{d.replace('-', '')}{i:08d}"
        for d, i in zip(ymd.tolist(), invoice_ids.tolist(), strict=True)
    ]
    invoices = cl.table(
        {
            "id": cl.ints(invoice_ids),
            "invoice_no": cl.texts(numbers),
            "patient_id": cl.ints(e.patient[inv_enc] + 1),
            "encounter_id": cl.ints(e.ids[inv_enc]),
            "status": cl.labels(status, INVOICE_STATUSES),
            "issued_at": cl.times(clock, issued),
            "due_date": cl.dates(issued.astype("datetime64[D]") + 30),
            "total_amount": cl.money(total),
            "insurance_amount": cl.money(ins_total),
            "patient_amount": cl.money(due_total),
            "paid_amount": cl.money(paid_amount),
            "created_at": cl.times(clock, issued),
        }
    )
    yield "invoices", invoices
    del invoices, numbers
    charges = cl.table(
        {
            "id": cl.ints(charge_ids),
            "patient_id": cl.ints(e.patient[enc] + 1),
            "encounter_id": cl.ints(e.ids[enc]),
            "price_item_id": cl.ints(price_id),
            "source_type": cl.labels(c["source"], SOURCES),
            "source_id": cl.ints(c["source_id"], mask=c["source_id"] == 0),
            "service_date": cl.dates(day),
            "description": cl.labels(item, names),
            "quantity": cl.decimals(qty, 10, 2),
            "unit_price": cl.money(unit),
            "amount": cl.money(amount),
            "insurance_amount": cl.money(insured),
            "patient_amount": cl.money(patient_part),
            "posted_at": cl.times(clock, posted),
            "invoice_id": cl.ints(
                invoice_ids[np.minimum(np.searchsorted(inv_enc, enc), n_i - 1)]
                if n_i
                else np.zeros(n_c, np.int64),
                mask=~billed,
            ),
            "created_at": cl.times(clock, posted),
        }
    )
    yield "charges", charges
    del charges
    lines_rows = np.flatnonzero(billed)
    lines = cl.table(
        {
            "id": cl.ints(offsets["invoice_lines"] + 1 + np.arange(len(lines_rows))),
            "invoice_id": cl.ints(invoice_ids[inv_of_charge]),
            "charge_id": cl.ints(charge_ids[lines_rows]),
            "description": cl.labels(item[lines_rows], names),
            "quantity": cl.decimals(qty[lines_rows], 10, 2),
            "unit_price": cl.money(unit[lines_rows]),
            "amount": cl.money(amount[lines_rows]),
            "insurance_amount": cl.money(insured[lines_rows]),
            "patient_amount": cl.money(patient_part[lines_rows]),
        }
    )
    yield "invoice_lines", lines
    del lines
    refs = [
        None if method_ == CASH else f"{_REF_PREFIX[method_]}{pid:012d}"
        for method_, pid in zip(method.tolist(), p_ids.tolist(), strict=True)
    ]
    payments = cl.table(
        {
            "id": cl.ints(p_ids),
            "invoice_id": cl.ints(invoice_ids[p_inv]),
            "patient_id": cl.ints(p_patient + 1),
            "method": cl.labels(method, ("cash", "card", "wechat", "alipay", "insurance")),
            "amount": cl.money(p_amount),
            "refunded_amount": cl.money(np.zeros(n_p, np.int64)),
            "status": cl.const("succeeded", n_p),
            "idempotency_key": cl.texts([f"demo-payment-{pid:010d}" for pid in p_ids.tolist()]),
            "provider": cl.labels(method, PROVIDERS),
            "provider_reference": cl.texts(refs),
            "received_at": cl.times(clock, p_at),
            "cashier_id": cl.ints(cashier, mask=online),
            "created_at": cl.times(clock, p_at),
            "created_by_id": cl.ints(cashier, mask=online),
        }
    )
    yield "payments", payments
