"""Background CSV exports of lead data, orchestrated by Dagster."""
