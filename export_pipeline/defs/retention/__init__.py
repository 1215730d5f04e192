"""Dagster definitions for retention."""

from __future__ import annotations

import dagster as dg

from export_pipeline.settings import Settings


def retention_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions()
