"""Reference data of the demo hospital: departments, insurance plans, price catalogue, FAQ."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import numpy as np
from sqlalchemy.orm import Session

from cims.billing.models import InsurancePlan, PriceItem
from cims.demo.vec import BoolArray, IntArray
from cims.demo.vocab import DEPARTMENTS, DRUGS
from cims.engagement.models import FaqEntry
from cims.org.models import Department
from cims.patients.models import INSURANCE_TYPES

# (type, zh, en, outpatient rate, inpatient rate, categories the plan never pays)
PLANS: Final = (
    ("urban_employee", "城镇职工基本医疗保险", "Urban employee basic medical insurance",
     "0.7000", "0.8500", ()),
    ("urban_rural_resident", "城乡居民基本医疗保险", "Urban and rural resident medical insurance",
     "0.5000", "0.7000", ("registration",)),
    ("commercial", "商业健康保险", "Commercial health insurance", "0.8000", "0.8000",
     ("registration",)),
    ("public", "公费医疗", "Public medical care", "0.9000", "0.9500", ()),
    ("self_pay", "自费", "Self-pay", "0.0000", "0.0000", ()),
)  # fmt: skip

# (code, zh, en, category, unit, price in cents, price after the catalogue change or None)
_SERVICES: Final = (
    ("REG-CHIEF", "主任医师挂号费", "Registration - chief physician", "registration", "次",
     5000, 6000),
    ("REG-ASSOC", "副主任医师挂号费", "Registration - associate chief physician", "registration",
     "次", 3000, 3500),
    ("REG-ATTEND", "主治医师挂号费", "Registration - attending physician", "registration", "次",
     1500, 2000),
    ("REG-RES", "住院医师挂号费", "Registration - resident physician", "registration", "次",
     1000, None),
    ("REG-ER", "急诊挂号费", "Emergency registration", "registration", "次", 2000, 2500),
    ("CONS-MDT", "院内会诊费", "Inpatient specialist consultation", "consultation", "次", 4000,
     None),
    ("CONS-ONLINE", "在线咨询费", "Online consultation", "consultation", "次", 2000, None),
    ("LAB-HBA1C", "糖化血红蛋白测定", "HbA1c", "lab", "项", 7000, 5500),
    ("LAB-GLU", "空腹血糖测定", "Fasting glucose", "lab", "项", 800, None),
    ("LAB-RENAL", "肾功能（肌酐、血钾）", "Renal panel (creatinine, potassium)", "lab", "组",
     3000, None),
    ("LAB-LIPID", "血脂四项", "Lipid panel", "lab", "组", 4500, 4000),
    ("LAB-CBC", "血常规", "Complete blood count", "lab", "次", 2000, None),
    ("LAB-BNP", "B型钠尿肽测定", "BNP", "lab", "项", 18000, 15000),
    ("IMG-CXR", "胸部X线摄影", "Chest X-ray", "imaging", "次", 8000, None),
    ("IMG-ECG", "常规心电图", "Electrocardiogram", "imaging", "次", 2500, None),
    ("IMG-ECHO", "心脏彩色多普勒超声", "Echocardiography", "imaging", "次", 26000, 24000),
    ("IMG-CT-HEAD", "头颅CT平扫", "CT head", "imaging", "次", 28000, 25000),
    ("IMG-US-ABD", "腹部超声", "Abdominal ultrasound", "imaging", "次", 12000, None),
    ("IMG-XR-LIMB", "四肢X线摄影", "Limb X-ray", "imaging", "次", 7000, None),
    ("PROC-APPY", "腹腔镜阑尾切除术", "Laparoscopic appendectomy", "procedure", "次", 320000,
     None),
    ("PROC-CHOLE", "腹腔镜胆囊切除术", "Laparoscopic cholecystectomy", "procedure", "次",
     480000, None),
    ("PROC-HERNIA", "腹股沟疝修补术", "Inguinal hernia repair", "procedure", "次", 260000, None),
    ("PROC-TKA", "全膝关节置换术", "Total knee replacement", "procedure", "次", 1200000,
     1100000),
    ("PROC-ORIF", "骨折切开复位内固定术", "Open reduction and internal fixation", "procedure",
     "次", 650000, None),
    ("PROC-PCI", "经皮冠状动脉介入治疗", "Percutaneous coronary intervention", "procedure", "次",
     980000, 900000),
    ("PROC-CS", "剖宫产术", "Caesarean section", "procedure", "次", 350000, None),
    ("PROC-VD", "阴道分娩", "Vaginal delivery", "procedure", "次", 150000, None),
    ("PROC-SUTURE", "清创缝合术", "Wound debridement and suture", "procedure", "次", 18000,
     None),
    ("PROC-NEB", "雾化吸入", "Nebulisation", "procedure", "次", 1500, None),
    ("BED-GEN", "普通病房床位费", "General ward bed-day", "bed", "日", 4000, 5000),
    ("NURS-L1", "一级护理", "Level 1 nursing care", "nursing", "日", 3500, None),
    ("NURS-L2", "二级护理", "Level 2 nursing care", "nursing", "日", 2000, None),
)  # fmt: skip


@dataclass(frozen=True)
class PriceTable:
    """Vectorised catalogue lookup: the price row in force on a service date."""

    codes: tuple[str, ...]
    categories: tuple[str, ...]
    names: tuple[str, ...]
    old_id: IntArray
    old_cents: IntArray
    new_id: IntArray  # -1 where the price never changed
    new_cents: IntArray
    change_day: np.datetime64

    def index(self, code: str) -> int:
        """Position of a catalogue code."""
        return self.codes.index(code)

    def lookup(self, item: IntArray, day: np.ndarray) -> tuple[IntArray, IntArray]:
        """(price_item id, unit price in cents) per row, at each row's service day."""
        newer = (self.new_id[item] >= 0) & (day.astype("datetime64[D]") >= self.change_day)
        ids: IntArray = np.where(newer, self.new_id[item], self.old_id[item])
        cents: IntArray = np.where(newer, self.new_cents[item], self.old_cents[item])
        return ids, cents


