"""Running the whole product on one machine: the API, the Dagster webserver and daemon.

`run_services` starts the three as child processes and stops them together, on
Ctrl-C, SIGTERM or SIGHUP, or as soon as one of them exits by itself. Each child runs
in its own process group, so Ctrl-C in a terminal reaches only this supervisor, which
then stops the children itself and knows that their exits are expected. A supervisor killed with
SIGKILL cannot do that: its children keep running and must be stopped by hand.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click
import yaml

from export_pipeline.defs.exports.tags import SOURCE_ID_TAG
from export_pipeline.leads.catalog import list_sources
from export_pipeline.leads.demo import DEMO_SOURCE_NAME, DEMO_USER_NAME
from export_pipeline.leads.store import LeadStore, LeadStoreBusy
from export_pipeline.settings import Settings
from export_pipeline.status import users
from export_pipeline.status.database import make_engine, make_session_factory, migrate

API_APP_FACTORY = "export_pipeline.api.main:create_app"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_TIMEOUT_SECONDS = 10.0
HEALTH_TIMEOUT_SECONDS = 60.0
SAMPLE_EXPORT_TIMEOUT_SECONDS = 180.0
SAMPLE_EXPORT_STATUSES = ("qualified", "won")
POLL_SECONDS = 0.5
SETTLED_STATUSES = ("completed", "failed", "cancelled", "expired")


class ServeError(Exception):
    """The services cannot start; the message says what to do about it."""


class ChildExited(Exception):
    """A child process exited while it should have been serving."""


class StopRequested(BaseException):
    """A stop signal arrived; raised from the signal handler to end any wait at once.

    A `BaseException`, like `KeyboardInterrupt`, so that no `except Exception` in the
    code it interrupts swallows it."""


@dataclass(frozen=True)
class Child:
    name: str
    process: subprocess.Popen[bytes]


def run_services(settings: Settings, *, sample_export: bool) -> int:
    """Serve until a stop signal (exit code 0) or until a child exits (exit code 1).

    Reads `dagster.yaml` and `workspace.yaml` from the current directory and raises
    `ServeError` before starting anything if either is missing or a port is taken.
    With `sample_export`, requests an export of the demo source once the API is up
    and prints how to download it.
    """
    project = Path.cwd()
    dagster_config, workspace = _project_files(project)
    with _hold_home(settings.resolved_home):
        return _serve(settings, project, dagster_config, workspace, sample_export=sample_export)


def _serve(
    settings: Settings,
    project: Path,
    dagster_config: Path,
    workspace: Path,
    *,
    sample_export: bool,
) -> int:
    _check_port_free(settings.api_host, settings.api_port, "EXPORT_PIPELINE_API_PORT")
    _check_port_free("127.0.0.1", settings.dagster_port, "EXPORT_PIPELINE_DAGSTER_PORT")
    environment = {
        **prepare_environment(settings, dagster_config),
        "EXPORT_PIPELINE_LAUNCH_FROM_API": "true",
        "EXPORT_PIPELINE_DAGSTER_PORT": str(settings.dagster_port),
    }
    api = ApiClient(_local_host(settings.api_host), settings.api_port)
    dagster = ApiClient("127.0.0.1", settings.dagster_port)

    children: list[Child] = []
    with _stop_signals_raised():
        try:
            _start_children(children, settings, workspace, environment, project)
            _wait_until_healthy(api, dagster, children)
            say(f"API docs:  http://{_url_host(api.host)}:{api.port}/docs")
            say(f"Dagster UI: http://127.0.0.1:{settings.dagster_port}")
            if sample_export:
                run_sample_export(settings, api, children)
            say("serving; press Ctrl-C to stop")
            while True:
                _check_children(children)
                time.sleep(POLL_SECONDS)
        except StopRequested as stop:
            say(f"{stop}: stopping")
            return 0
        except (ChildExited, ServeError) as error:
            say(f"error: {error}; stopping everything")
            return 1
        finally:
            _stop_children(children)


def _hold_home(home: Path) -> IO[str]:
    """Lock `home` for this process's lifetime: two `serve`s on one home would run
    two Dagster daemons on one instance and two sets of sensors on one status table.
    The lock goes with the process, however it ends."""
    home.mkdir(parents=True, exist_ok=True)
    lock = (home / "serve.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        msg = f"another `export-pipeline serve` is running on {home}; stop it first"
        raise ServeError(msg) from None
    return lock


def with_run_limits(instance_config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The Dagster instance config with the run queue's limits taken from settings:
    `max_running_exports` runs at once, `max_running_exports_per_source` per source
    (counted by the runs' source tag)."""
    coordinator = instance_config["run_coordinator"]["config"]
    coordinator["max_concurrent_runs"] = settings.max_running_exports
    coordinator["tag_concurrency_limits"] = [
        {
            "key": SOURCE_ID_TAG,
            "value": {"applyLimitPerUniqueValue": True},
            "limit": settings.max_running_exports_per_source,
        }
    ]
    return instance_config


