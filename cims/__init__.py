"""CIMS — hospital patient-information management system (core package, no UI)."""

__version__ = "0.1.0"