@dataclass(frozen=True)
class Reference:
    """Ids and lookups of the reference rows, for the bulk generators."""

    dept_ids: dict[str, int]
    prices: PriceTable
    insurance_types: tuple[str, ...]
    outpatient_bp: IntArray  # coverage in basis points (1/10,000) per insurance type
    inpatient_bp: IntArray
    excluded: BoolArray  # insurance type x price category

    @property
    def dept_array(self) -> IntArray:
        """Department ids in vocab.DEPARTMENTS order (index -> id)."""
        return np.array([self.dept_ids[d.code] for d in DEPARTMENTS], np.int64)


def catalogue_items() -> list[tuple[str, str, str, str, str, int, int | None]]:
    """Every catalogue item: services, then a drug item per vocabulary drug."""
    items = list(_SERVICES)
    for drug in DRUGS:
        zh, _, en = drug.name.partition(" / ")
        items.append((f"DRUG-{drug.key}", zh, en, "drug", drug.pack, drug.price, drug.new_price))
    return items


def load_reference(session: Session, *, history_start: dt.date, reference: dt.date) -> Reference:
    """Insert departments, insurance plans, the price catalogue and the FAQ; return lookups."""
    departments = [
        Department(code=d.code, name_zh=d.zh, name_en=d.en, kind=d.kind) for d in DEPARTMENTS
    ]
    session.add_all(departments)
    for ins, zh, en, out_rate, in_rate, never in PLANS:
        session.add(
            InsurancePlan(
                insurance_type=ins,
                name_zh=zh,
                name_en=en,
                coverage_rate=Decimal(out_rate),
                inpatient_coverage_rate=Decimal(in_rate),
                excluded_categories=list(never),
            )
        )
    # The catalogue opened before the history; one price round changed two years ago.
    opened = dt.date(history_start.year - 1, 1, 1)
    changed = dt.date(reference.year - 2, reference.month, 1)
    old_rows: list[PriceItem] = []
    new_rows: list[PriceItem | None] = []
    items = catalogue_items()
    for code, zh, en, category, unit, cents, new_cents in items:
        old = PriceItem(
            code=code, name_zh=zh, name_en=en, category=category, unit=unit,
            unit_price=Decimal(cents) / 100, effective_from=opened,
            effective_to=changed if new_cents is not None else None,
        )  # fmt: skip
        new = None
        if new_cents is not None:
            new = PriceItem(
                code=code, name_zh=zh, name_en=en, category=category, unit=unit,
                unit_price=Decimal(new_cents) / 100, effective_from=changed,
            )  # fmt: skip
        old_rows.append(old)
        new_rows.append(new)
    session.add_all(old_rows)
    session.add_all([r for r in new_rows if r is not None])
    session.add_all(FaqEntry(language=lang, topic=t, question=q, answer=a) for lang, t, q, a in FAQ)
    session.flush()
    prices = PriceTable(
        codes=tuple(i[0] for i in items),
        categories=tuple(i[3] for i in items),
        names=tuple(i[1] for i in items),
        old_id=np.array([r.id for r in old_rows], np.int64),
        old_cents=np.array([i[5] for i in items], np.int64),
        new_id=np.array([r.id if r else -1 for r in new_rows], np.int64),
        new_cents=np.array([i[6] if i[6] is not None else i[5] for i in items], np.int64),
        change_day=np.datetime64(changed, "D"),
    )
    order = list(INSURANCE_TYPES)
    plans = {p[0]: p for p in PLANS}
    excluded = np.zeros((len(order), len(prices.codes)), bool)
    for t, ins in enumerate(order):
        for j, category in enumerate(prices.categories):
            excluded[t, j] = category in plans[ins][5]
    return Reference(
        dept_ids={d.code: d.id for d in departments},
        prices=prices,
        insurance_types=tuple(order),
        outpatient_bp=np.array([round(float(plans[t][3]) * 10_000) for t in order], np.int64),
        inpatient_bp=np.array([round(float(plans[t][4]) * 10_000) for t in order], np.int64),
        excluded=excluded,
    )


