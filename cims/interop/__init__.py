"""Data in and out: Synthea CSV import, FHIR R4 export/import, spreadsheet exports."""
