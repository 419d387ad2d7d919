"""The portal assistant: a rule-based guide over the hospital's own FAQ (no outside AI).

A question is first checked for an intent ("book", "pay", "my appointments", "my results"),
which links to the portal page that does it; then matched against ``faq_entries`` in the
question's language by keywords and fuzzy similarity (rapidfuzz). When nothing matches well
enough it says so and offers an online consultation instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from rapidfuzz import fuzz
from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.engagement.errors import refuse_if
from cims.engagement.models import FaqEntry
from cims.security import audit
from cims.security.rbac import AccessDenied, Actor, Privilege, requires
from cims.text_limits import MAX_ASSISTANT_QUESTION, TOO_LONG_KEY, too_long

MIN_SCORE: Final = 62
_CJK: Final = re.compile(r"[\u4e00-\u9fff]")

# intent -> (keywords in either language, the portal page that does it); first match wins.
INTENTS: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    "my_appointments": (
        ("我的预约", "我的挂号", "预约记录", "my appointment", "my booking", "upcoming"),
        "pages/portal_book.py",
    ),
    "my_results": (
        ("检查结果", "化验结果", "报告", "结果", "my result", "lab result", "test result"),
        "pages/patient_home.py",
    ),
    "book": (
        ("预约", "挂号", "约个", "book", "make an appointment", "appointment"),
        "pages/portal_book.py",
    ),
    "pay": (("缴费", "付款", "支付", "交费", "pay", "bill"), "pages/portal_pay.py"),
}
CONSULT_PAGE: Final = "pages/portal_messages.py"

# topic -> keywords that point at it (both languages), beside fuzzy matching of the question.
KEYWORDS: Final[dict[str, tuple[str, ...]]] = {
    "hours": ("几点", "开门", "时间", "营业", "门诊时间", "hours", "open", "close"),
    "bring": ("带什么", "携带", "证件", "身份证", "医保卡", "bring", "documents", "id card"),
    "location": ("在哪", "位置", "几楼", "怎么走", "where", "floor", "building", "find"),
    "parking": ("停车", "车位", "parking", "park"),
    "insurance": ("医保", "报销", "insurance", "reimburse"),
    "cancel": ("取消", "退号", "改约", "cancel", "reschedule"),
    "register": ("注册", "建档", "首次", "第一次", "register", "first visit", "sign up"),
    "consult": ("咨询", "问医生", "在线", "consult", "ask a doctor", "message"),
    "payment": ("支付方式", "微信", "支付宝", "payment method", "wechat", "alipay"),
    "reports": ("报告", "化验单", "report"),
    "emergency": ("急诊", "120", "emergency"),
    "refund": ("退费", "退款", "refund"),
    "visiting_hours": ("探视", "探望", "visiting", "visit a patient"),
    "records_copy": ("复印", "病历复印", "copy of my record"),
}
# Topic names other FAQ sets use (the demo's), read as ours for keyword matching.
ALIASES: Final[dict[str, str]] = {
    "opening_hours": "hours",
    "documents": "bring",
    "consultation": "consult",
    "cancellation": "cancel",
    "reschedule": "cancel",
}

# (topic, question zh, answer zh, question en, answer en)
DEFAULT_FAQ: Final = (
    (
        "hours",
        "门诊开放时间是几点？",
        "门诊周一至周五 8:00–17:30，周六 8:00–12:00；急诊 24 小时开放。",
        "What are the clinic opening hours?",
        "Outpatient clinics are open Monday to Friday 8:00–17:30 and Saturday 8:00–12:00; the "
        "emergency department is open 24 hours.",
    ),
    (
        "bring",
        "看病需要带什么？",
        "请携带身份证、医保卡（如有）、既往病历和正在服用的药物清单。",
        "What should I bring to my visit?",
        "Bring your ID card, your medical insurance card if you have one, earlier records and a "
        "list of the medicines you take.",
    ),
    (
        "location",
        "科室在哪里？怎么走？",
        "门诊楼一层为挂号收费，内科在二层，外科在三层，检验科在一层东侧。",
        "Where is the department? How do I find it?",
        "Registration and cashiers are on the ground floor of the outpatient building; medicine "
        "is on the 2nd floor, surgery on the 3rd and the laboratory on the east side of the "
        "ground floor.",
    ),
    (
        "parking",
        "医院可以停车吗？",
        "医院地下停车场从东门进入，前 30 分钟免费。",
        "Is there parking at the hospital?",
        "The underground car park is entered from the east gate; the first 30 minutes are free.",
    ),
    (
        "insurance",
        "医保怎么报销？",
        "在收费处或患者门户结算时会自动按医保比例报销，您只需支付自付部分。",
        "How does medical insurance reimbursement work?",
        "When you pay at the cashier or in the portal the insured share is settled automatically; "
        "you pay only your own part.",
    ),
    (
        "cancel",
        "怎么取消或更改预约？",
        "在患者门户“预约挂号”页面的“我的预约”中可取消；就诊前可重新预约其他时间。",
        "How do I cancel or change an appointment?",
        "Open “Book a visit” in the portal and cancel under “My appointments”; then book another "
        "time.",
    ),
    (
        "register",
        "第一次来医院需要注册吗？",
        "首次就诊请在挂号处出示身份证建档，之后可在患者门户自助预约和缴费。",
        "Do I need to register on my first visit?",
        "On your first visit show your ID card at registration to open your record; after that "
        "you can book and pay in the patient portal.",
    ),
    (
        "consult",
        "可以在线问医生吗？",
        "可以，在患者门户的“在线咨询”中给医生留言，医生会尽快回复。",
        "Can I ask a doctor online?",
        "Yes: write to a doctor under “Online consultation” in the portal and they will reply as "
        "soon as they can.",
    ),
)


@dataclass(frozen=True)
class AssistantAnswer:
    """What the assistant says: an FAQ answer, a link to a page, or that it is unsure."""

    kind: str  # faq | intent | unsure
    language: str
    intent: str | None
    topic: str | None
    answer: str | None  # the FAQ answer text, in the question's language
    page: str | None  # the portal page to go to
    score: float


def ensure_default_faq(session: Session) -> int:
    """Install the default bilingual FAQ topics that are missing; returns rows added."""
    have = {
        (lang, topic) for lang, topic in session.execute(select(FaqEntry.language, FaqEntry.topic))
    }
    added = 0
    for topic, q_zh, a_zh, q_en, a_en in DEFAULT_FAQ:
        for language, question, answer in (("zh", q_zh, a_zh), ("en", q_en, a_en)):
            if (language, topic) not in have:
                session.add(
                    FaqEntry(language=language, topic=topic, question=question, answer=answer)
                )
                added += 1
    session.flush()
    return added


def _language(question: str, fallback: str) -> str:
    if _CJK.search(question):
        return "zh"
    return "en" if re.search(r"[A-Za-z]", question) else fallback


def _intent(question: str) -> str | None:
    lowered = question.lower()
    for intent, (words, _page) in INTENTS.items():
        if any(word in lowered for word in words):
            return intent
    return None


def _score(question: str, entry: FaqEntry) -> float:
    lowered = question.lower()
    topic = ALIASES.get(entry.topic, entry.topic)
    hit = any(word in lowered for word in KEYWORDS.get(topic, ()))
    keyword = 90.0 if hit else 0.0
    target = entry.question.lower()
    if entry.language == "zh":
        similarity = fuzz.partial_ratio(lowered, target)
    else:
        similarity = fuzz.token_set_ratio(lowered, target)
    return max(keyword, float(similarity))


def answer_question(session: Session, question: str, language: str) -> AssistantAnswer:
    """Intent, then best FAQ match, then 'not sure' (no audit: a helper)."""
    language = _language(question, language)
    intent = _intent(question)
    entries = session.scalars(
        select(FaqEntry).where(FaqEntry.language == language, FaqEntry.active)
    ).all()
    if not entries and ensure_default_faq(session):
        entries = session.scalars(
            select(FaqEntry).where(FaqEntry.language == language, FaqEntry.active)
        ).all()
    scored = sorted(((_score(question, e), e.id, e) for e in entries), reverse=True)
    best = scored[0] if scored else None
    faq = best[2] if best is not None and best[0] >= MIN_SCORE else None
    score = best[0] if best is not None else 0.0
    if intent is not None:
        return AssistantAnswer(
            "intent", language, intent, faq.topic if faq else None,
            faq.answer if faq else None, INTENTS[intent][1], score,
        )  # fmt: skip
    if faq is not None:
        page = CONSULT_PAGE if ALIASES.get(faq.topic, faq.topic) == "consult" else None
        return AssistantAnswer("faq", language, None, faq.topic, faq.answer, page, score)
    return AssistantAnswer("unsure", language, None, None, None, CONSULT_PAGE, score)


@requires(Privilege.PORTAL_SELF)
def ask_assistant(
    *, session: Session, actor: Actor, question: str, language: str = "zh"
) -> AssistantAnswer:
    """A patient's question to the portal assistant (the text itself is not kept)."""
    if actor.patient_id is None:
        raise AccessDenied(Privilege.PORTAL_SELF, actor)
    refuse_if([TOO_LONG_KEY] if too_long(question, MAX_ASSISTANT_QUESTION) else [])
    answer = answer_question(session, question.strip()[:500], language)
    audit.record(
        session,
        actor,
        "engagement.ask_assistant",
        patient_id=actor.patient_id,
        object_type="assistant",
        detail={"kind": answer.kind, "intent": answer.intent, "topic": answer.topic},
    )
    return answer
