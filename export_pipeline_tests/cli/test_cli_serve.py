"""`export-pipeline serve` as a user runs it: three real services that start together
and stop together, whether asked to or because one of them died."""

from __future__ import annotations

import csv
import io
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from export_pipeline_tests.cli.conftest import CLI, REPO, Cli, cli_environment

pytestmark = pytest.mark.e2e

CHILDREN = ("api", "dagster-webserver", "dagster-daemon")
STARTED = re.compile(r"export-pipeline: started (\S+) \(pid (\d+)\)")
STOP_SECONDS = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def is_running(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@dataclass
class Serving:
    process: subprocess.Popen[bytes]
    log: Path
    api_url: str
    dagster_url: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of `pattern` in the output, waiting for it to appear."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}:\n{self.tail()}")
            time.sleep(0.5)
        pytest.fail(f"no {pattern!r} in the output within {timeout} s:\n{self.tail()}")

    def child_pids(self) -> dict[str, int]:
        self.wait_for("started dagster-daemon", 60)
        return {name: int(pid) for name, pid in STARTED.findall(self.output())}

    def tail(self) -> str:
        return self.output()[-4000:]


def get(url: str, timeout: float, **options: object) -> httpx.Response:
    """GET `url` until it answers 200 or the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=5, **options)
            if response.status_code == 200 or time.monotonic() > deadline:
                return response
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


@pytest.fixture
def start_serve(tmp_path: Path) -> Iterator:
    """Starts `export-pipeline serve` on free ports with a home of its own; whatever is
    left running at the end of the test is killed."""
    started: list[Serving] = []

    def start(*options: str, home: Path) -> Serving:
        api_port, dagster_port = free_port(), free_port()
        env = cli_environment(home) | {
            "EXPORT_PIPELINE_API_PORT": str(api_port),
            "EXPORT_PIPELINE_DAGSTER_PORT": str(dagster_port),
            "EXPORT_PIPELINE_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        }
        log = tmp_path / f"serve-{len(started)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(CLI), "serve", *options],
                env=env,
                cwd=REPO,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        serving = Serving(
            process, log, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{dagster_port}"
        )
        started.append(serving)
        return serving

    yield start

    for serving in started:
        children = [int(pid) for _, pid in STARTED.findall(serving.output())]
        for pid in [serving.process.pid, *children]:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
        serving.process.wait()


def wait_until_stopped(serving: Serving) -> tuple[int, list[str]]:
    """The exit code of serve and the children still running, `STOP_SECONDS` after
    serve was told to stop (or saw a child die)."""
    pids = serving.child_pids()
    deadline = time.monotonic() + STOP_SECONDS
    code = serving.process.wait(timeout=STOP_SECONDS)
    while time.monotonic() < deadline and any(is_running(pid) for pid in pids.values()):
        time.sleep(0.2)
    return code, [name for name, pid in pids.items() if is_running(pid)]


def test_serve_starts_three_services_and_ctrl_c_stops_them_all(tmp_path: Path, start_serve) -> None:
    serving = start_serve(home=tmp_path / "home")

    assert sorted(serving.child_pids()) == sorted(CHILDREN)
    health = get(serving.api_url + "/api/v1/health", 120)
    assert health.json() == {"status": "ok"}
    assert get(serving.dagster_url + "/server_info", 120).status_code == 200
    serving.wait_for(r"Dagster UI: http://127\.0\.0\.1:\d+", 10)

    serving.process.send_signal(signal.SIGINT)

    code, still_running = wait_until_stopped(serving)
    assert code == 0, serving.tail()
    assert still_running == []
    assert "SIGINT: stopping" in serving.output()
    home = tmp_path / "home"
    written = yaml.safe_load((home / "dagster" / "dagster.yaml").read_text())
    assert written == yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert (home / "status.sqlite3").exists()


def test_serve_sample_export_prints_a_working_download_and_stops_when_a_child_dies(
    tmp_path: Path, start_serve
) -> None:
    home = tmp_path / "home"
    Cli(home, cli_environment(home)).ok("demo", "--leads", "300")
    serving = start_serve("--sample-export", home=home)

    curl = serving.wait_for(r"\n  (curl -fSL .*)\n", 240).group(1)
    arguments = shlex.split(curl)
    key = arguments[arguments.index("-H") + 1].removeprefix("Authorization: Bearer ")
    download = get(arguments[-1], 10, headers={"Authorization": f"Bearer {key}"})
    assert download.status_code == 200, download.text
    header, *rows = csv.reader(io.StringIO(download.text, newline=""))
    assert header[:4] == ["lead_id", "first_name", "last_name", "email"]
    assert rows
    assert {row[header.index("status")] for row in rows} <= {"qualified", "won"}
    assert arguments[arguments.index("-o") + 1].startswith("demo-leads_")
    assert re.search(r"sample export: pending\n(.*\n)*.*sample export: completed", serving.output())

    daemon = serving.child_pids()["dagster-daemon"]
    os.kill(daemon, signal.SIGKILL)

    code, still_running = wait_until_stopped(serving)
    assert code == 1, serving.tail()
    assert still_running == []
    assert f"dagster-daemon (pid {daemon}) exited with code -9" in serving.output()
