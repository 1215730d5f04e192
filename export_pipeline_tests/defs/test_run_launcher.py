"""Telling from a run's tags whether its forked worker still lives."""

import subprocess
import sys

import dagster as dg
from dagster._core.launcher import WorkerStatus

from export_pipeline.defs.exports.run_launcher import (
    WORKER_PID_TAG,
    WORKER_STARTED_TAG,
    ForkingRunLauncher,
    _start_ticks,
)


def worker_tags(process: subprocess.Popen) -> dict[str, str]:
    return {WORKER_PID_TAG: str(process.pid), WORKER_STARTED_TAG: _start_ticks(process.pid)}


def health(tags: dict[str, str]) -> WorkerStatus:
    run = dg.DagsterRun(job_name="lead_export_job", run_id="r1", tags=tags)
    return ForkingRunLauncher().check_run_worker_health(run).status


def test_a_living_worker_is_running_and_a_dead_one_failed():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tags = worker_tags(process)
        assert health(tags) == WorkerStatus.RUNNING
    finally:
        process.kill()
        process.wait()
    assert health(tags) == WorkerStatus.FAILED


def test_another_process_with_the_workers_id_is_not_taken_for_it():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tags = {**worker_tags(process), WORKER_STARTED_TAG: "1"}
        assert health(tags) == WorkerStatus.FAILED
    finally:
        process.kill()
        process.wait()


def test_a_run_without_a_worker_yet_is_unknown():
    assert health({}) == WorkerStatus.UNKNOWN
