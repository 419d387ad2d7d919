"""Role-filtered navigation and the sidebar shared by every signed-in page."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from cims.security.rbac import ROLES, Actor
from ui.auth import render_sign_in, sign_out
from ui.i18n import language_switch, tr


@dataclass(frozen=True)
class PageSpec:
    """A page file, its title key and icon, and the roles that see it."""

    path: str
    title_key: str
    icon: str
    roles: tuple[str, ...]


# Each role's home first; a user with several roles sees each of their homes.
PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/doctor_home.py", "nav.doctor_home", ":material/stethoscope:", ("doctor",)),
    PageSpec("pages/nurse_home.py", "nav.nurse_home", ":material/vaccines:", ("nurse",)),
    PageSpec("pages/registrar_home.py", "nav.registrar_home", ":material/badge:", ("registrar",)),
    PageSpec(
        "pages/patient_search.py",
        "nav.patient_search",
        ":material/person_search:",
        ("registrar", "nurse", "doctor", "finance"),
    ),
    PageSpec(
        "pages/appointments_desk.py",
        "nav.appointments_desk",
        ":material/calendar_add_on:",
        ("registrar",),
    ),
    PageSpec(
        "pages/patient_register.py",
        "nav.patient_register",
        ":material/person_add:",
        ("registrar", "nurse"),
    ),
    PageSpec(
        "pages/patient_edit.py", "nav.patient_edit", ":material/edit:", ("registrar", "nurse")
    ),
    PageSpec(
        "pages/patient_duplicates.py", "nav.patient_duplicates", ":material/merge:", ("registrar",)
    ),
    PageSpec(
        "pages/patient_summary.py",
        "nav.patient_summary",
        ":material/clinical_notes:",
        ("doctor", "nurse"),
    ),
    PageSpec(
        "pages/clinical_notes.py",
        "nav.clinical_notes",
        ":material/description:",
        ("doctor", "nurse"),
    ),
    PageSpec("pages/bed_board.py", "nav.bed_board", ":material/bed:", ("nurse", "doctor")),
    PageSpec("pages/nurse_worklist.py", "nav.nurse_worklist", ":material/checklist:", ("nurse",)),
    PageSpec("pages/encounter.py", "nav.encounter", ":material/edit_note:", ("doctor",)),
    PageSpec("pages/finance_home.py", "nav.finance_home", ":material/payments:", ("finance",)),
    PageSpec("pages/cashier.py", "nav.cashier", ":material/point_of_sale:", ("finance",)),
    PageSpec(
        "pages/finance_settlement.py",
        "nav.finance_settlement",
        ":material/account_balance:",
        ("finance",),
    ),
    PageSpec("pages/manager_home.py", "nav.manager_home", ":material/monitoring:", ("manager",)),
    PageSpec(
        "pages/analyst_home.py", "nav.analyst_home", ":material/query_stats:", ("data_staff",)
    ),
    PageSpec(
        "pages/risk_models.py", "nav.risk_models", ":material/model_training:", ("data_staff",)
    ),
    PageSpec("pages/risk_report.py", "nav.risk_report", ":material/crisis_alert:", ("data_staff",)),
    PageSpec(
        "pages/manager_dashboard.py",
        "nav.manager_dashboard",
        ":material/dashboard:",
        ("manager", "data_staff", "admin"),
    ),
    PageSpec(
        "pages/analytics_workspace.py",
        "nav.analytics_workspace",
        ":material/terminal:",
        ("data_staff",),
    ),
    PageSpec(
        "pages/analytics_refresh.py",
        "nav.analytics_refresh",
        ":material/sync:",
        ("data_staff", "admin"),
    ),
    PageSpec("pages/admin_home.py", "nav.admin_home", ":material/manage_accounts:", ("admin",)),
    PageSpec(
        "pages/admin_import.py",
        "nav.admin_import",
        ":material/upload_file:",
        ("admin", "data_staff"),
    ),
    PageSpec("pages/patient_home.py", "nav.patient_home", ":material/home:", ("patient",)),
    PageSpec("pages/portal_book.py", "nav.portal_book", ":material/event_available:", ("patient",)),
    PageSpec("pages/portal_pay.py", "nav.portal_pay", ":material/qr_code_2:", ("patient",)),
    PageSpec(
        "pages/portal_record.py", "nav.portal_record", ":material/folder_shared:", ("patient",)
    ),
    PageSpec("pages/portal_messages.py", "nav.portal_messages", ":material/forum:", ("patient",)),
    PageSpec("pages/portal_survey.py", "nav.portal_survey", ":material/reviews:", ("patient",)),
    PageSpec(
        "pages/portal_assistant.py",
        "nav.portal_assistant",
        ":material/support_agent:",
        ("patient",),
    ),
    PageSpec(
        "pages/doctor_consultations.py",
        "nav.doctor_consultations",
        ":material/forum:",
        ("doctor",),
    ),
    PageSpec("pages/admin_reviews.py", "nav.admin_reviews", ":material/fact_check:", ("admin",)),
    PageSpec("pages/admin_audit.py", "nav.admin_audit", ":material/policy:", ("admin",)),
    PageSpec("pages/admin_backups.py", "nav.admin_backups", ":material/backup:", ("admin",)),
    PageSpec("pages/admin_report.py", "nav.admin_report", ":material/summarize:", ("admin",)),
    PageSpec("pages/admin_roles.py", "nav.admin_roles", ":material/key:", ("admin",)),
    PageSpec("pages/admin_health.py", "nav.admin_health", ":material/monitor_heart:", ("admin",)),
    PageSpec(
        "pages/admin_security.py", "nav.admin_security", ":material/emergency_home:", ("admin",)
    ),
    PageSpec("pages/inbox.py", "nav.inbox", ":material/notifications:", tuple(ROLES)),
    PageSpec("pages/my_account.py", "nav.my_account", ":material/person:", tuple(ROLES)),
)


def pages_for(actor: Actor) -> list[PageSpec]:
    """The pages this actor's roles may open, their primary home first."""
    mine = [spec for spec in PAGES if set(spec.roles) & set(actor.roles)]
    # The primary role's home first; pages shared by every role (my account) last.
    mine.sort(key=lambda spec: (len(spec.roles) > 1, actor.primary_role not in spec.roles))
    return mine


def navigation(actor: Actor | None) -> st.navigation:  # type: ignore[valid-type]
    """st.navigation for the actor, or a lone hidden sign-in page when signed out."""
    if actor is None:
        signin_page = st.Page(render_sign_in, title=tr("signin.heading"), url_path="signin")
        return st.navigation([signin_page], position="hidden")
    pages = [
        st.Page(spec.path, title=tr(spec.title_key), icon=spec.icon, default=i == 0)
        for i, spec in enumerate(pages_for(actor))
    ]
    return st.navigation(pages)


def sidebar(actor: Actor) -> None:
    """Who is signed in, the language switch and sign-out."""
    with st.sidebar:
        st.markdown(f"**{actor.display_name}**")
        st.caption(" · ".join(tr(f"role.{role}") for role in actor.roles))
        language_switch(st.sidebar)
        if st.button(tr("signin.sign_out"), key="sign_out", use_container_width=True):
            sign_out()
            st.rerun()
