"""``python -m cims`` runs the command line."""

from cims.cli import app
from cims.config import get_settings
from cims.logs import configure_logging

configure_logging(get_settings().log_level)
app()
