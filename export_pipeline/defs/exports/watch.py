"""Keeping an export run visible and stoppable while it writes.

A run reports progress through the engine's callback; a thread of its own writes the
latest figures to the status table every second as a heartbeat, and reads back
the export's status there. A user's cancellation is thereby seen within a second, and
a run whose worker died stops beating, which the status sensor notices.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from export_pipeline.defs.exports.resources import StatusTableResource
from export_pipeline.status.exports import record_progress
from export_pipeline.status.models import ExportStatus

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0
"""How often a run writes its progress; the status sensor gives up on a run that has
been silent for `SILENT_RUN_SECONDS`."""
SILENT_RUN_SECONDS = 60.0


class ExportCancelledError(Exception):
    """The export was cancelled while its run was writing it."""


class RunWatch:
    """Progress, heartbeat and cancellation of one export run; use it as a context
    manager around the export and pass `progress` as the engine's callback."""

    def __init__(
        self,
        status_table: StatusTableResource,
        export_id: str,
        *,
        interval: float = HEARTBEAT_SECONDS,
    ) -> None:
        self._status_table = status_table
        self._export_id = export_id
        self._interval = interval
        self._written = 0
        self._total: int | None = None
        self._cancelled = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="export-heartbeat", daemon=True)

    def __enter__(self) -> RunWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopped.set()
        self._thread.join()

    def progress(self, written: int, total: int) -> None:
        """The engine's callback: note the figures, stop if the export was cancelled."""
        self._written, self._total = written, total
        if self._cancelled.is_set():
            msg = f"export {self._export_id} was cancelled"
            raise ExportCancelledError(msg)

    def _beat(self) -> None:
        while True:
            self._report()
            if self._stopped.wait(self._interval):
                self._report()
                return

    def _report(self) -> None:
        try:
            with self._status_table.session() as session:
                status = record_progress(
                    session,
                    self._export_id,
                    written=self._written,
                    total=self._total,
                    at=datetime.now(UTC),
                )
        except Exception as error:
            log.warning(
                "could not record the progress of export %s: %s",
                self._export_id,
                type(error).__name__,
            )
            return
        if status in (ExportStatus.CANCELLED, None):
            self._cancelled.set()
