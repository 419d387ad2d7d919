"""Clinical vocabulary of the demo hospital: departments, conditions, labs, drugs, procedures.

Descriptions are bilingual ("中文 / English") because the record is read in both UI languages.
Everything is an ordered tuple so that sampling by index is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Dept:
    """A department and whether it runs an inpatient ward / outpatient clinics."""

    code: str
    zh: str
    en: str
    kind: str = "clinical"
    ward: bool = True
    clinics: bool = True


DEPARTMENTS: Final = (
    Dept("IM", "内科", "Internal Medicine"),
    Dept("SURG", "外科", "Surgery"),
    Dept("PED", "儿科", "Paediatrics"),
    Dept("OBGYN", "妇产科", "Obstetrics & Gynaecology"),
    Dept("ER", "急诊科", "Emergency", kind="emergency", ward=False, clinics=False),
    Dept("CARD", "心内科", "Cardiology"),
    Dept("ENDO", "内分泌科", "Endocrinology"),
    Dept("RESP", "呼吸内科", "Respiratory Medicine"),
    Dept("NEURO", "神经内科", "Neurology"),
    Dept("ORTH", "骨科", "Orthopaedics"),
    Dept("LAB", "检验科", "Laboratory", kind="support", ward=False, clinics=False),
    Dept("PHARM", "药剂科", "Pharmacy", kind="support", ward=False, clinics=False),
    Dept("FIN", "财务科", "Finance", kind="administrative", ward=False, clinics=False),
)
DEPT_INDEX: Final = {d.code: i for i, d in enumerate(DEPARTMENTS)}
CLINIC_DEPTS: Final = tuple(d.code for d in DEPARTMENTS if d.clinics)
WARD_DEPTS: Final = tuple(d.code for d in DEPARTMENTS if d.ward)
DOCTOR_DEPTS: Final = (*CLINIC_DEPTS, "ER")

# Doctor titles and the registration fee item each one charges.
TITLES: Final = ("主任医师", "副主任医师", "主治医师", "住院医师")
TITLE_FEE: Final = ("REG-CHIEF", "REG-ASSOC", "REG-ATTEND", "REG-RES")


@dataclass(frozen=True)
class Obs:
    """An observation code with unit, decimals, reference range and critical limits."""

    key: str
    loinc: str
    name: str
    unit: str
    category: str
    decimals: int
    low: float | None
    high: float | None
    crit_low: float | None = None
    crit_high: float | None = None
    low_f: float | None = None  # female range where it differs
    high_f: float | None = None


OBSERVATIONS: Final = (
    Obs("SBP", "8480-6", "收缩压 / Systolic blood pressure", "mmHg", "vital", 0, 90, 139, 70, 180),
    Obs("DBP", "8462-4", "舒张压 / Diastolic blood pressure", "mmHg", "vital", 0, 60, 89, 40, 120),
    Obs("HR", "8867-4", "心率 / Heart rate", "/min", "vital", 0, 60, 100, 40, 150),
    Obs("TEMP", "8310-5", "体温 / Body temperature", "°C", "vital", 1, 36.0, 37.3, 35.0, 40.0),
    Obs("SPO2", "59408-5", "血氧饱和度 / Oxygen saturation", "%", "vital", 0, 95, 100, 88, None),
    Obs("HBA1C", "4548-4", "糖化血红蛋白 / HbA1c", "%", "lab", 1, 4.0, 6.0, None, 12.0),
    Obs("GLU", "14771-0", "空腹血糖 / Fasting glucose", "mmol/L", "lab", 1, 3.9, 6.1, 2.8, 22.2),
    Obs("CREA", "14682-9", "肌酐 / Creatinine", "µmol/L", "lab", 0, 57, 111, None, 700,
        41, 81),
    Obs("K", "2823-3", "血钾 / Potassium", "mmol/L", "lab", 1, 3.5, 5.3, 2.8, 6.2),
    Obs("LDL", "22748-8", "低密度脂蛋白胆固醇 / LDL cholesterol", "mmol/L", "lab", 2, None, 3.4),
    Obs("TC", "14647-2", "总胆固醇 / Total cholesterol", "mmol/L", "lab", 2, None, 5.2),
    Obs("WBC", "6690-2", "白细胞计数 / White blood cell count", "10^9/L", "lab", 1, 3.5, 9.5,
        2.0, 30.0),
    Obs("HB", "718-7", "血红蛋白 / Haemoglobin", "g/L", "lab", 0, 130, 175, 70, None, 115, 150),
    Obs("BNP", "30934-4", "B型钠尿肽 / BNP", "pg/mL", "lab", 0, None, 100, None, 2000),
)  # fmt: skip
OBS_INDEX: Final = {o.key: i for i, o in enumerate(OBSERVATIONS)}

# Lab panels: one order and one charge each, several results.
PANELS: Final = {
    "HBA1C": ("LAB-HBA1C", ("HBA1C",)),
    "GLU": ("LAB-GLU", ("GLU",)),
    "RENAL": ("LAB-RENAL", ("CREA", "K")),
    "LIPID": ("LAB-LIPID", ("LDL", "TC")),
    "CBC": ("LAB-CBC", ("WBC", "HB")),
    "BNP": ("LAB-BNP", ("BNP",)),
}
PANEL_KEYS: Final = tuple(PANELS)


@dataclass(frozen=True)
class Drug:
    """A prescribable drug: dosing, and how many priced units a day of treatment uses."""

    key: str
    name: str
    dose: float
    unit: str
    route: str
    frequency: str
    days: int
    units_per_day: float
    price: int  # cents per priced unit
    new_price: int | None = None  # after the catalogue change (volume-based procurement)
    pack: str = "片"


DRUGS: Final = (
    Drug("METF", "二甲双胍片 / Metformin", 500, "mg", "oral", "bid", 30, 2, 20, 15),
    Drug("GLICZ", "格列齐特缓释片 / Gliclazide MR", 30, "mg", "oral", "qd", 30, 1, 120),
    Drug("GLARG", "甘精胰岛素注射液 / Insulin glargine", 10, "U", "sc", "qn", 30, 1 / 30, 18500,
         pack="支"),
    Drug("AMLO", "苯磺酸氨氯地平片 / Amlodipine", 5, "mg", "oral", "qd", 30, 1, 150, 15),
    Drug("VALS", "缬沙坦胶囊 / Valsartan", 80, "mg", "oral", "qd", 30, 1, 280, pack="粒"),
    Drug("ATOR", "阿托伐他汀钙片 / Atorvastatin", 20, "mg", "oral", "qn", 30, 1, 320, 25),
    Drug("ASA", "阿司匹林肠溶片 / Aspirin", 100, "mg", "oral", "qd", 30, 1, 15),
    Drug("METO", "琥珀酸美托洛尔缓释片 / Metoprolol succinate", 47.5, "mg", "oral", "qd", 30, 1,
         180),
    Drug("FURO", "呋塞米片 / Furosemide", 20, "mg", "oral", "qd", 30, 1, 10),
    Drug("SPIRO", "螺内酯片 / Spironolactone", 20, "mg", "oral", "qd", 30, 1, 20),
    Drug("CLOP", "硫酸氢氯吡格雷片 / Clopidogrel", 75, "mg", "oral", "qd", 30, 1, 250),
    Drug("TIO", "噻托溴铵吸入粉雾剂 / Tiotropium", 18, "µg", "inhaled", "qd", 30, 1 / 30, 12000,
         pack="盒"),
    Drug("BUD", "布地奈德福莫特罗吸入剂 / Budesonide-formoterol", 160, "µg", "inhaled", "bid",
         30, 1 / 30, 21000, pack="支"),
    Drug("LEVO", "左甲状腺素钠片 / Levothyroxine", 50, "µg", "oral", "qd", 30, 1, 60),
    Drug("CALC", "骨化三醇软胶囊 / Calcitriol", 0.25, "µg", "oral", "qd", 30, 1, 110, pack="粒"),
    Drug("DICLO", "双氯芬酸钠缓释片 / Diclofenac", 75, "mg", "oral", "qd", 14, 1, 60),
    Drug("AMOX", "阿莫西林胶囊 / Amoxicillin", 500, "mg", "oral", "tid", 7, 3, 30, pack="粒"),
    Drug("CEFU", "头孢呋辛酯片 / Cefuroxime axetil", 250, "mg", "oral", "bid", 7, 2, 150),
    Drug("IBU", "布洛芬缓释胶囊 / Ibuprofen", 300, "mg", "oral", "prn", 5, 2, 50, pack="粒"),
    Drug("OMEP", "奥美拉唑肠溶胶囊 / Omeprazole", 20, "mg", "oral", "qd", 14, 1, 80, pack="粒"),
    Drug("LORA", "氯雷他定片 / Loratadine", 10, "mg", "oral", "qd", 7, 1, 100),
    Drug("ESTAZ", "艾司唑仑片 / Estazolam", 1, "mg", "oral", "qn", 14, 1, 30),
    Drug("BETAH", "甲磺酸倍他司汀片 / Betahistine", 6, "mg", "oral", "tid", 7, 3, 40),
    Drug("FLUN", "盐酸氟桂利嗪胶囊 / Flunarizine", 5, "mg", "oral", "qn", 14, 1, 50, pack="粒"),
    Drug("PARA", "对乙酰氨基酚混悬液 / Paracetamol suspension", 5, "mL", "oral", "prn", 3,
         1 / 3, 1200, pack="瓶"),
    Drug("FA", "叶酸片 / Folic acid", 0.4, "mg", "oral", "qd", 30, 1, 10),
    Drug("MOSA", "枸橼酸莫沙必利片 / Mosapride", 5, "mg", "oral", "tid", 14, 3, 70),
    Drug("CEFTR", "注射用头孢曲松钠 / Ceftriaxone", 2, "g", "iv", "qd", 7, 2, 800, pack="瓶"),
    Drug("ENOX", "依诺肝素钠注射液 / Enoxaparin", 40, "mg", "sc", "qd", 7, 1, 3500, pack="支"),
    Drug("NS", "0.9%氯化钠注射液 / Sodium chloride 0.9%", 250, "mL", "iv", "qd", 7, 1, 350,
         pack="袋"),
)  # fmt: skip
DRUG_INDEX: Final = {d.key: i for i, d in enumerate(DRUGS)}


@dataclass(frozen=True)
class Proc:
    """A procedure (ICD-9-CM-3) and its catalogue item."""

    key: str
    code: str
    name: str
    price_code: str


PROCEDURES: Final = (
    Proc("APPY", "47.01", "腹腔镜阑尾切除术 / Laparoscopic appendectomy", "PROC-APPY"),
    Proc("CHOLE", "51.23", "腹腔镜胆囊切除术 / Laparoscopic cholecystectomy", "PROC-CHOLE"),
    Proc("HERNIA", "53.05", "腹股沟疝修补术 / Inguinal hernia repair", "PROC-HERNIA"),
    Proc("TKA", "81.54", "全膝关节置换术 / Total knee replacement", "PROC-TKA"),
    Proc("ORIF", "79.35", "股骨骨折切开复位内固定术 / ORIF of femur", "PROC-ORIF"),
    Proc("PCI", "36.06", "冠状动脉支架置入术 / Coronary stent insertion (PCI)", "PROC-PCI"),
    Proc("CS", "74.1", "子宫下段剖宫产术 / Low cervical caesarean section", "PROC-CS"),
    Proc("VD", "73.59", "自然分娩助产 / Assisted spontaneous delivery", "PROC-VD"),
    Proc("SUTURE", "86.59", "清创缝合术 / Wound debridement and suture", "PROC-SUTURE"),
    Proc("NEB", "93.94", "雾化吸入治疗 / Nebulised medication", "PROC-NEB"),
)
PROC_INDEX: Final = {p.key: i for i, p in enumerate(PROCEDURES)}

# Imaging items (catalogue code, order description).
IMAGING: Final = {
    "IMG-CXR": "胸部X线 / Chest X-ray",
    "IMG-ECG": "心电图 / Electrocardiogram",
    "IMG-ECHO": "心脏彩超 / Echocardiography",
    "IMG-CT-HEAD": "头颅CT / CT head",
    "IMG-US-ABD": "腹部超声 / Abdominal ultrasound",
    "IMG-XR-LIMB": "四肢X线 / Limb X-ray",
}
IMAGING_CODES: Final = tuple(IMAGING)


@dataclass(frozen=True)
class Reason:
    """Why a patient comes: the diagnosis, where, and what is ordered and prescribed."""

    key: str
    icd: str
    name: str
    complaint: str
    dept: str
    child_dept: str | None = None
    sex: str | None = None
    ages: tuple[int, int] = (0, 120)
    weight: float = 1.0
    panels: tuple[tuple[str, float], ...] = ()
    imaging: tuple[tuple[str, float], ...] = ()
    drugs: tuple[str, ...] = ()
    procedure: str | None = None
    los: float = 0.0  # median length of stay in days (inpatient reasons)
    infection: bool = False
    admit: str | None = None  # emergency: the inpatient reason when admitted
    admit_rate: float = 0.0  # emergency: share admitted


@dataclass(frozen=True)
class Chronic:
    """A chronic condition: prevalence by age, follow-up visits, admissions it drives."""

    reason: Reason
    prevalence: tuple[float, ...]  # by AGE_EDGES band
    visits_per_year: float
    admissions_per_year: float
    admit: str  # inpatient reason key
    alt_dept: str | None = None  # some follow-ups happen in this clinic instead
    male_factor: float = 1.0


AGE_EDGES: Final = (0, 18, 30, 45, 60, 75)

_R = Reason
CHRONIC: Final = (
    Chronic(_R("HTN", "I10", "原发性高血压 / Essential hypertension", "头晕，血压控制复查", "CARD",
               panels=(("RENAL", 0.3),), imaging=(("IMG-ECG", 0.2),), drugs=("AMLO", "VALS")),
            (0, 0.005, 0.06, 0.22, 0.42, 0.55), 1.0, 0.01, "HTN_IP", alt_dept="IM"),
    Chronic(_R("T2DM", "E11.9", "2型糖尿病 / Type 2 diabetes mellitus", "口干多饮，血糖复查",
               "ENDO", panels=(("HBA1C", 0.6), ("GLU", 0.9), ("RENAL", 0.25), ("LIPID", 0.15)),
               drugs=("METF", "GLICZ", "GLARG")),
            (0, 0.002, 0.03, 0.10, 0.18, 0.22), 1.6, 0.03, "DM_IP"),
    Chronic(_R("LIPID", "E78.5", "高脂血症 / Hyperlipidaemia", "血脂异常复查", "CARD",
               panels=(("LIPID", 0.8),), drugs=("ATOR",)),
            (0, 0.01, 0.06, 0.14, 0.20, 0.20), 0.4, 0.0, "HTN_IP", alt_dept="ENDO"),
    Chronic(_R("CHD", "I25.1", "冠状动脉粥样硬化性心脏病 / Atherosclerotic heart disease",
               "活动后胸闷", "CARD", panels=(("LIPID", 0.4),), imaging=(("IMG-ECG", 0.6),),
               drugs=("ASA", "ATOR", "METO")),
            (0, 0, 0.005, 0.03, 0.09, 0.16), 1.0, 0.06, "ACS", male_factor=1.4),
    Chronic(_R("HF", "I50.9", "心力衰竭 / Heart failure", "活动后气促，双下肢水肿", "CARD",
               panels=(("BNP", 0.7), ("RENAL", 0.5)), imaging=(("IMG-ECHO", 0.2),),
               drugs=("FURO", "SPIRO", "METO")),
            (0, 0, 0.002, 0.01, 0.04, 0.10), 1.4, 0.25, "HF_IP"),
    Chronic(_R("COPD", "J44.9", "慢性阻塞性肺疾病 / COPD", "反复咳嗽咳痰，气短", "RESP",
               imaging=(("IMG-CXR", 0.3),), drugs=("TIO",)),
            (0, 0, 0.005, 0.03, 0.09, 0.14), 1.0, 0.18, "COPD_IP", male_factor=1.8),
    Chronic(_R("CKD", "N18.9", "慢性肾脏病 / Chronic kidney disease", "肾功能复查", "IM",
               panels=(("RENAL", 0.9), ("CBC", 0.4)), drugs=("CALC",)),
            (0, 0.002, 0.01, 0.03, 0.07, 0.12), 1.0, 0.05, "HF_IP"),
    Chronic(_R("ASTHMA", "J45.9", "支气管哮喘 / Asthma", "反复喘息", "RESP", child_dept="PED",
               drugs=("BUD",)),
            (0.06, 0.03, 0.025, 0.025, 0.025, 0.02), 0.6, 0.02, "PNEU"),
    Chronic(_R("HYPOT", "E03.9", "甲状腺功能减退症 / Hypothyroidism", "乏力，甲功复查", "ENDO",
               sex="F", drugs=("LEVO",)),
            (0.002, 0.01, 0.03, 0.04, 0.04, 0.03), 0.8, 0.0, "DM_IP"),
    Chronic(_R("OA", "M17.9", "膝关节骨关节炎 / Osteoarthritis of knee", "膝关节疼痛", "ORTH",
               imaging=(("IMG-XR-LIMB", 0.3),), drugs=("DICLO",)),
            (0, 0, 0.01, 0.06, 0.15, 0.22), 0.4, 0.03, "TKA"),
)  # fmt: skip
CHRONIC_INDEX: Final = {c.reason.key: i for i, c in enumerate(CHRONIC)}

ACUTE: Final = (
    _R("URTI", "J06.9", "急性上呼吸道感染 / Acute upper respiratory infection", "发热、咽痛2天",
       "IM", child_dept="PED", weight=6, panels=(("CBC", 0.5),), drugs=("LORA", "IBU"),
       infection=True),
    _R("BRONCH", "J20.9", "急性支气管炎 / Acute bronchitis", "咳嗽咳痰1周", "RESP",
       child_dept="PED", weight=3, panels=(("CBC", 0.6),), imaging=(("IMG-CXR", 0.4),),
       drugs=("AMOX",), infection=True),
    _R("GASTR", "K29.7", "胃炎 / Gastritis", "上腹部不适2周", "IM", ages=(14, 120), weight=3,
       drugs=("OMEP", "MOSA")),
    _R("GE", "A09", "感染性胃肠炎 / Infectious gastroenteritis", "腹泻、腹痛1天", "IM",
       child_dept="PED", weight=2, panels=(("CBC", 0.5),), drugs=("OMEP",), infection=True),
    _R("LBP", "M54.5", "腰痛 / Low back pain", "腰痛1月", "ORTH", ages=(18, 120), weight=2,
       imaging=(("IMG-XR-LIMB", 0.2),), drugs=("DICLO",)),
    _R("SPRAIN", "S93.4", "踝关节扭伤 / Sprain of ankle", "扭伤后踝关节肿痛", "ORTH",
       ages=(8, 70), weight=1, imaging=(("IMG-XR-LIMB", 0.8),), drugs=("IBU",)),
    _R("MIGR", "G43.9", "偏头痛 / Migraine", "反复头痛", "NEURO", ages=(14, 70), weight=1.5,
       imaging=(("IMG-CT-HEAD", 0.2),), drugs=("FLUN", "IBU")),
    _R("VERT", "H81.1", "良性阵发性位置性眩晕 / Benign paroxysmal vertigo", "头晕伴视物旋转",
       "NEURO", ages=(30, 120), weight=1, drugs=("BETAH",)),
    _R("INSOM", "G47.0", "失眠 / Insomnia", "入睡困难1月", "NEURO", ages=(18, 120), weight=1,
       drugs=("ESTAZ",)),
    _R("UTI", "N39.0", "尿路感染 / Urinary tract infection", "尿频尿急尿痛", "IM", sex="F",
       ages=(14, 120), weight=1.5, panels=(("CBC", 0.5),), drugs=("CEFU",), infection=True),
    _R("PREG", "Z34.9", "正常妊娠监督 / Supervision of normal pregnancy", "孕期产检", "OBGYN",
       sex="F", ages=(20, 42), weight=2, panels=(("CBC", 0.7), ("GLU", 0.5)), drugs=("FA",)),
    _R("VAG", "N76.0", "急性阴道炎 / Acute vaginitis", "白带异常", "OBGYN", sex="F",
       ages=(16, 70), weight=1),
    _R("THYN", "E04.1", "甲状腺结节 / Thyroid nodule", "体检发现甲状腺结节", "ENDO",
       ages=(20, 120), weight=0.8),
    _R("CHESTP", "R07.4", "胸痛 / Chest pain", "胸痛待查", "CARD", ages=(30, 120), weight=1,
       imaging=(("IMG-ECG", 0.9),), panels=(("LIPID", 0.3),)),
    _R("ANEM", "D64.9", "贫血 / Anaemia", "乏力、面色苍白", "IM", weight=0.6,
       panels=(("CBC", 1.0),)),
    _R("FEVER", "R50.9", "发热 / Fever", "发热1天", "PED", ages=(0, 13), weight=4,
       panels=(("CBC", 0.7),), drugs=("PARA",), infection=True),
)  # fmt: skip

INPATIENT: Final = (
    _R("HF_IP", "I50.9", "心力衰竭 / Heart failure", "气促加重，不能平卧", "CARD", ages=(40, 120),
       panels=(("BNP", 1), ("RENAL", 1), ("CBC", 1)), imaging=(("IMG-ECHO", 0.8), ("IMG-CXR", 0.6)),
       drugs=("FURO", "SPIRO", "NS"), los=8),
    _R("COPD_IP", "J44.1", "慢阻肺急性加重 / COPD with acute exacerbation", "咳喘加重伴发热",
       "RESP", ages=(40, 120), panels=(("CBC", 1), ("RENAL", 0.5)), imaging=(("IMG-CXR", 1),),
       drugs=("CEFTR", "NS", "TIO"), procedure="NEB", los=9, infection=True),
    _R("PNEU", "J18.9", "肺炎 / Pneumonia", "发热咳嗽3天", "RESP", child_dept="PED",
       panels=(("CBC", 1), ("RENAL", 0.5)), imaging=(("IMG-CXR", 1),), drugs=("CEFTR", "NS"),
       los=7, infection=True, weight=4),
    _R("STROKE", "I63.9", "脑梗死 / Cerebral infarction", "突发左侧肢体无力", "NEURO",
       ages=(45, 120), panels=(("CBC", 1), ("LIPID", 1), ("GLU", 1)),
       imaging=(("IMG-CT-HEAD", 1),), drugs=("ASA", "ATOR", "NS"), los=12, weight=2),
    _R("ACS", "I20.0", "不稳定型心绞痛 / Unstable angina", "胸痛加重", "CARD", ages=(40, 120),
       panels=(("LIPID", 1), ("RENAL", 1)), imaging=(("IMG-ECG", 1),), drugs=("ASA", "CLOP"),
       procedure="PCI", los=5, weight=2),
    _R("DM_IP", "E11.65", "2型糖尿病伴高血糖 / Type 2 diabetes with hyperglycaemia",
       "血糖控制不佳", "ENDO", ages=(25, 120), panels=(("HBA1C", 1), ("GLU", 1), ("RENAL", 1)),
       drugs=("GLARG", "METF", "NS"), los=8),
    _R("HTN_IP", "I10", "原发性高血压 / Essential hypertension", "头痛，血压明显升高", "CARD",
       ages=(30, 120), panels=(("RENAL", 1),), imaging=(("IMG-ECG", 1),),
       drugs=("AMLO", "VALS"), los=5),
    _R("APPY", "K35.8", "急性阑尾炎 / Acute appendicitis", "转移性右下腹痛", "SURG",
       ages=(6, 90), panels=(("CBC", 1),), imaging=(("IMG-US-ABD", 0.7),), drugs=("CEFTR", "NS"),
       procedure="APPY", los=5, infection=True, weight=3),
    _R("CHOLE", "K80.2", "胆囊结石 / Calculus of gallbladder", "反复右上腹痛", "SURG",
       ages=(25, 120), panels=(("CBC", 1),), imaging=(("IMG-US-ABD", 1),), drugs=("NS",),
       procedure="CHOLE", los=6, weight=3),
    _R("HERNIA", "K40.9", "腹股沟疝 / Inguinal hernia", "腹股沟区可复性包块", "SURG", sex="M",
       ages=(20, 120), panels=(("CBC", 1),), procedure="HERNIA", los=3, weight=2),
    _R("TKA", "M17.9", "膝关节骨关节炎 / Osteoarthritis of knee", "膝关节疼痛活动受限", "ORTH",
       ages=(50, 120), panels=(("CBC", 1),), imaging=(("IMG-XR-LIMB", 1),),
       drugs=("ENOX", "CEFTR"), procedure="TKA", los=10),
    _R("HIPFX", "S72.0", "股骨颈骨折 / Fracture of neck of femur", "跌倒后髋部疼痛", "ORTH",
       ages=(60, 120), panels=(("CBC", 1),), imaging=(("IMG-XR-LIMB", 1),), drugs=("ENOX",),
       procedure="ORIF", los=14, weight=2),
    _R("DELIV", "O80", "单胎顺产 / Single spontaneous delivery", "孕39周，规律腹痛", "OBGYN",
       sex="F", ages=(20, 42), panels=(("CBC", 1),), procedure="VD", los=3, weight=5),
    _R("CSEC", "O82", "剖宫产分娩 / Delivery by caesarean section", "孕39周，瘢痕子宫", "OBGYN",
       sex="F", ages=(20, 45), panels=(("CBC", 1),), drugs=("CEFTR",), procedure="CS", los=5,
       weight=3),
)  # fmt: skip

EMERGENCY: Final = (
    _R("E_CHEST", "R07.4", "胸痛 / Chest pain", "突发胸痛2小时", "ER", ages=(30, 120), weight=3,
       panels=(("CBC", 1),), imaging=(("IMG-ECG", 1),), admit="ACS", admit_rate=0.3),
    _R("E_ABD", "R10.4", "腹痛 / Abdominal pain", "腹痛6小时", "ER", weight=3,
       panels=(("CBC", 1),), imaging=(("IMG-US-ABD", 0.6),), drugs=("OMEP",), admit="APPY",
       admit_rate=0.25),
    _R("E_HEAD", "S06.0", "脑震荡 / Concussion", "头部外伤后头痛", "ER", weight=1.5,
       imaging=(("IMG-CT-HEAD", 1),)),
    _R("E_LAC", "S61.9", "手部开放性伤口 / Open wound of hand", "手部切割伤出血", "ER",
       weight=2, procedure="SUTURE"),
    _R("E_FEVER", "R50.9", "发热 / Fever", "高热1天", "ER", weight=3, panels=(("CBC", 1),),
       imaging=(("IMG-CXR", 0.5),), drugs=("IBU", "NS"), admit="PNEU", admit_rate=0.15,
       infection=True),
    _R("E_DYSP", "R06.0", "呼吸困难 / Dyspnoea", "突发气促", "ER", ages=(40, 120), weight=2,
       panels=(("BNP", 0.6), ("CBC", 1)), imaging=(("IMG-CXR", 1),), procedure="NEB",
       admit="HF_IP", admit_rate=0.45),
    _R("E_WEAK", "R53", "肢体无力 / Weakness", "突发一侧肢体无力", "ER", ages=(45, 120), weight=1,
       panels=(("GLU", 1),), imaging=(("IMG-CT-HEAD", 1),), admit="STROKE", admit_rate=0.7),
    _R("E_FALL", "S72.0", "股骨颈骨折 / Fracture of neck of femur", "跌倒后不能站立", "ER",
       ages=(60, 120), weight=1, imaging=(("IMG-XR-LIMB", 1),), admit="HIPFX", admit_rate=0.9),
    _R("E_HYPO", "E16.2", "低血糖 / Hypoglycaemia", "心慌出汗乏力", "ER", ages=(30, 120),
       weight=0.8, panels=(("GLU", 1),), drugs=("NS",)),
)  # fmt: skip

ALLERGENS: Final = (
    ("青霉素 / Penicillin", "N0000005828", 5),
    ("头孢菌素 / Cephalosporins", "N0000011161", 2),
    ("磺胺类 / Sulfonamides", "N0000175503", 1.5),
    ("阿司匹林 / Aspirin", "1191", 1),
    ("碘造影剂 / Iodinated contrast", "N0000007874", 1),
    ("花生 / Peanut", "256349002", 1),
    ("海鲜 / Shellfish", "227037002", 1.5),
    ("乳胶 / Latex", "111088007", 0.5),
)
REACTIONS: Final = ("皮疹 / Rash", "荨麻疹 / Urticaria", "呼吸困难 / Dyspnoea",
                    "过敏性休克 / Anaphylaxis", "恶心呕吐 / Nausea and vomiting")  # fmt: skip
