"""DuckDB analytics over de-identified snapshots (pure functions; no streamlit)."""
