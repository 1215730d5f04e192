"""Export runs under real faults, with real processes: an API, a Dagster daemon that
the tests stop and start, and run workers that they kill.

The lead store is the benchmark's generated store (600,000 leads in source 1), so that
a whole-source export runs long enough to be killed in the middle of its writing.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pytest

from bench.generate import generate_store
from export_pipeline.defs.exports.tags import EXPORT_ID_TAG, SOURCE_ID_TAG
from export_pipeline.serve import prepare_environment
from export_pipeline.settings import Settings
from export_pipeline.status.database import make_engine, make_session_factory
from export_pipeline.status.models import Role
from export_pipeline.status.users import create_user, grant_role, issue_api_key
from export_pipeline_tests.e2e.conftest import REPO, free_port

pytestmark = pytest.mark.e2e

LARGE_SOURCE, SMALL_SOURCES = 1, (2, 3)
LARGE_SOURCE_LEADS = 600_000
SETTLED = ("completed", "failed", "cancelled", "expired")


@dataclass
class Plant:
    """The product's processes in one home; the daemon can be stopped and started."""

    settings: Settings
    environment: dict[str, str]
    api_url: str
    key: str
    api: subprocess.Popen | None = None
    daemon: subprocess.Popen | None = None

    def start_daemon(self) -> None:
        self.daemon = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dagster-daemon")),
                "run",
                "-w",
                str(REPO / "workspace.yaml"),
            ],
            cwd=REPO,
            env=self.environment,
            stdout=(self.settings.resolved_home / "daemon.log").open("ab"),
            stderr=subprocess.STDOUT,
            process_group=0,
        )

    def stop_daemon(self) -> None:
        """Stop the daemon as `serve` does: SIGTERM, then SIGKILL if it outlives 30 s
        (its interpreter has been seen to hang at exit on a loaded machine)."""
        if self.daemon is not None:
            os.killpg(self.daemon.pid, signal.SIGTERM)
            try:
                self.daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(timeout=30)
            self.daemon = None

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url + "/api/v1",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
        )

    def request(self, source_id: int, body: dict | None = None) -> str:
        with self.client() as client:
            response = client.post(f"/sources/{source_id}/exports", json=body or {})
            assert response.status_code == 202, response.text
            return response.json()["id"]

    def export(self, export_id: str) -> dict:
        with self.client() as client:
            return client.get(f"/exports/{export_id}").raise_for_status().json()

    def wait_until(self, export_id: str, statuses: tuple[str, ...], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            export = self.export(export_id)
            if export["status"] in statuses:
                return export
            time.sleep(0.5)
        pytest.fail(f"export {export_id} not {statuses} within {timeout} s: {export}")

    def runs(self) -> list[dg.RunRecord]:
        with dg.DagsterInstance.from_config(self.environment["DAGSTER_HOME"]) as instance:
            return list(instance.get_run_records(dg.RunsFilter(job_name="lead_export_job")))

    def exports_folder(self) -> Path:
        return self.settings.resolved_home / "exports"


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plant]:
    home = tmp_path_factory.mktemp("faults-home")
    api_port = free_port()
    os.environ.pop("DAGSTER_HOME", None)
    settings = Settings(home=home, api_port=api_port, dagster_port=free_port())
    generate_store(settings.lead_store_path, leads=LARGE_SOURCE_LEADS)
    environment = prepare_environment(settings, REPO / "dagster.yaml")
    environment.update(
        EXPORT_PIPELINE_HOME=str(home),
        EXPORT_PIPELINE_API_PORT=str(api_port),
    )
    sessions = make_session_factory(make_engine(settings.status_database_url))
    with sessions() as session, session.begin():
        user = create_user(session, "fault-tester")
        for source_id in (LARGE_SOURCE, *SMALL_SOURCES):
            grant_role(session, user, source_id, Role.ADMIN)
        key = issue_api_key(session, user)
    plant = Plant(settings, environment, f"http://127.0.0.1:{api_port}", key)
    plant.api = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "--factory",
            "export_pipeline.api.main:create_app", "--no-access-log",
            "--port", str(api_port),
        ],
        cwd=REPO,
        env=environment,
        stdout=(home / "api.log").open("ab"),
        stderr=subprocess.STDOUT,
        process_group=0,
    )  # fmt: skip
    _wait_for_api(plant)
    plant.start_daemon()
    try:
        yield plant
    finally:
        plant.stop_daemon()
        os.killpg(plant.api.pid, signal.SIGTERM)
        plant.api.wait(timeout=30)
        for worker in _run_workers(plant):
            os.kill(worker, signal.SIGKILL)


