"""Dagster definitions for schedules."""

from __future__ import annotations

import dagster as dg

from export_pipeline.settings import Settings


def schedules_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions()
