"""Synthea claims (newest layout) -> invoices; claims_transactions -> charges and payments.

A claim becomes an issued invoice of its encounter; CHARGE transactions become charges on
it (priced against one catalogue item, ``SYNTHEA-CLAIM``, at the amount Synthea billed);
PAYMENT transactions become payments (amount from PAYMENTS; CASH -> cash, CC -> card, a
cheque against an insurance id -> insurance, other cheques -> card). Adjustments and
transfers have no CIMS counterpart: they are rejected with that reason, so the report
accounts for every row. Totals are recomputed from the
charges and payments that were imported (paid capped at the patient's share).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from cims.interop.synthea_steps import (
    Context,
    apply_checks,
    assign_ids,
    day,
    insert,
    link,
    next_id,
    reject,
    reject_duplicate_keys,
    require,
    require_number,
    require_time,
    resolve,
    ts,
)

PRICE_CODE: Final = "SYNTHEA-CLAIM"


def load_claims(ctx: Context) -> Iterator[None]:
    """claims.csv -> issued invoices (totals filled in from the transactions)."""
    table = "stg_claims"
    require(ctx, table, "id")
    require(ctx, table, "patientid")
    resolve(ctx, table, "patientid", "patients", "patient_id")
    reject(ctx, table, "patient_id IS NULL", "PATIENTID not found")
    resolve(ctx, table, "appointmentid", "encounters", "encounter_id")
    reject(
        ctx, table, "appointmentid IS NOT NULL AND encounter_id IS NULL", "APPOINTMENTID not found"
    )
    require_time(ctx, table, "servicedate")
    # Claims are referred to by their transactions: a key must stand for one claim.
    reject_duplicate_keys(ctx, table)
    assign_ids(ctx, table, "claims", "invoices", "new_id")
    yield
    insert(
        ctx,
        "invoices",
        "id, invoice_no, patient_id, encounter_id, status, issued_at, due_date, created_by_id,"
        " total_amount, insurance_amount, patient_amount, paid_amount",
        "SELECT new_id, 'SY-' || src, patient_id, encounter_id, 'issued',"
        f" {ts('servicedate')}, {day('servicedate')} + 30, %(actor)s, 0, 0, 0, 0"
        f" FROM {table} WHERE new_id IS NOT NULL",
        {"actor": ctx.actor_id},
        staged=table,
    )
    link(ctx, table, "claims", "invoices", "new_id")


def _price_item(ctx: Context) -> int:
    ctx.cursor.execute("SELECT id FROM price_items WHERE code = %s LIMIT 1", (PRICE_CODE,))
    found = ctx.cursor.fetchone()
    if found:
        return int(found[0])
    ctx.cursor.execute(
        "INSERT INTO price_items (code, name_zh, name_en, category, unit, unit_price,"
        " effective_from, created_by_id) VALUES (%s, %s, %s, 'procedure', 'item', 0,"
        " '1900-01-01', %s) RETURNING id",
        (PRICE_CODE, "外部导入费用", "Imported claim line", ctx.actor_id),
    )
    row = ctx.cursor.fetchone()
    return int(row[0])


def load_claims_transactions(ctx: Context) -> Iterator[None]:
    """claims_transactions.csv -> charges (CHARGE) and payments (PAYMENT) of the invoices."""
    table = "stg_claims_transactions"
    require(ctx, table, "id")
    # Synthea writes a payment's amount in PAYMENTS and leaves AMOUNT empty.
    ctx.execute(f"UPDATE {table} SET amount = payments WHERE type = 'PAYMENT' AND amount IS NULL")
    resolve(ctx, table, "claimid", "claims", "invoice_id")
    reject(ctx, table, "invoice_id IS NULL", "CLAIMID not found")
    reject(ctx, table, "type NOT IN ('CHARGE', 'PAYMENT')", "TYPE not imported (no CIMS row)")
    require(ctx, table, "amount")
    require_number(ctx, table, "amount")
    require_number(ctx, table, "units")
    require_time(ctx, table, "fromdate")
    require_number(ctx, table, "unitamount")
    amount = "CASE WHEN amount ~ '^-?[0-9.]+$' THEN amount::numeric END"
    reject(ctx, table, f"type = 'PAYMENT' AND {amount} <= 0", "payment not positive")
    reject(ctx, table, f"type = 'CHARGE' AND {amount} < 0", "negative charge")
    # Charges and payments each draw from their own table's sequence.
    apply_checks(
        ctx,
        table,
        source_table="claims_transactions",
        ids={
            "charge_id_new": "CASE WHEN type = 'PAYMENT'"
            f" THEN {next_id(ctx, 'payments')} ELSE {next_id(ctx, 'charges')} END"
        },
    )
    yield
    price_item = _price_item(ctx)
    insert(
        ctx,
        "charges",
        "id, patient_id, encounter_id, price_item_id, source_type, service_date, description,"
        " quantity, unit_price, amount, insurance_amount, patient_amount, posted_at,"
        " invoice_id, created_by_id",
        "SELECT s.charge_id_new, i.patient_id, i.encounter_id, %(price)s, 'manual',"
        f" {day('s.fromdate')}, coalesce(s.notes, s.procedurecode, 'claim line'),"
        " least(coalesce(s.units::numeric, 1), 99999999),"
        " coalesce(s.unitamount, s.amount)::numeric,"
        f" s.amount::numeric, 0, s.amount::numeric, {ts('s.fromdate')}, s.invoice_id, %(actor)s"
        f" FROM {table} s JOIN invoices i ON i.id = s.invoice_id"
        " WHERE s.charge_id_new IS NOT NULL AND s.type = 'CHARGE'",
        {"price": price_item, "actor": ctx.actor_id},
        staged=table,
    )
    insert(
        ctx,
        "payments",
        "id, invoice_id, patient_id, method, amount, status, idempotency_key, provider,"
        " provider_reference, received_at, created_by_id",
        "SELECT s.charge_id_new, s.invoice_id, i.patient_id,"
        " CASE WHEN upper(s.method) = 'CASH' THEN 'cash'"
        " WHEN upper(s.method) = 'CC' OR s.patientinsuranceid IS NULL THEN 'card'"
        " ELSE 'insurance' END, s.amount::numeric, 'succeeded', 'synthea:' || s.src,"
        f" 'synthea', s.src, {ts('s.fromdate')}, %(actor)s"
        f" FROM {table} s JOIN invoices i ON i.id = s.invoice_id"
        " WHERE s.charge_id_new IS NOT NULL AND s.type = 'PAYMENT'",
        {"actor": ctx.actor_id},
        staged=table,
    )
    ctx.execute(
        "INSERT INTO import_links (source_system, source_table, source_id, target_table,"
        " target_id, run_id) SELECT 'synthea', 'claims_transactions', src,"
        " CASE type WHEN 'CHARGE' THEN 'charges' ELSE 'payments' END, charge_id_new, %(run)s"
        f" FROM {table} WHERE charge_id_new IS NOT NULL",
        {"run": ctx.run_id},
    )
    ctx.execute(
        "UPDATE invoices v SET total_amount = t.total, patient_amount = t.total,"
        " paid_amount = least(t.paid, t.total),"
        " status = CASE WHEN t.total > 0 AND t.paid >= t.total THEN 'paid'"
        " WHEN t.paid > 0 THEN 'partly_paid' ELSE 'issued' END"
        " FROM (SELECT i.id,"
        " coalesce((SELECT sum(amount) FROM charges c WHERE c.invoice_id = i.id), 0) AS total,"
        " coalesce((SELECT sum(amount) FROM payments p WHERE p.invoice_id = i.id), 0) AS paid"
        f" FROM invoices i WHERE i.id IN (SELECT DISTINCT invoice_id FROM {table}"
        " WHERE charge_id_new IS NOT NULL)) t WHERE v.id = t.id"
    )