def _wait_for_api(plant: Plant) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(plant.api_url + "/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    pytest.fail("the API did not start")


def _run_workers(plant: Plant, export_id: str | None = None) -> list[int]:
    """Pids of the live run workers of this home's Dagster instance (of one export's
    runs if given), as their runs' start events recorded them."""
    pids = []
    with dg.DagsterInstance.from_config(plant.environment["DAGSTER_HOME"]) as instance:
        tags = {EXPORT_ID_TAG: export_id} if export_id else None
        for run in instance.get_runs(dg.RunsFilter(job_name="lead_export_job", tags=tags)):
            if run.is_finished:
                continue
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START):
                if entry.dagster_event is not None and entry.dagster_event.pid:
                    pids.append(entry.dagster_event.pid)
    return [pid for pid in pids if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _files_of(plant: Plant, export_id: str) -> list[Path]:
    folder = plant.exports_folder()
    if not folder.exists():
        return []
    return [path for path in folder.rglob("*") if export_id in str(path) and path.is_file()]


def test_a_killed_run_worker_fails_its_export_cleanly_and_a_retry_succeeds(plant: Plant):
    export_id = plant.request(LARGE_SOURCE)
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline:
        export = plant.export(export_id)
        workers = _run_workers(plant, export_id)
        if export["status"] == "processing" and workers and export["leads_written"]:
            break
        time.sleep(0.2)
    assert workers, "no run worker showed up"
    assert plant.export(export_id)["status"] == "processing"

    killed_at = time.monotonic()
    for worker in workers:
        os.kill(worker, signal.SIGKILL)
    failed = plant.wait_until(export_id, SETTLED, timeout=120)

    print(f"killed worker: failed after {time.monotonic() - killed_at:.0f} s")
    assert failed["status"] == "failed"
    assert failed["error"].startswith("the export run's worker stopped responding")
    assert failed["error"].endswith("retry the export")
    assert _files_of(plant, export_id) == []
    with plant.client() as client:
        retry = client.post(f"/exports/{export_id}/retry")
    assert retry.status_code == 202
    done = plant.wait_until(retry.json()["id"], SETTLED, timeout=180)
    assert done["status"] == "completed"
    assert done["lead_count"] == LARGE_SOURCE_LEADS


def test_cancelling_a_running_export_terminates_its_run_and_leaves_no_file(plant: Plant):
    export_id = plant.request(LARGE_SOURCE)
    _wait_until_writing(plant, export_id)

    with plant.client() as client:
        cancel = client.post(f"/exports/{export_id}/cancel")
        assert cancel.status_code == 200, cancel.text
        run_status = _wait_for_run_to_end(plant, export_id, timeout=60)
        audit = client.get(f"/sources/{LARGE_SOURCE}/audit", params={"action": "cancelled"}).json()[
            "items"
        ]

    assert run_status == "CANCELED"
    assert plant.export(export_id)["status"] == "cancelled"
    assert _files_of(plant, export_id) == []
    assert [(e["export_id"], e["actor"]) for e in audit if e["export_id"] == export_id] == [
        (export_id, "fault-tester")
    ]


def test_a_daemon_stopped_while_an_export_runs_leaves_the_run_to_finish(plant: Plant):
    export_id = plant.request(LARGE_SOURCE)
    _wait_until_writing(plant, export_id)

    assert plant.daemon is not None
    plant.daemon.terminate()  # the daemon alone, as `serve` stops it
    plant.daemon.wait(timeout=60)
    plant.daemon = None
    try:
        finished = plant.wait_until(export_id, SETTLED, timeout=120)
    finally:
        plant.start_daemon()

    assert finished["status"] == "completed"
    assert finished["lead_count"] == LARGE_SOURCE_LEADS
    assert _wait_for_run_to_end(plant, export_id, timeout=30) == "SUCCESS"


def test_requests_wait_while_the_daemon_is_down_and_each_runs_once_after(plant: Plant):
    plant.stop_daemon()
    try:
        export_ids = [plant.request(source) for source in SMALL_SOURCES for _ in range(3)]
        time.sleep(6)
        assert {plant.export(export_id)["status"] for export_id in export_ids} == {"pending"}
    finally:
        plant.start_daemon()

    for export_id in export_ids:
        assert plant.wait_until(export_id, SETTLED, timeout=180)["status"] == "completed"
    runs = [r for r in plant.runs() if r.dagster_run.tags[EXPORT_ID_TAG] in export_ids]
    assert sorted(r.dagster_run.tags[EXPORT_ID_TAG] for r in runs) == sorted(export_ids)


def test_a_run_that_ended_while_the_daemon_was_down_is_reconciled(plant: Plant):
    export_id = plant.request(LARGE_SOURCE)
    _wait_until_writing(plant, export_id)

    plant.stop_daemon()
    try:
        # Stopping the daemon's process group ends the run it launched; a worker that
        # outlived it is killed, as a crash would.
        for worker in _run_workers(plant, export_id):
            os.kill(worker, signal.SIGKILL)
        run_status = _wait_for_run_to_end(plant, export_id, timeout=30)
        print(f"run while the daemon was down: {run_status}")
        assert plant.export(export_id)["status"] == "processing"
    finally:
        plant.start_daemon()

    settled = plant.wait_until(export_id, SETTLED, timeout=120)
    assert settled["status"] == "failed"
    assert settled["error"].endswith("retry the export")
    assert _files_of(plant, export_id) == []


def _wait_until_writing(plant: Plant, export_id: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        export = plant.export(export_id)
        if export["status"] == "processing" and export["leads_written"]:
            return
        time.sleep(0.05)
    pytest.fail(f"export {export_id} did not start writing: {export}")


def _wait_for_run_to_end(plant: Plant, export_id: str, timeout: float) -> str:
    """The Dagster status of the export's run once it is finished, or its status when
    `timeout` passed (a killed worker leaves its run unfinished until reconciled)."""
    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.from_config(plant.environment["DAGSTER_HOME"]) as instance:
        while True:
            runs = instance.get_runs(dg.RunsFilter(tags={EXPORT_ID_TAG: export_id}))
            if (runs and runs[0].is_finished) or time.monotonic() > deadline:
                return runs[0].status.value if runs else "no run"
            time.sleep(0.5)


def test_a_burst_of_fifty_requests_all_settle_once_within_the_run_limits(plant: Plant):
    bodies = [
        (LARGE_SOURCE, {"filters": {"search": "lovelace"}}),
        (SMALL_SOURCES[0], {"filters": {"statuses": ["won"]}}),
        (SMALL_SOURCES[1], {}),
    ]
    export_ids = [plant.request(*bodies[index % 3]) for index in range(50)]

    for export_id in export_ids:
        assert plant.wait_until(export_id, SETTLED, timeout=600)["status"] == "completed"
    runs = [r for r in plant.runs() if r.dagster_run.tags[EXPORT_ID_TAG] in export_ids]
    assert sorted(r.dagster_run.tags[EXPORT_ID_TAG] for r in runs) == sorted(export_ids)
    assert _most_at_once(runs) <= plant.settings.max_running_exports
    for source in (LARGE_SOURCE, *SMALL_SOURCES):
        of_source = [r for r in runs if r.dagster_run.tags[SOURCE_ID_TAG] == str(source)]
        assert _most_at_once(of_source) <= plant.settings.max_running_exports_per_source


def _most_at_once(runs: list[dg.RunRecord]) -> int:
    """The largest number of runs whose start-to-end intervals overlap at one moment."""
    edges = []
    for record in runs:
        assert record.start_time is not None
        assert record.end_time is not None
        edges += [(record.start_time, 1), (record.end_time, -1)]
    running = most = 0
    for _, change in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        running += change
        most = max(most, running)
    return most
