"""The export engine: frozen filters in, one CSV of matching leads out."""
