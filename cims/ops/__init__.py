"""Operations: scheduled jobs (and, later, backups and health)."""
