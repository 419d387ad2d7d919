"""The encounter page's tabs; each module has ``render(actor, patient_id, encounter_id)``."""
