"""`make bench`: the export engine against hand-written DuckDB, Polars and pandas.

Generates (once, then reuses) a deterministic store, runs every tool on every workload
as a separate process, checks that all tools wrote the same bytes, and prints a table.
Writes `bench/results/latest.json` with wall seconds (median of the repeats), peak RSS
(largest of the repeats), rows and bytes per tool and workload, and the ratio of ours
to the best hand-written tool. Then checks how the filtered export's memory grows
when the store is three times larger.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from bench.generate import generate_store
from bench.tools import TOOLS
from bench.workloads import WORKLOADS

BENCH = Path(__file__).resolve().parent
DATA = BENCH / "data"
RESULTS = BENCH / "results"
HAND_WRITTEN = tuple(tool for tool in TOOLS if tool != "ours")
SINGLE_RUN_TOOLS = ("pandas_naive",)
"""Tools too slow to repeat; they are a reference point, not a contender."""


@dataclass
class Measurement:
    tool: str
    workload: str
    leads_in_store: int
    seconds: float
    seconds_all: list[float]
    peak_rss_mb: float
    rows: int
    bytes: int
    sha256: str


def main() -> None:
    arguments = _parse_arguments()
    store = ensure_store(arguments.leads, arguments.data)
    measurements = []
    with tempfile.TemporaryDirectory(prefix="export-bench-") as scratch:
        for workload in arguments.workloads:
            for tool in arguments.tools:
                repeat = 1 if tool in SINGLE_RUN_TOOLS else arguments.repeat
                measurement = measure(tool, workload, store, arguments.leads, Path(scratch), repeat)
                measurements.append(measurement)
                _print_progress(measurement)
        scale = None
        if arguments.scale_leads and "filtered" in arguments.workloads:
            large = ensure_store(arguments.scale_leads, arguments.data)
            big = measure("ours", "filtered", large, arguments.scale_leads, Path(scratch), 1)
            _print_progress(big)
            scale = _scale_check(measurements, big)

    report = _report(measurements, scale, arguments)
    print(_table(report))
    arguments.results.mkdir(parents=True, exist_ok=True)
    (arguments.results / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {arguments.results / 'latest.json'}")
    if not report["identical_output"]:
        sys.exit("tools wrote different bytes for the same workload; see identical_output")


def ensure_store(leads: int, data: Path = DATA) -> Path:
    path = data / f"store-{leads}.duckdb"
    if not path.exists():
        data.mkdir(parents=True, exist_ok=True)
        print(f"generating a store of {leads:,} leads in {path} ...", flush=True)
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        generate_store(partial, leads=leads)
        partial.rename(path)
        print(f"generated in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def measure(
    tool: str, workload: str, store: Path, leads: int, scratch: Path, repeat: int
) -> Measurement:
    seconds, peaks = [], []
    out = scratch / f"{tool}-{workload}-{leads}.csv"
    for _ in range(repeat):
        out.unlink(missing_ok=True)
        run_seconds, peak = _run_child(tool, workload, store, out)
        seconds.append(run_seconds)
        peaks.append(peak)
    digest = hashlib.sha256()
    with out.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    rows = pl.scan_csv(out, infer_schema=False).select(pl.len()).collect().item()
    measurement = Measurement(
        tool=tool,
        workload=workload,
        leads_in_store=leads,
        seconds=round(statistics.median(seconds), 3),
        seconds_all=[round(value, 3) for value in seconds],
        peak_rss_mb=round(max(peaks), 1),
        rows=rows,
        bytes=out.stat().st_size,
        sha256=digest.hexdigest(),
    )
    out.unlink()
    return measurement


def _run_child(tool: str, workload: str, store: Path, out: Path) -> tuple[float, float]:
    """Run one export in a fresh process; its seconds and its peak RSS in MB."""
    command = [sys.executable, "-m", "bench.child", tool, str(store), workload, str(out)]
    done = subprocess.run(command, stdout=subprocess.PIPE, cwd=BENCH.parent, check=False)
    if done.returncode != 0:
        sys.exit(f"{tool} on {workload} failed with exit code {done.returncode}")
    result = json.loads(done.stdout)
    return result["seconds"], result["peak_rss_mb"]


def _scale_check(measurements: list[Measurement], big: Measurement) -> dict:
    small = next(m for m in measurements if m.tool == "ours" and m.workload == "filtered")
    return {
        "workload": "filtered",
        "leads_small": small.leads_in_store,
        "leads_large": big.leads_in_store,
        "peak_rss_mb_small": small.peak_rss_mb,
        "peak_rss_mb_large": big.peak_rss_mb,
        "seconds_large": big.seconds,
        "rows_large": big.rows,
        "rss_ratio": round(big.peak_rss_mb / small.peak_rss_mb, 3),
        "target": "rss_ratio <= 1.3",
        "met": big.peak_rss_mb / small.peak_rss_mb <= 1.3,
    }


def _report(measurements: list[Measurement], scale: dict | None, arguments) -> dict:
    workloads = {}
    identical = {}
    for workload in arguments.workloads:
        rows = [m for m in measurements if m.workload == workload]
        ours = next((m for m in rows if m.tool == "ours"), None)
        rivals = [m for m in rows if m.tool in HAND_WRITTEN]
        best = min(rivals, key=lambda m: m.seconds) if rivals else None
        identical[workload] = len({m.sha256 for m in rows}) == 1
        summary: dict = {"tools": {m.tool: asdict(m) for m in rows}}
        if ours and best:
            summary["best_hand_written"] = best.tool
            summary["ratio_to_best"] = round(ours.seconds / best.seconds, 3)
        workloads[workload] = summary
    whole = next((m for m in measurements if m.tool == "ours" and m.workload == "whole"), None)
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "leads_in_largest_source": arguments.leads,
        "repeat": arguments.repeat,
        "cpu_count": os.cpu_count(),
        "workloads": workloads,
        "identical_output": identical,
        "targets": {
            "ratio_to_best_at_most_1": {
                name: {"ratio": ratio, "met": ratio <= 1.0}
                for name, summary in workloads.items()
                if (ratio := summary.get("ratio_to_best")) is not None
            },
            "whole_source_peak_rss_at_most_1024_mb": (
                {"peak_rss_mb": whole.peak_rss_mb, "met": whole.peak_rss_mb <= 1024}
                if whole
                else None
            ),
            "scale": scale,
        },
    }


def _table(report: dict) -> str:
    lines = [
        "| workload | tool | seconds | peak RSS MB | rows | MB written | vs best hand-written |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, summary in report["workloads"].items():
        best = summary.get("best_hand_written")
        best_seconds = summary["tools"][best]["seconds"] if best else None
        for tool, m in summary["tools"].items():
            ratio = f"{m['seconds'] / best_seconds:.2f}x" if best_seconds else ""
            lines.append(
                f"| {name} | {tool} | {m['seconds']:.2f} | {m['peak_rss_mb']:.0f} | "
                f"{m['rows']:,} | {m['bytes'] / 1e6:.1f} | {ratio} |"
            )
    targets = report["targets"]
    lines.append("")
    for name, target in targets["ratio_to_best_at_most_1"].items():
        verdict = "met" if target["met"] else "NOT met"
        lines.append(f"{name}: ours at {target['ratio']:.2f}x the best hand-written: {verdict}")
    rss = targets["whole_source_peak_rss_at_most_1024_mb"]
    if rss:
        verdict = "met" if rss["met"] else "NOT met"
        lines.append(f"whole: ours peaks at {rss['peak_rss_mb']:.0f} MB (<= 1024 MB): {verdict}")
    scale = targets["scale"]
    if scale:
        lines.append(
            f"filtered export peak RSS: {scale['peak_rss_mb_small']:.0f} MB at "
            f"{scale['leads_small']:,} leads, {scale['peak_rss_mb_large']:.0f} MB at "
            f"{scale['leads_large']:,} leads ({scale['rss_ratio']:.2f}x, <= 1.3x): "
            + ("met" if scale["met"] else "NOT met")
        )
    return "\n".join(lines)


def _print_progress(m: Measurement) -> None:
    print(
        f"{m.workload:>9} {m.tool:>12} at {m.leads_in_store:>9,} leads: {m.seconds:7.2f} s "
        f"{m.peak_rss_mb:7.0f} MB {m.rows:>9,} rows",
        flush=True,
    )


def _parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads in the largest source")
    parser.add_argument(
        "--scale-leads",
        type=int,
        default=3_000_000,
        help="store size for the memory-growth check of the filtered export (0 to skip)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and workload")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--data", type=Path, default=DATA, help="where generated stores are kept")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where latest.json goes")
    return parser.parse_args()


if __name__ == "__main__":
    main()
