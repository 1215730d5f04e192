"""The exports every tool performs, on the largest source of a generated store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LARGEST_SOURCE = 1


@dataclass(frozen=True)
class Workload:
    """One export: a source and filters in the API's request form.

    Hand-written tools implement the same filters themselves; `status`,
    `created_from`/`created_to` (UTC dates) and `search` are the fields they read.
    """

    name: str
    filters: dict[str, Any] = field(default_factory=dict)
    source_id: int = LARGEST_SOURCE

    @property
    def status(self) -> str | None:
        statuses = self.filters.get("statuses")
        return statuses[0] if statuses else None


WORKLOADS = {
    workload.name: workload
    for workload in (
        # One status of eight over 19 of the 24 months of creation dates: about 10 %.
        Workload(
            "filtered",
            {"statuses": ["won"], "created_from": "2024-03-01", "created_to": "2025-10-01"},
        ),
        Workload("whole", {}),
        # One last name of 24, in any case: about 4 %.
        Workload("search", {"search": "LOVELACE"}),
    )
}
