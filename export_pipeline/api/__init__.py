"""The HTTP API: where export requests enter and where download links are checked.

`main.create_app` assembles it; `routes/` holds one module per resource.
"""
