"""The Dagster instance that `serve` prepares takes its run limits from the settings."""

from pathlib import Path

import yaml

from export_pipeline.serve import with_run_limits
from export_pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_run_limits_come_from_the_settings_and_the_rest_from_dagster_yaml():
    template = yaml.safe_load((REPO / "dagster.yaml").read_text())
    settings = Settings(max_running_exports=7, max_running_exports_per_source=3)

    config = with_run_limits(template, settings)

    coordinator = config["run_coordinator"]["config"]
    assert coordinator["max_concurrent_runs"] == 7
    assert coordinator["tag_concurrency_limits"] == [
        {
            "key": "export_pipeline/source_id",
            "value": {"applyLimitPerUniqueValue": True},
            "limit": 3,
        }
    ]
    assert coordinator["dequeue_interval_seconds"] == 1
    assert config["run_monitoring"]["enabled"] is True
