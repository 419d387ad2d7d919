"""CIMS entry point: sign-in, then the role-filtered navigation. Nothing else lives here."""

import streamlit as st

from ui.auth import current_actor
from ui.errors import run_safely
from ui.shell import navigation, sidebar

st.set_page_config(page_title="CIMS", page_icon="🏥", layout="wide")

actor = current_actor()
page = navigation(actor)
if actor is not None:
    sidebar(actor)
run_safely(page.run)
