"""``python -m cims`` runs the command line."""

from cims.cli import app

app()
