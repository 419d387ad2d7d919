"""Printable PDFs (prescription, wristband, visit summary) in Chinese or English."""
