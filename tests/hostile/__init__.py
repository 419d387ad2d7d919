"""Hostile-input corpus and static page-safety checks (issue 11)."""
