"""The lead store: sources, leads, custom fields and attributes in DuckDB."""