def prepare_environment(settings: Settings, dagster_config: Path) -> dict[str, str]:
    """The children's environment, with the status table and Dagster's home ready.

    `EXPORT_PIPELINE_HOME` becomes absolute. Without `DAGSTER_HOME` in the
    environment, Dagster's home is `<home>/dagster` with a fresh copy of the project's
    `dagster.yaml`. The Dagster instance is created here, once, because a daemon and
    a webserver starting together on a new SQLite home collide creating its schema.
    """
    home = settings.resolved_home
    home.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "EXPORT_PIPELINE_HOME": str(home)}
    engine = make_engine(settings.status_database_url)
    migrate(engine)
    engine.dispose()

    if "DAGSTER_HOME" not in environment:
        settings.dagster_home.mkdir(parents=True, exist_ok=True)
        instance_config = with_run_limits(yaml.safe_load(dagster_config.read_text()), settings)
        (settings.dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
        environment["DAGSTER_HOME"] = str(settings.dagster_home)
    _create_dagster_instance(Path(environment["DAGSTER_HOME"]))
    return environment


def run_sample_export(settings: Settings, api: ApiClient, children: list[Child]) -> None:
    """Export the demo source through the API as the demo user and print how to
    download the file. Problems are printed, never raised: serving goes on."""
    try:
        _run_sample_export(settings, api, children)
    except (OSError, http.client.HTTPException, LeadStoreBusy, KeyError, TypeError) as error:
        say(f"sample export: gave up: {error!r}")


def _run_sample_export(settings: Settings, api: ApiClient, children: list[Child]) -> None:
    source_id = _demo_source_id(settings)
    key = _issue_demo_key(settings) if source_id is not None else None
    if key is None:
        say(
            f'sample export: skipped: no source "{DEMO_SOURCE_NAME}" or no user '
            f'"{DEMO_USER_NAME}"; run `export-pipeline demo` first'
        )
        return
    say(f'sample export: new API key of user "{DEMO_USER_NAME}": {key}')

    body = {"filters": {"statuses": list(SAMPLE_EXPORT_STATUSES)}, "options": {}}
    status, export = api.call("POST", f"/api/v1/sources/{source_id}/exports", key, body)
    if status != 202:
        say(f"sample export: the API answered {status} to the request: {export}")
        return
    export_id = export["id"]
    say(
        f"sample export: requested export {export_id} of leads with status "
        f"{' or '.join(SAMPLE_EXPORT_STATUSES)}"
    )

    export = _wait_until_settled(api, key, export, children)
    if export is None:
        return
    if export["status"] != "completed":
        say(f"sample export: {export_id} is {export['status']}: {export.get('error')}")
        return

    status, link = api.call("POST", f"/api/v1/exports/{export_id}/links", key, {})
    if status != 201:
        say(f"sample export: the API answered {status} to the link request: {link}")
        return
    command = shlex.join(
        [
            "curl",
            "-fSL",
            "-H",
            f"Authorization: Bearer {key}",
            "-o",
            export["file_name"],
            link["url"],
        ]
    )
    say(
        f"sample export: {export['lead_count']} leads, {export['file_size']} bytes; the "
        f"link expires at {link['expires_at']}\n  {link['url']}\n  {command}"
    )


def _wait_until_settled(
    api: ApiClient, key: str, export: dict[str, Any], children: list[Child]
) -> dict[str, Any] | None:
    """The export once settled, printing each new status; None (and why) if the API
    fails or the timeout passes first."""
    deadline = time.monotonic() + SAMPLE_EXPORT_TIMEOUT_SECONDS
    seen = export["status"]
    say(f"sample export: {seen}")
    while export["status"] not in SETTLED_STATUSES:
        if time.monotonic() > deadline:
            say(
                f"sample export: still {export['status']} after "
                f"{SAMPLE_EXPORT_TIMEOUT_SECONDS:.0f} s; follow it in the Dagster UI"
            )
            return None
        _check_children(children)
        time.sleep(POLL_SECONDS)
        status, export = api.call("GET", f"/api/v1/exports/{export['id']}", key)
        if status != 200:
            say(f"sample export: the API answered {status} to the status request: {export}")
            return None
        if export["status"] != seen:
            seen = export["status"]
            say(f"sample export: {seen}")
    return export


def _demo_source_id(settings: Settings) -> int | None:
    store = LeadStore(settings.lead_store_path, wait_seconds=settings.lead_store_wait_seconds)
    with store.reading() as connection:
        found = [s for s in list_sources(connection) if s.name == DEMO_SOURCE_NAME]
    return found[0].source_id if found else None


def _issue_demo_key(settings: Settings) -> str | None:
    engine = make_engine(settings.status_database_url)
    try:
        with make_session_factory(engine).begin() as session:
            user = users.find_user(session, DEMO_USER_NAME)
            return users.issue_api_key(session, user) if user else None
    finally:
        engine.dispose()


class ApiClient:
    """JSON calls to a local service (the API, or the Dagster webserver for its health).
    The standard library suffices for these few calls,
    and it keeps `serve` working where only the runtime dependencies are installed."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def call(
        self, method: str, path: str, key: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        """The status code and the decoded JSON body (the raw text if it is not JSON)."""
        headers = {"Accept": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request(method, path, payload, headers)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        finally:
            connection.close()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


def _project_files(project: Path) -> tuple[Path, Path]:
    dagster_config = project / "dagster.yaml"
    workspace = project / "workspace.yaml"
    missing = [path.name for path in (dagster_config, workspace) if not path.is_file()]
    if missing:
        msg = f"{' and '.join(missing)} not found in {project}; run `export-pipeline serve` "
        msg += "from the project root"
        raise ServeError(msg)
    return dagster_config, workspace


def _check_port_free(host: str, port: int, setting: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # Servers set SO_REUSEADDR too, so a port that only lingers in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            msg = f"cannot listen on {host}:{port} ({error.strerror}); stop what runs "
            msg += f"there or choose another port with {setting}"
            raise ServeError(msg) from None


def _create_dagster_instance(dagster_home: Path) -> None:
    from dagster import DagsterInstance

    DagsterInstance.from_config(str(dagster_home)).dispose()


def _start_children(
    children: list[Child],
    settings: Settings,
    workspace: Path,
    environment: dict[str, str],
    project: Path,
) -> None:
    """Start the three services, adding each to `children` as soon as it runs, so that a
    stop signal in between still stops the ones already started."""
    commands = {
        "api": [
            sys.executable, "-m", "uvicorn", "--factory", API_APP_FACTORY, "--no-access-log",
            "--host", settings.api_host, "--port", str(settings.api_port),
        ],
        "dagster-webserver": [
            _script("dagster-webserver"), "-h", "127.0.0.1", "-p", str(settings.dagster_port),
            "-w", str(workspace),
        ],
        "dagster-daemon": [_script("dagster-daemon"), "run", "-w", str(workspace)],
    }  # fmt: skip
    for name, command in commands.items():
        process = subprocess.Popen(
            command, cwd=project, env=environment, stdin=subprocess.DEVNULL, process_group=0
        )
        children.append(Child(name, process))
        say(f"started {name} (pid {process.pid})")


def _script(name: str) -> str:
    """A console script installed next to the running Python, else found on PATH."""
    script = Path(sys.executable).with_name(name)
    return str(script) if script.exists() else name


def _wait_until_healthy(api: ApiClient, dagster: ApiClient, children: list[Child]) -> None:
    """Wait until the API and the Dagster webserver both answer: until the webserver
    does, the API cannot launch runs and new exports wait for the request sensor."""
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    for name, client, path in (
        ("the API", api, "/api/v1/health"),
        ("the Dagster webserver", dagster, "/server_info"),
    ):
        while not _answers(client, path):
            _check_children(children)
            if time.monotonic() > deadline:
                msg = f"{name} did not answer {path} within {HEALTH_TIMEOUT_SECONDS:.0f} s"
                raise ServeError(msg)
            time.sleep(POLL_SECONDS)


def _answers(client: ApiClient, path: str) -> bool:
    try:
        status, _ = client.call("GET", path)
    except (OSError, http.client.HTTPException):
        return False  # not listening yet
    return status == 200


def _check_children(children: list[Child]) -> None:
    for child in children:
        code = child.process.poll()
        if code is not None:
            msg = f"{child.name} (pid {child.process.pid}) exited with code {code}"
            raise ChildExited(msg)


def _stop_children(children: list[Child]) -> None:
    """SIGTERM to every child still running, then SIGKILL to those that outlive the
    timeout. Stop signals are ignored meanwhile so that a second Ctrl-C cannot cut the
    shutdown short."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
    for child in children:
        if child.process.poll() is None:
            child.process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{child.name} did not stop within {STOP_TIMEOUT_SECONDS:.0f} s; killing it")
            child.process.kill()
            child.process.wait()
    say("stopped")


@contextmanager
def _stop_signals_raised() -> Iterator[None]:
    """Within the block, a stop signal raises `StopRequested` wherever the code waits."""

    def request_stop(signal_number: int, _frame: object) -> None:
        raise StopRequested(signal.Signals(signal_number).name)

    previous = {s: signal.signal(s, request_stop) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for stop_signal, handler in previous.items():
            signal.signal(stop_signal, handler)


def _local_host(host: str) -> str:
    """Where this machine reaches a server listening on `host`."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def say(message: str) -> None:
    click.echo(f"export-pipeline: {message}")
