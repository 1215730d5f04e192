"""Dagster side of exports: the partitioned export asset and the sensors around it."""
