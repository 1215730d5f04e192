"""One dynamic partition per export request, keyed by the export id."""

from __future__ import annotations

import dagster as dg

export_partitions_def = dg.DynamicPartitionsDefinition(name="exports")
