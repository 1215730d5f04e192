"""Dagster side of export schedules: the sensor that files their due ticks as export
requests. The export request sensor then runs those like any other request."""

from __future__ import annotations

import dagster as dg

from export_pipeline.defs.schedules.sensors import export_schedule_sensor
from export_pipeline.settings import Settings


def schedules_definitions(settings: Settings) -> dg.Definitions:
    """The schedule sensor; it uses the export area's `status_table` and `lead_store`."""
    return dg.Definitions(sensors=[export_schedule_sensor])
