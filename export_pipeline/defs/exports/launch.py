"""Handing a new export request to Dagster at once, through the webserver's GraphQL API.

The request sensor would pick the request up too, but the Dagster daemon evaluates
sensors at most every five seconds; launching from the API takes that wait off every
export. The launched run carries the sensor's run key for the export, so the sensor
never starts a second run for it, and a failed launch (webserver down) only means the
sensor starts the run a few seconds later.
"""

from __future__ import annotations

import logging

import httpx

from export_pipeline.defs.exports.tags import export_run_tags

log = logging.getLogger(__name__)

LOCATION_NAME = "export_pipeline"
REPOSITORY_NAME = "__repository__"
JOB_NAME = "lead_export_job"
PARTITIONS_NAME = "exports"
REQUEST_SENSOR_NAME = "export_request_sensor"
LAUNCH_TIMEOUT_SECONDS = 5.0

_ADD_PARTITION = """
mutation AddPartition($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name,
                      partitionKey: $key) {
    __typename
  }
}
"""
_LAUNCH_RUN = """
mutation LaunchRun($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
  }
}
"""
_ADDED = {"AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"}


def launch_export_run(
    dagster_url: str, export_id: str, source_id: int, requested_by: str
) -> str | None:
    """Queue the run of one export; its run id, or None if Dagster could not be reached
    or refused (the request sensor then starts it)."""
    selector = {"repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY_NAME}
    tags = {
        **export_run_tags(export_id, source_id, requested_by),
        "dagster/partition": export_id,
        "dagster/run_key": export_id,
        "dagster/sensor_name": REQUEST_SENSOR_NAME,
    }
    params = {
        "selector": {**selector, "jobName": JOB_NAME},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        "runConfigData": {},
    }
    try:
        with httpx.Client(base_url=dagster_url, timeout=LAUNCH_TIMEOUT_SECONDS) as client:
            added = _graphql(
                client,
                _ADD_PARTITION,
                {"selector": selector, "name": PARTITIONS_NAME, "key": export_id},
            )["addDynamicPartition"]["__typename"]
            if added not in _ADDED:
                log.warning("Dagster refused the partition of export %s: %s", export_id, added)
                return None
            launched = _graphql(client, _LAUNCH_RUN, {"params": params})["launchRun"]
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as error:
        log.warning(
            "could not launch the run of export %s (%s); the request sensor will start it",
            export_id,
            type(error).__name__,
        )
        return None
    if launched["__typename"] != "LaunchRunSuccess":
        log.warning("Dagster refused the run of export %s: %s", export_id, launched["__typename"])
        return None
    return launched["run"]["runId"]


def _graphql(client: httpx.Client, query: str, variables: dict) -> dict:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        msg = body["errors"][0].get("message", "GraphQL error")
        raise ValueError(msg)
    return body["data"]
