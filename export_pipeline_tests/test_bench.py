"""`make bench` on a small store: every tool runs, writes the same bytes, and the
report holds the figures and verdicts the README quotes."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_benchmark_runs_every_tool_and_they_write_identical_files(tmp_path: Path):
    done = subprocess.run(
        [
            sys.executable, "-m", "bench", "--leads", "2000", "--scale-leads", "4000",
            "--repeat", "1", "--data", str(tmp_path / "data"), "--results", str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["identical_output"] == {"filtered": True, "whole": True, "search": True}
    for workload in ("filtered", "whole", "search"):
        tools = report["workloads"][workload]["tools"]
        assert set(tools) == {"ours", "duckdb_sql", "polars_lazy", "pandas_naive"}
        assert len({tool["rows"] for tool in tools.values()}) == 1
        assert all(tool["seconds"] > 0 and tool["peak_rss_mb"] > 0 for tool in tools.values())
        assert "met" in report["targets"]["ratio_to_best_at_most_1"][workload]
    assert report["workloads"]["whole"]["tools"]["ours"]["rows"] == 2000
    assert report["targets"]["scale"]["leads_large"] == 4000
    assert "vs best hand-written" in done.stdout
