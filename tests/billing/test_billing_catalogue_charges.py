"""The price catalogue and charges: effective dates, insurance shares, one charge per source."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.billing import catalogue, charges, invoices
from cims.billing.catalogue import BillingRefused
from cims.billing.models import Charge, InvoiceLine, PriceItem
from cims.clock import local_today
from cims.org.models import Bed, Ward
from cims.records.models import BedAssignment, Encounter, Order, Prescription
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied

D = Decimal


def _charge(session: Session, actor: object, patient_id: int, code: str, **kw: object) -> Charge:
    values: dict[str, object] = {
        "encounter_id": None,
        "quantity": D("1"),
        "source_type": "manual",
        "source_id": None,
        "service_date": local_today(),
    }
    values.update(kw)
    return charges.post_charge(
        session=session, actor=actor, patient_id=patient_id, price_code=code, **values
    )


def test_price_on_picks_the_row_in_effect_and_a_change_closes_the_old_row(
    session: Session,
) -> None:
    finance = factories.actor(session, "finance")
    factories.price_item(session, "CAT-1", unit_price="10.00", effective_from=dt.date(2020, 1, 1))
    start = local_today() + dt.timedelta(days=5)
    row = catalogue.change_price(
        session=session, actor=finance, code="CAT-1", new_price=D("12.50"), effective_from=start
    )
    assert row.unit_price == D("12.50") and row.effective_from == start
    before = catalogue.price_on(session=session, code="CAT-1", day=start - dt.timedelta(days=1))
    after = catalogue.price_on(session=session, code="CAT-1", day=start)
    assert (before.unit_price, after.unit_price) == (D("10.00"), D("12.50"))
    assert before.effective_to == start
    prices = catalogue.list_prices(session=session, actor=finance, day=start)
    assert [p.unit_price for p in prices if p.code == "CAT-1"] == [D("12.50")]
    audited = session.scalars(
        select(AuditEvent.action).where(AuditEvent.actor_id == finance.user_id)
    ).all()
    assert audited == ["billing.change_price"]  # the catalogue itself is not patient data


@pytest.mark.parametrize(
    ("price", "days", "key"),
    [
        ("-1.00", 1, "billing.price_invalid"),
        ("1.001", 1, "billing.price_invalid"),
        ("5.00", -1, "billing.price_backdated"),
    ],
)
def test_bad_price_changes_are_refused_and_write_nothing(
    session: Session, price: str, days: int, key: str
) -> None:
    finance = factories.actor(session, "finance")
    factories.price_item(session, "CAT-2", unit_price="10.00")
    with pytest.raises(BillingRefused) as refused:
        catalogue.change_price(
            session=session,
            actor=finance,
            code="CAT-2",
            new_price=D(price),
            effective_from=local_today() + dt.timedelta(days=days),
        )
    assert refused.value.key == key
    assert session.scalar(select(func.count()).where(PriceItem.code == "CAT-2")) == 1


def test_a_second_change_on_the_same_day_overlaps_and_unknown_codes_are_refused(
    session: Session,
) -> None:
    finance = factories.actor(session, "finance")
    factories.price_item(session, "CAT-3")
    day = local_today() + dt.timedelta(days=2)
    catalogue.change_price(
        session=session, actor=finance, code="CAT-3", new_price=D("1.00"), effective_from=day
    )
    with pytest.raises(BillingRefused, match=r"billing\.price_change_overlaps"):
        catalogue.change_price(
            session=session, actor=finance, code="CAT-3", new_price=D("2.00"), effective_from=day
        )
    with pytest.raises(BillingRefused, match=r"billing\.price_unknown"):
        catalogue.change_price(
            session=session, actor=finance, code="NOPE", new_price=D("2.00"), effective_from=day
        )


def test_only_price_managers_change_prices(session: Session) -> None:
    factories.price_item(session, "CAT-4")
    with pytest.raises(AccessDenied):
        catalogue.change_price(
            session=session,
            actor=factories.actor(session, "doctor"),
            code="CAT-4",
            new_price=D("1.00"),
            effective_from=local_today(),
        )


def test_a_price_change_never_rewrites_past_charges_or_invoices(session: Session) -> None:
    finance = factories.actor(session, "finance")
    factories.price_item(session, "CAT-5", unit_price="80.00")
    patient = factories.patient(session, insurance_type="self_pay")
    charge = _charge(session, finance, patient.id, "CAT-5")
    bill = invoices.create_invoice(session=session, actor=finance, patient_id=patient.id)
    invoices.issue_invoice(session=session, actor=finance, invoice_id=bill.invoice_id)
    catalogue.change_price(
        session=session, actor=finance, code="CAT-5", new_price=D("120.00"),
        effective_from=local_today() + dt.timedelta(days=1),
    )  # fmt: skip
    later = _charge(
        session, finance, patient.id, "CAT-5", service_date=local_today() + dt.timedelta(days=1)
    )
    session.expire_all()
    again = invoices.get_invoice(session=session, actor=finance, invoice_id=bill.invoice_id)
    assert again.total_amount == D("80.00") and again.lines[0].unit_price == D("80.00")
    assert session.get(Charge, charge.id).amount == D("80.00")  # type: ignore[union-attr]
    assert later.unit_price == D("120.00") and later.amount == D("120.00")
    line = session.scalar(select(InvoiceLine).where(InvoiceLine.charge_id == charge.id))
    assert line is not None and line.amount == D("80.00")


def test_insurance_share_by_type_inpatient_rate_and_excluded_categories(
    session: Session,
) -> None:
    finance = factories.actor(session, "finance")
    factories.insurance_plan(
        session, "urban_employee", coverage="0.7000", inpatient="0.8500",
        excluded=("registration",),
    )  # fmt: skip
    factories.price_item(session, "CAT-LAB", unit_price="33.33", category="lab")
    factories.price_item(session, "CAT-REG", unit_price="20.00", category="registration")
    insured = factories.patient(session, insurance_type="urban_employee")
    lab = _charge(session, finance, insured.id, "CAT-LAB", quantity=D("3"))
    assert (lab.amount, lab.insurance_amount, lab.patient_amount) == (
        D("99.99"), D("69.99"), D("30.00"),
    )  # fmt: skip
    reg = _charge(session, finance, insured.id, "CAT-REG")
    assert (reg.insurance_amount, reg.patient_amount) == (D("0.00"), D("20.00"))
    stay = Encounter(
        patient_id=insured.id, encounter_type="inpatient",
        department_id=factories.department(session).id, started_at=utcnow(),
    )  # fmt: skip
    session.add(stay)
    session.flush()
    inpatient = _charge(session, finance, insured.id, "CAT-LAB", encounter_id=stay.id)
    assert inpatient.insurance_amount == D("28.33")  # 33.33 x 0.85 = 28.3305
    self_pay = factories.patient(session, insurance_type="self_pay")
    own = _charge(session, finance, self_pay.id, "CAT-LAB")
    assert (own.insurance_amount, own.patient_amount) == (D("0.00"), D("33.33"))


def test_a_clinical_source_is_charged_once_and_bad_input_is_refused(session: Session) -> None:
    finance = factories.actor(session, "finance")
    factories.price_item(session, "CAT-6")
    patient = factories.patient(session)
    first = _charge(session, finance, patient.id, "CAT-6", source_type="order", source_id=777)
    with pytest.raises(BillingRefused, match=r"billing\.already_charged"):
        _charge(session, finance, patient.id, "CAT-6", source_type="order", source_id=777)
    for bad, key in (
        ({"quantity": D("0")}, "billing.quantity_invalid"),
        ({"source_type": "gift"}, "billing.source_invalid"),
        ({"service_date": dt.date(2000, 1, 1)}, "billing.price_unknown"),
    ):
        with pytest.raises(BillingRefused, match=key):
            _charge(session, finance, patient.id, "CAT-6", **bad)
    count = session.scalar(select(func.count()).where(Charge.patient_id == patient.id))
    assert count == 1
    charges.void_charge(session=session, actor=finance, charge_id=first.id, reason="wrong item")
    again = _charge(session, finance, patient.id, "CAT-6", source_type="order", source_id=777)
    assert again.id != first.id  # a voided charge frees its source


def test_the_unique_index_backs_up_the_check(session: Session) -> None:
    """Even past the service check, the partial unique index refuses a second live charge."""
    finance = factories.actor(session, "finance")
    factories.price_item(session, "CAT-7")
    patient = factories.patient(session)
    _charge(session, finance, patient.id, "CAT-7", source_type="bed_day", source_id=9)
    original = charges._already_charged
    charges._already_charged = lambda *a, **k: False  # type: ignore[assignment]
    try:
        with pytest.raises(BillingRefused, match=r"billing\.already_charged"):
            _charge(session, finance, patient.id, "CAT-7", source_type="bed_day", source_id=9)
    finally:
        charges._already_charged = original
    assert session.scalar(select(func.count()).where(Charge.patient_id == patient.id)) == 1


def test_void_charge_needs_a_reason_and_an_uninvoiced_charge(session: Session) -> None:
    finance = factories.actor(session, "finance")
    factories.price_item(session, "CAT-8")
    patient = factories.patient(session)
    charge = _charge(session, finance, patient.id, "CAT-8")
    with pytest.raises(BillingRefused, match=r"billing\.reason_required"):
        charges.void_charge(session=session, actor=finance, charge_id=charge.id, reason=" ")
    invoices.create_invoice(session=session, actor=finance, patient_id=patient.id)
    with pytest.raises(BillingRefused, match=r"billing\.charge_invoiced"):
        charges.void_charge(session=session, actor=finance, charge_id=charge.id, reason="oops")
    with pytest.raises(AccessDenied):
        charges.void_charge(
            session=session, actor=factories.actor(session, "nurse"), charge_id=charge.id,
            reason="oops",
        )  # fmt: skip


def _encounter_with_work(session: Session) -> tuple[Encounter, dict[str, int]]:
    dep = factories.department(session)
    doctor = factories.user(session, "doctor")
    doctor.title = "主治医师"
    patient = factories.patient(session, insurance_type="self_pay")
    started = utcnow() - dt.timedelta(days=3)
    encounter = Encounter(
        patient_id=patient.id, encounter_type="inpatient", department_id=dep.id,
        attending_id=doctor.id, started_at=started,
    )  # fmt: skip
    session.add(encounter)
    session.flush()
    for code, price, category in (
        ("REG-ATTEND", "30.00", "registration"),
        ("LAB-CBC", "25.00", "lab"),
        ("DRUG-MET", "0.50", "drug"),
        ("BED-GEN", "50.00", "bed"),
        ("NURS-L2", "20.00", "nursing"),
    ):
        factories.price_item(session, code, unit_price=price, category=category)
    lab = Order(
        patient_id=patient.id, encounter_id=encounter.id, order_type="lab", code="LAB-CBC",
        description="CBC", ordered_at=started, price_item_code="LAB-CBC", status="completed",
    )  # fmt: skip
    cancelled = Order(
        patient_id=patient.id, encounter_id=encounter.id, order_type="lab", code="LAB-CBC",
        description="CBC", ordered_at=started, price_item_code="LAB-CBC", status="cancelled",
    )  # fmt: skip
    nursing = Order(
        patient_id=patient.id, encounter_id=encounter.id, order_type="nursing", code="NURS-L2",
        description="Nursing", ordered_at=started, price_item_code="NURS-L2",
    )  # fmt: skip
    rx = Prescription(
        patient_id=patient.id, encounter_id=encounter.id, drug_code="DRUG-MET",
        drug_name="二甲双胍 / Metformin", dose=D("500"), dose_unit="mg", route="oral",
        frequency="bid", duration_days=30, quantity=D("60"), prescribed_at=started,
    )  # fmt: skip
    ward = Ward(code="BILL-W", name_zh="病区", name_en="Ward", department_id=dep.id)
    session.add_all([lab, cancelled, nursing, rx, ward])
    session.flush()
    bed = Bed(ward_id=ward.id, code="01")
    session.add(bed)
    session.flush()
    session.add(
        BedAssignment(
            encounter_id=encounter.id, patient_id=patient.id, bed_id=bed.id, start_at=started
        )
    )
    session.flush()
    return encounter, {"lab": lab.id, "rx": rx.id}


def test_posting_an_encounter_charges_each_source_once(session: Session) -> None:
    finance = factories.actor(session, "finance")
    encounter, ids = _encounter_with_work(session)
    result = charges.post_charges_for_encounter(
        session=session, actor=finance, encounter_id=encounter.id
    )
    posted = {(c.source_type, c.description.split(" / ")[0]): c for c in result.posted}
    assert {c.source_type for c in result.posted} == {"order", "prescription", "bed_day"}
    bed = next(c for c in result.posted if c.source_type == "bed_day")
    assert bed.quantity == D("3") and bed.amount == D("150.00")
    rx = next(c for c in result.posted if c.source_type == "prescription")
    assert rx.source_id == ids["rx"] and rx.amount == D("30.00")
    orders = [c for c in result.posted if c.source_type == "order"]
    assert len(orders) == 2  # the cancelled order is not charged
    assert posted  # every row described
    rerun = charges.post_charges_for_encounter(
        session=session, actor=finance, encounter_id=encounter.id
    )
    assert rerun.posted == [] and rerun.unpriced == []


def test_an_outpatient_visit_pays_the_registration_fee_of_the_doctors_title(
    session: Session,
) -> None:
    finance = factories.actor(session, "finance")
    doctor = factories.user(session, "doctor")
    doctor.title = "主治医师"
    factories.price_item(session, "REG-ATTEND", unit_price="30.00", category="registration")
    patient = factories.patient(session, insurance_type="self_pay")
    visit = Encounter(
        patient_id=patient.id, encounter_type="outpatient",
        department_id=factories.department(session).id, attending_id=doctor.id,
        started_at=utcnow(),
    )  # fmt: skip
    session.add(visit)
    session.flush()
    result = charges.post_charges_for_encounter(
        session=session, actor=finance, encounter_id=visit.id
    )
    [fee] = result.posted
    assert fee.source_type == "registration" and fee.amount == D("30.00")
    assert (
        charges.post_charges_for_encounter(
            session=session, actor=finance, encounter_id=visit.id
        ).posted
        == []
    )
    with pytest.raises(AccessDenied):
        charges.post_charges_for_encounter(
            session=session, actor=factories.actor(session, "doctor"), encounter_id=visit.id
        )
