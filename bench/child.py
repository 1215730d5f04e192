"""Runs one tool on one workload in its own process: `python -m bench.child TOOL STORE
WORKLOAD OUT`. Prints as JSON the seconds the export took and the process's peak RSS.

Peak RSS is `VmHWM` of this process image. The `ru_maxrss` a parent gets from
`wait4` is no good here: Linux carries the high-water mark across `exec`, so it
starts at whatever the parent held when it forked."""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

from bench.workloads import WORKLOADS


def main() -> None:
    tool, store, workload, out = sys.argv[1:5]
    module = importlib.import_module(f"bench.tools.{tool}")
    started = time.perf_counter()
    module.run(Path(store), WORKLOADS[workload], Path(out))
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_mb()}))


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    msg = "/proc/self/status has no VmHWM line"
    raise RuntimeError(msg)


if __name__ == "__main__":
    main()
