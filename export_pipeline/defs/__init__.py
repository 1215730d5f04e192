"""Dagster definitions, one folder per area; `export_pipeline.definitions` merges them."""
