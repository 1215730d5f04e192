"""One module per tool; each has `run(store, workload, out)`, which writes one export.

Every tool writes the same CSV as the engine with the formula guard off: the header of
field keys, system fields, custom fields and attributes in definition order, CRLF line
ends, quotes only where needed, timestamps as `YYYY-MM-DDTHH:MM:SSZ`, rows in
`lead_id` order. The runner checks that the files are byte-identical.
"""

TOOLS = ("ours", "duckdb_sql", "polars_lazy", "pandas_naive")
