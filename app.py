"""CIMS entry point: sign-in, then the role-filtered navigation. Nothing else lives here."""

import streamlit as st

from ui.auth import current_actor, sync_cookie
from ui.errors import run_safely
from ui.jobs import start_background_jobs
from ui.shell import navigation, sidebar

st.set_page_config(page_title="CIMS", page_icon=":material/local_hospital:", layout="wide")
start_background_jobs()

actor = current_actor()
sync_cookie()
page = navigation(actor)
if actor is not None:
    sidebar(actor)
run_safely(page.run)