FAQ: Final = (
    ("zh", "booking", "如何预约挂号？",
     "可通过患者门户“预约挂号”页面、电话或到门诊挂号窗口预约。选择科室、医生和时段后确认即可，"
     "可预约今天起14天内的号源。"),
    ("zh", "cancellation", "如何取消预约？",
     "在患者门户“我的预约”中点击取消，或致电挂号处。请至少提前2小时取消；"
     "多次爽约可能影响后续预约。"),
    ("zh", "reschedule", "可以改约吗？",
     "可以。在“我的预约”中选择改约，系统会释放原号源并为您预约新的时段。"),
    ("zh", "payment", "支持哪些支付方式？",
     "支持现金、银行卡、微信支付、支付宝，以及医保个人账户。门户中可在线支付未结账单。"),
    ("zh", "insurance", "医保如何报销？",
     "城镇职工医保门诊报销约70%、住院约85%；城乡居民医保门诊约50%、住院约70%。"
     "结算时系统自动计算医保支付部分，您只需支付个人自付部分。"),
    ("zh", "parking", "医院有停车场吗？",
     "门诊楼地下设有停车场，前30分钟免费，之后每小时5元。建议乘坐公共交通。"),
    ("zh", "visiting_hours", "住院病人探视时间是什么时候？",
     "每日15:00–20:00，每位患者每次限1名探视者。重症监护病房探视请咨询护士站。"),
    ("zh", "reports", "如何查看检查检验报告？",
     "化验结果一般当天或次日出具，可在患者门户“我的健康档案”中查看，也可在门诊自助机打印。"),
    ("zh", "documents", "就诊需要带什么证件？",
     "请携带身份证（或医保卡）。首次就诊需登记身份信息和联系电话。"),
    ("zh", "emergency", "急诊是24小时开放的吗？",
     "是的，急诊科全天24小时接诊。危及生命时请直接拨打120。"),
    ("zh", "consultation", "如何进行在线咨询？",
     "登录患者门户，在“在线咨询”中选择科室或医生并描述问题，医生一般在24小时内回复。"
     "在线咨询不能替代急诊就医。"),
    ("zh", "refund", "如何申请退费？",
     "请持缴费凭证到收费窗口申请，退费经审核后原路退回。"),
    ("zh", "opening_hours", "门诊开诊时间？",
     "周一至周五 8:00–12:00、13:30–17:00，周六上午部分科室开诊。"),
    ("zh", "records_copy", "如何复印病历？",
     "出院后可携带身份证到病案室申请复印，或委托他人携带授权书办理。"),
    ("zh", "prescription", "慢性病可以开长期处方吗？",
     "病情稳定的慢性病患者可在复诊时开具最长30天的处方，必要时可续方。"),
    ("en", "booking", "How do I book an appointment?",
     "Use the patient portal's Book appointment page, call us, or visit the registration desk. "
     "Choose a department, doctor and time; slots are open for today and the next 14 days."),
    ("en", "cancellation", "How do I cancel an appointment?",
     "Cancel under My appointments in the portal or call the registration desk, at least two "
     "hours in advance. Repeated no-shows may limit future bookings."),
    ("en", "reschedule", "Can I change my appointment?",
     "Yes. Choose Reschedule under My appointments; your old slot is released and a new one "
     "is booked."),
    ("en", "payment", "Which payment methods are accepted?",
     "Cash, bank card, WeChat Pay, Alipay and your medical-insurance personal account. Open "
     "bills can be paid online in the portal."),
    ("en", "insurance", "How much does insurance cover?",
     "Urban employee insurance covers about 70% of outpatient and 85% of inpatient costs; "
     "urban and rural resident insurance about 50% and 70%. The cashier system calculates the "
     "insured share; you pay only your own part."),
    ("en", "parking", "Is there parking?",
     "There is an underground car park below the outpatient building: the first 30 minutes are "
     "free, then CNY 5 per hour. Public transport is recommended."),
    ("en", "visiting_hours", "What are the visiting hours?",
     "Daily 15:00-20:00, one visitor per patient at a time. For intensive care, ask the nurses' "
     "station."),
    ("en", "reports", "Where can I see my test results?",
     "Most lab results are ready the same or next day. See them under My health record in the "
     "portal or print them at a self-service kiosk."),
    ("en", "documents", "What should I bring to my visit?",
     "Your resident ID card or medical-insurance card. First-time patients register their "
     "identity and a contact phone number."),
    ("en", "emergency", "Is the emergency department open 24 hours?",
     "Yes, around the clock. In a life-threatening emergency call 120."),
    ("en", "consultation", "How does online consultation work?",
     "Sign in to the portal, open Online consultation, choose a department or doctor and "
     "describe your question. Doctors usually reply within 24 hours. It is not for emergencies."),
    ("en", "refund", "How do I get a refund?",
     "Bring your receipt to the cashier. After approval the refund goes back the way you paid."),
    ("en", "opening_hours", "When are the outpatient clinics open?",
     "Monday to Friday 8:00-12:00 and 13:30-17:00; some clinics also open on Saturday mornings."),
    ("en", "records_copy", "How do I get a copy of my medical record?",
     "After discharge, bring your ID to the medical records office, or send someone with a "
     "signed authorisation."),
    ("en", "prescription", "Can I get long-term prescriptions for a chronic disease?",
     "Stable chronic patients can receive up to 30 days of medication per follow-up visit, "
     "renewed when needed."),
)  # fmt: skip
