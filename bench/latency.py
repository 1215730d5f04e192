"""`make bench`, second part: how long a user waits for a small export.

Starts the whole product (`export-pipeline serve`: API, Dagster webserver and daemon)
in a fresh home with demo sources of 1,000 leads each, then measures request-to-
completed latency of whole-source exports: one at a time, and in bursts submitted at
once and spread over the sources. The latency is the export's own `completed_at`
minus its `requested_at`, as the status table recorded them. Prints a table and writes
`bench/results/latency.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
CLI = str(Path(sys.executable).with_name("export-pipeline"))
SETTLED = {"completed", "failed", "cancelled", "expired"}
TARGET_ALONE_P50 = 5.0
TARGET_BURST_P95 = 10.0


def main() -> None:
    arguments = _parse_arguments()
    with tempfile.TemporaryDirectory(
        prefix="export-latency-", ignore_cleanup_errors=True
    ) as scratch:
        home = Path(scratch) / "home"
        environment = _environment(home)
        key, sources = _seed(environment, arguments.leads, arguments.sources)
        serve = _start_serve(environment, home)
        try:
            api = httpx.Client(
                base_url=f"http://127.0.0.1:{environment['EXPORT_PIPELINE_API_PORT']}/api/v1",
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            dagster_url = f"http://127.0.0.1:{environment['EXPORT_PIPELINE_DAGSTER_PORT']}"
            _wait_until_ready(api, serve, dagster_url)
            _export(api, sources[0])  # warm-up: the first run loads the code location
            alone = [_export(api, sources[0]) for _ in range(arguments.alone)]
            bursts = []
            for _ in range(arguments.bursts):
                bursts += _burst(api, sources, arguments.burst_size)
        finally:
            serve.send_signal(signal.SIGINT)
            serve.wait(timeout=60)

    report = _report(alone, bursts, arguments)
    print(_table(report))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latency.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'latency.json'}")


def _environment(home: Path) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EXPORT_PIPELINE_", "DAGSTER_"))
    }
    environment.update(
        EXPORT_PIPELINE_HOME=str(home),
        EXPORT_PIPELINE_API_PORT=str(_free_port()),
        EXPORT_PIPELINE_DAGSTER_PORT=str(_free_port()),
    )
    return environment


def _seed(environment: dict[str, str], leads: int, sources: int) -> tuple[str, list[int]]:
    """Demo sources of `leads` leads each, and the API key of the demo user, who is
    admin of all of them."""
    output = ""
    for number in range(1, sources + 1):
        name = f"Latency {number}"
        output = _cli(
            environment, "demo", "--leads", str(leads), "--seed", str(number), "--source", name
        )
    key = re.search(r"^ep_\S+$", output, re.MULTILINE)
    if key is None:
        sys.exit("the demo command printed no API key")
    return key.group(0), list(range(1, sources + 1))


def _cli(environment: dict[str, str], *arguments: str) -> str:
    done = subprocess.run(
        [CLI, *arguments], env=environment, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"export-pipeline {' '.join(arguments)} failed: {done.stderr.strip()}")
    return done.stdout


def _start_serve(environment: dict[str, str], home: Path) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [CLI, "serve"],
        env=environment,
        stdout=(home / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def _wait_until_ready(api: httpx.Client, serve: subprocess.Popen, dagster_url: str) -> None:
    """Until the API and the Dagster webserver, through which it launches runs, answer."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            sys.exit(f"serve exited with code {serve.returncode}")
        try:
            ready = api.get("/health").status_code == 200
            if ready and httpx.get(dagster_url + "/server_info").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit("the API and the Dagster webserver did not both answer within 180 s")


def _export(api: httpx.Client, source_id: int) -> dict:
    """Request a whole-source export and wait until it settles; its latency facts."""
    response = api.post(f"/sources/{source_id}/exports", json={})
    if response.status_code != 202:
        sys.exit(f"the export request was refused: {response.status_code} {response.text}")
    export_id = response.json()["id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        export = api.get(f"/exports/{export_id}").json()
        if export["status"] in SETTLED:
            break
        time.sleep(0.1)
    else:
        sys.exit(f"export {export_id} did not settle within 300 s")
    if export["status"] != "completed":
        sys.exit(f"export {export_id} ended {export['status']}: {export.get('error')}")
    requested = datetime.fromisoformat(export["requested_at"])
    completed = datetime.fromisoformat(export["completed_at"])
    return {
        "export_id": export_id,
        "source_id": source_id,
        "lead_count": export["lead_count"],
        "seconds": round((completed - requested).total_seconds(), 3),
    }


def _burst(api: httpx.Client, sources: list[int], size: int) -> list[dict]:
    """`size` exports submitted at once, round robin over the sources."""
    with ThreadPoolExecutor(max_workers=size) as pool:
        return list(
            pool.map(lambda index: _export(api, sources[index % len(sources)]), range(size))
        )


def _percentile(values: list[float], percent: float) -> float:
    """Nearest-rank percentile: the smallest value at or above `percent` of them."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def _report(alone: list[dict], bursts: list[dict], arguments) -> dict:
    alone_seconds = [sample["seconds"] for sample in alone]
    burst_seconds = [sample["seconds"] for sample in bursts]
    alone_p50 = statistics.median(alone_seconds)
    burst_p95 = _percentile(burst_seconds, 95)
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "leads_per_export": arguments.leads,
        "sources": arguments.sources,
        "alone": {
            "samples": alone,
            "p50_seconds": round(alone_p50, 3),
            "max_seconds": max(alone_seconds),
        },
        "burst": {
            "size": arguments.burst_size,
            "bursts": arguments.bursts,
            "samples": bursts,
            "p50_seconds": round(statistics.median(burst_seconds), 3),
            "p95_seconds": burst_p95,
        },
        "targets": {
            f"alone_p50_at_most_{TARGET_ALONE_P50:g}_s": alone_p50 <= TARGET_ALONE_P50,
            f"burst_p95_at_most_{TARGET_BURST_P95:g}_s": burst_p95 <= TARGET_BURST_P95,
        },
    }


def _table(report: dict) -> str:
    leads = report["leads_per_export"]
    lines = [
        "| request to completed | exports | p50 s | p95 s | max s | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    alone_met, burst_met = report["targets"].values()
    for label, part, target, met in (
        (
            f"{leads:,} leads, one at a time",
            report["alone"],
            f"p50 <= {TARGET_ALONE_P50:g} s",
            alone_met,
        ),
        (
            f"{leads:,} leads, {report['burst']['size']} at once",
            report["burst"],
            f"p95 <= {TARGET_BURST_P95:g} s",
            burst_met,
        ),
    ):
        seconds = [sample["seconds"] for sample in part["samples"]]
        verdict = "met" if met else "NOT met"
        lines.append(
            f"| {label} | {len(seconds)} | {statistics.median(seconds):.2f} | "
            f"{_percentile(seconds, 95):.2f} | {max(seconds):.2f} | {target}: {verdict} |"
        )
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--leads", type=int, default=1000, help="leads per export")
    parser.add_argument("--sources", type=int, default=5, help="sources the bursts spread over")
    parser.add_argument("--alone", type=int, default=10, help="exports one at a time")
    parser.add_argument("--burst-size", type=int, default=10, help="exports submitted at once")
    parser.add_argument("--bursts", type=int, default=2, help="how many bursts")
    return parser.parse_args()


if __name__ == "__main__":
    main()
