"""A Dagster run launcher that starts each run as a fork of a warm process.

Dagster's default launcher asks the code server to spawn a new Python interpreter per
run, which spends about three seconds importing Dagster and the code location before a
small export's fraction of a second of work; ten small exports at once then queue
behind each other's start-up on two cores. This launcher keeps a multiprocessing
forkserver in the launching process (the daemon, whose run queue launches every run)
that has imported both once, and starts each run as a fork of it: single-threaded,
with nothing of the daemon's state, in a few milliseconds.

The worker does what `dagster api execute_run` does. It is not a child of the daemon,
so it outlives a daemon restart like a default run worker outlives its code server.
Its process id and start time are run tags, which let any process holding the instance
(the daemon's run monitoring, the webserver, the status sensor) tell whether the worker
still lives and interrupt it to cancel the run.

The forkserver imports the code location once, when the launching process launches its
first run: a changed code location reaches runs after the daemon restarts.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.process
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._serdes import ConfigurableClass, ConfigurableClassData

log = logging.getLogger(__name__)

WORKER_PID_TAG = "export_pipeline/worker_pid"
WORKER_STARTED_TAG = "export_pipeline/worker_started"
"""The worker's start time in clock ticks since boot, as /proc gives it, so that a new
process that happens to get the same id is not taken for the worker."""
PRELOAD_MODULES = ("dagster._cli.api", "export_pipeline.definitions")
WORKER_GONE = "the run worker process is gone"
"""What run monitoring quotes when it fails a run whose worker died."""


class ForkingRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run as a fork of a process that has imported `preload_modules`."""

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        preload_modules: Sequence[str] = PRELOAD_MODULES,
    ) -> None:
        self._inst_data = inst_data
        self._preload_modules = list(preload_modules)
        self._context: Any = None
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {
            "preload_modules": dg.Field(
                [str],
                is_required=False,
                default_value=list(PRELOAD_MODULES),
                description="Modules the warm process imports once for every run.",
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> Self:
        return cls(inst_data=inst_data, **config_value)

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        process = self._forkserver().Process(
            target=execute_run_in_worker,
            args=(run.run_id, self._instance.get_ref()),
            name=f"dagster-run-{run.run_id}",
        )
        process.start()
        # Neither joined nor killed when the launching process exits: the run goes on.
        multiprocessing.process._children.discard(process)  # type: ignore[attr-defined]
        self._instance.add_run_tags(
            run.run_id,
            {WORKER_PID_TAG: str(process.pid), WORKER_STARTED_TAG: _start_ticks(process.pid)},
        )
        log.info("launched run %s as process %s", run.run_id, process.pid)

    def terminate(self, run_id: str) -> bool:
        """Interrupt the run's worker, which then stops the run as cancelled."""
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        pid = _living_worker(run.tags)
        if pid is None:
            self._instance.report_run_canceled(run, message="its run worker was gone")
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        if WORKER_PID_TAG not in run.tags:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run has no worker yet")
        if _living_worker(run.tags) is None:
            return CheckRunHealthResult(WorkerStatus.FAILED, WORKER_GONE)
        return CheckRunHealthResult(WorkerStatus.RUNNING)

    def _forkserver(self) -> Any:
        if self._context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(self._preload_modules)
            self._context = context
        return self._context


def execute_run_in_worker(run_id: str, instance_ref: Any) -> None:
    """The body of a forked run worker, as `dagster api execute_run` runs it."""
    from dagster._cli.api import _execute_run_command_body
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts(), dg.DagsterInstance.from_ref(instance_ref) as instance:
        _execute_run_command_body(
            run_id, instance, lambda _event: None, set_exit_code_on_failure=False
        )


def _living_worker(tags: Mapping[str, str]) -> int | None:
    """The worker's process id while that process is the worker, else None."""
    try:
        pid = int(tags[WORKER_PID_TAG])
    except (KeyError, ValueError):
        return None
    started = tags.get(WORKER_STARTED_TAG, "")
    if started and _start_ticks(pid) != started:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, under another user
    return pid if not _is_zombie(pid) else None


def _start_ticks(pid: int) -> str:
    """The process's start time from /proc, or "" where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"
