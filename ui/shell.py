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
        "pages/patient_register.py",
        "nav.patient_register",
        ":material/person_add:",
        ("registrar", "nurse"),
    ),
    PageSpec(
        "pages/patient_summary.py",
        "nav.patient_summary",
        ":material/clinical_notes:",
        ("doctor", "nurse"),
    ),
    PageSpec("pages/finance_home.py", "nav.finance_home", ":material/payments:", ("finance",)),
    PageSpec("pages/manager_home.py", "nav.manager_home", ":material/monitoring:", ("manager",)),
    PageSpec(
        "pages/analyst_home.py", "nav.analyst_home", ":material/query_stats:", ("data_staff",)
    ),
    PageSpec("pages/admin_home.py", "nav.admin_home", ":material/manage_accounts:", ("admin",)),
    PageSpec("pages/patient_home.py", "nav.patient_home", ":material/home:", ("patient",)),
    PageSpec("pages/admin_reviews.py", "nav.admin_reviews", ":material/fact_check:", ("admin",)),
    PageSpec("pages/admin_audit.py", "nav.admin_audit", ":material/policy:", ("admin",)),
    PageSpec("pages/admin_report.py", "nav.admin_report", ":material/summarize:", ("admin",)),
    PageSpec("pages/admin_roles.py", "nav.admin_roles", ":material/key:", ("admin",)),
    PageSpec(
        "pages/admin_security.py", "nav.admin_security", ":material/emergency_home:", ("admin",)
    ),
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
