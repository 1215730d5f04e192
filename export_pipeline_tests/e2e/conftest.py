"""A running product for end-to-end tests: the real CLI, API, Dagster webserver and daemon."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
CLI = Path(sys.executable).with_name("export-pipeline")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RunningProduct:
    home: Path
    env: dict[str, str]
    api_url: str
    dagster_url: str
    keys: dict[str, str] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(CLI), *args], env=self.env, cwd=REPO, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"export-pipeline {' '.join(args)}: {done.stderr}"
        return done.stdout

    def client(self, user: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url + "/api/v1",
            headers={"Authorization": f"Bearer {self.keys[user]}"},
            timeout=30,
        )

    def wait_for_export(self, user: str, export_id: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        with self.client(user) as client:
            while time.monotonic() < deadline:
                export = client.get(f"/exports/{export_id}").raise_for_status().json()
                if export["status"] not in ("pending", "processing"):
                    return export
                time.sleep(0.5)
        pytest.fail(f"export {export_id} did not settle within {timeout} s")


def import_source(product: RunningProduct, name: str, file: str, *options: str) -> int:
    output = product.cli(
        "leads", "import", str(SHARED_DATA / "leads" / file), "--source", name, *options
    )
    match = re.search(r"source (\d+)", output)
    assert match, output
    return int(match.group(1))


def create_user(product: RunningProduct, name: str, *grants: str) -> str:
    arguments = ["users", "create", name]
    for grant in grants:
        arguments += ["--grant", grant]
    output = product.cli(*arguments)
    match = re.search(r"\bep_[A-Za-z0-9_-]+", output)
    assert match, output
    return match.group(0)


@pytest.fixture(scope="session")
def running_product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProduct]:
    if not (SHARED_DATA / "leads").is_dir():
        pytest.skip(f"the shared lead files are missing: {SHARED_DATA / 'leads'}")
    home = tmp_path_factory.mktemp("e2e-home")
    api_port, dagster_port = free_port(), free_port()
    env = {
        **os.environ,
        "EXPORT_PIPELINE_HOME": str(home),
        "EXPORT_PIPELINE_API_PORT": str(api_port),
        "EXPORT_PIPELINE_DAGSTER_PORT": str(dagster_port),
        "EXPORT_PIPELINE_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
    }
    env.pop("DAGSTER_HOME", None)
    product = RunningProduct(
        home=home,
        env=env,
        api_url=f"http://127.0.0.1:{api_port}",
        dagster_url=f"http://127.0.0.1:{dagster_port}",
    )
    product.sources["datablist"] = import_source(
        product,
        "Datablist leads",
        "datablist_leads-10000.csv",
        "--map",
        "first_name=First Name",
        "--map",
        "last_name=Last Name",
        "--map",
        "phone=Phone 1",
        "--map",
        "email=Email 1",
        "--status-column",
        "Deal Stage",
        "--attribute-column",
        "Source",
    )
    product.sources["us"] = import_source(
        product,
        "US 500",
        "us-500.csv",
        "--map",
        "first_name=first_name",
        "--map",
        "last_name=last_name",
        "--map",
        "email=email",
        "--map",
        "phone=phone1",
        "--map",
        "address=address",
        "--map",
        "city=city",
        "--map",
        "state=state",
        "--map",
        "zip_code=zip",
    )
    product.sources["uk"] = import_source(
        product,
        "UK 500",
        "uk-500.csv",
        "--map",
        "first_name=firstName",
        "--map",
        "last_name=lastName",
        "--map",
        "email=email",
        "--map",
        "phone=phone1",
        "--map",
        "address=address",
        "--map",
        "city=city",
        "--map",
        "zip_code=postal",
    )
    product.keys["alice"] = create_user(
        product, "alice", *(f"{source_id}:exporter" for source_id in product.sources.values())
    )
    product.keys["mallory"] = create_user(product, "mallory", f"{product.sources['us']}:exporter")

    log = (home / "serve.log").open("wb")
    server = subprocess.Popen(
        [str(CLI), "serve"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_health(product, server)
        yield product
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _wait_for_health(product: RunningProduct, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"serve exited early: {(product.home / 'serve.log').read_text()[-3000:]}")
        if all(
            _answers(url)
            for url in (product.api_url + "/api/v1/health", product.dagster_url + "/server_info")
        ):
            return
        time.sleep(0.5)
    pytest.fail("the API and the Dagster webserver did not both answer within 120 s")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
