"""Benchmarks of the export engine against hand-written DuckDB, Polars and pandas."""
