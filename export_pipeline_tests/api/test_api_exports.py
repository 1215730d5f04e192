"""Requesting exports, reading them back, and refusing bad requests before queueing."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime

import httpx
import pytest

from export_pipeline.status.models import Role


@pytest.fixture
def exporter(harness):
    return harness.person({harness.acme_id: Role.EXPORTER})


def test_a_valid_request_is_queued_as_pending_with_its_location(client, harness, exporter):
    body = {
        "filters": {
            "statuses": ["new", "won"],
            "created_from": "2026-01-01",
            "created_to": "2026-03-01T00:00:00",
            "time_zone": "Europe/Berlin",
            "attribute": {"key": "segment", "value": "vip"},
            "search": "ada",
        },
        "options": {"columns": ["email", "lead_owner", "segment"], "formula_guard": False},
    }

    response = client.post(
        f"/api/v1/sources/{harness.acme_id}/exports", json=body, headers=exporter.auth
    )

    assert response.status_code == 202
    export = response.json()
    assert response.headers["Location"] == f"/api/v1/exports/{export['id']}"
    assert export["status"] == "pending"
    assert export["source_id"] == harness.acme_id
    assert export["requested_by"] == exporter.name
    assert export["file_name"].startswith("acme-leads_")
    assert export["file_name"].endswith(".csv")
    assert export["download_available"] is False
    assert export["filters"]["statuses"] == ["new", "won"]
    assert export["filters"]["attribute"] == {"key": "segment", "value": "vip"}
    assert export["options"]["columns"] == ["email", "lead_owner", "segment"]
    applied = export["applied_filters"]
    assert applied["created_from"] == "2025-12-31T23:00:00+00:00"
    assert applied["created_to"] == "2026-02-28T23:00:00+00:00"
    assert datetime.fromisoformat(applied["cutoff"]) == datetime.fromisoformat(
        export["requested_at"]
    )
    assert export["requested_at"].endswith("Z")
    for empty in ("started_at", "completed_at", "lead_count", "file_size", "sha256", "error"):
        assert export[empty] is None

    fetched = client.get(response.headers["Location"], headers=exporter.auth)
    assert fetched.status_code == 200
    assert fetched.json() == export
    assert [event.action for event in harness.audit_events(export["id"])] == ["requested"]


def test_a_request_without_a_body_exports_everything(client, harness, exporter):
    response = client.post(f"/api/v1/sources/{harness.acme_id}/exports", headers=exporter.auth)

    assert response.status_code == 202
    assert response.json()["filters"]["statuses"] == []
    assert response.json()["options"]["formula_guard"] is True


def test_the_history_lists_newest_first_and_honours_the_limit(client, harness, exporter):
    url = f"/api/v1/sources/{harness.acme_id}/exports"
    created = [client.post(url, headers=exporter.auth).json()["id"] for _ in range(3)]

    listed = client.get(url, headers=exporter.auth)
    limited = client.get(url, params={"limit": 2}, headers=exporter.auth)

    assert listed.status_code == 200
    ids = [item["id"] for item in listed.json()["items"]]
    assert ids[:3] == created[::-1]
    times = [item["requested_at"] for item in listed.json()["items"]]
    assert times == sorted(times, reverse=True)
    assert [item["id"] for item in limited.json()["items"]] == created[::-1][:2]


@pytest.mark.parametrize("limit", [0, 501, "many"])
def test_a_limit_out_of_range_is_422(client, harness, exporter, limit):
    response = client.get(
        f"/api/v1/sources/{harness.acme_id}/exports",
        params={"limit": limit},
        headers=exporter.auth,
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]


INVALID_REQUESTS = [
    pytest.param(
        {"filters": {"statuses": ["new", "archived", "spam"]}},
        [["body", "filters", "statuses", 1], ["body", "filters", "statuses", 2]],
        ["'archived'", "'spam'", "'lost'", "'new'", "'won'"],
        id="unknown-statuses",
    ),
    pytest.param(
        {"filters": {"created_from": "2026-13-45"}},
        [["body", "filters", "created_from"]],
        ["'2026-13-45'", "YYYY-MM-DD"],
        id="bad-date",
    ),
    pytest.param(
        {"filters": {"created_from": "2026-03-01", "created_to": "2026-02-01"}},
        [["body", "filters", "created_to"]],
        ["created_to is before created_from"],
        id="created-to-before-created-from",
    ),
    pytest.param(
        {"filters": {"statuses": "new"}},
        [["body", "filters", "statuses"]],
        ["list"],
        id="statuses-as-a-string",
    ),
    pytest.param(
        {"filters": {"owner": "me"}},
        [["body", "filters", "owner"]],
        ["Extra inputs are not permitted"],
        id="unknown-filter-key",
    ),
    pytest.param(
        {"filters": {"time_zone": "Mars/Olympus"}},
        [["body", "filters", "time_zone"]],
        ["unknown time zone 'Mars/Olympus'"],
        id="unknown-time-zone",
    ),
    pytest.param(
        {"filters": {"attribute": {"key": "tier"}}},
        [["body", "filters", "attribute", "key"]],
        ["attribute 'tier'", "'segment'"],
        id="unknown-attribute",
    ),
    pytest.param(
        {"filters": {"attribute": {"key": "segment", "value": "platinum"}}},
        [["body", "filters", "attribute", "value"]],
        ["'segment'", "'platinum'"],
        id="attribute-value-no-lead-has",
    ),
    pytest.param(
        {"options": {"columns": ["email", "shoe_size", "lead_owner", "mood"]}},
        [["body", "options", "columns", 1], ["body", "options", "columns", 3]],
        ["'shoe_size'", "'mood'", "'lead_owner'"],
        id="unknown-columns",
    ),
    pytest.param(
        {"options": {"compression": "zip"}},
        [["body", "options", "compression"]],
        ["'none'", "'gzip'"],
        id="unknown-compression",
    ),
    pytest.param(
        {"filter": {}},
        [["body", "filter"]],
        ["Extra inputs are not permitted"],
        id="misspelt-top-level-key",
    ),
    pytest.param(
        {"filters": {"created_from": "0001-01-01", "time_zone": "Asia/Tokyo"}},
        [["body", "filters", "created_from"]],
        ["outside the years 1 to 9999"],
        id="date-before-year-1-in-utc",
    ),
    pytest.param(
        {"filters": {"created_to": "9999-12-31T23:59:59-05:00"}},
        [["body", "filters", "created_to"]],
        ["outside the years 1 to 9999"],
        id="timestamp-after-year-9999-in-utc",
    ),
    pytest.param(
        {"filters": {"time_zone": "Europe"}},
        [["body", "filters", "time_zone"]],
        ["unknown time zone 'Europe'"],
        id="time-zone-naming-a-folder",
    ),
    pytest.param(
        {"filters": {"time_zone": "localtime"}},
        [["body", "filters", "time_zone"]],
        ["unknown time zone 'localtime'"],
        id="host-specific-time-zone",
    ),
    pytest.param(
        {"filters": {"time_zone": "Europe/" + "b" * 300}},
        [["body", "filters", "time_zone"]],
        ["at most 64 characters"],
        id="overlong-time-zone",
    ),
]


@pytest.mark.parametrize(("body", "locs", "mentions"), INVALID_REQUESTS)
def test_invalid_requests_are_422_naming_the_field_and_queue_nothing(
    client, harness, exporter, body, locs, mentions
):
    before = harness.export_count()

    response = client.post(
        f"/api/v1/sources/{harness.acme_id}/exports", json=body, headers=exporter.auth
    )

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [error["loc"] for error in detail] == locs
    assert all(set(error) == {"loc", "msg", "type"} for error in detail)
    messages = " ".join(error["msg"] for error in detail)
    for mention in mentions:
        assert mention in messages
    assert harness.export_count() == before


def test_an_error_lists_at_most_twenty_valid_names(client, harness, exporter):
    unknown = [f"column_{index}" for index in range(200)]

    response = client.post(
        f"/api/v1/sources/{harness.acme_id}/exports",
        json={"options": {"columns": unknown}},
        headers=exporter.auth,
    )

    assert response.status_code == 422
    first = response.json()["detail"][0]["msg"]
    assert first.count("'") <= 2 * 21
    assert len(response.content) < 200 * 1000


def test_a_body_over_one_mebibyte_is_413_and_queues_nothing(client, harness, exporter):
    before = harness.export_count()
    body = '{"filters": {"search": "' + "x" * (1 << 20) + '"}}'

    response = client.post(
        f"/api/v1/sources/{harness.acme_id}/exports",
        content=body,
        headers={**exporter.auth, "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]
    assert harness.export_count() == before


@pytest.mark.parametrize("source_id", [2**31, 2**63, -(2**63) - 1, 0])
def test_source_ids_no_source_can_have_are_404(client, exporter, source_id):
    listed = client.get(f"/api/v1/sources/{source_id}/exports", headers=exporter.auth)
    requested = client.post(f"/api/v1/sources/{source_id}/exports", headers=exporter.auth)

    assert listed.status_code == 404
    assert requested.status_code == 404


def test_validation_errors_never_echo_lead_values(client, harness, exporter, lead_values):
    response = client.post(
        f"/api/v1/sources/{harness.acme_id}/exports",
        json={"filters": {"attribute": {"key": "segment", "value": "nope"}, "statuses": ["x"]}},
        headers=exporter.auth,
    )

    assert response.status_code == 422
    for value in lead_values:
        assert value not in response.text


@pytest.mark.parametrize("export_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
def test_unknown_and_malformed_export_ids_are_404(client, exporter, export_id):
    response = client.get(f"/api/v1/exports/{export_id}", headers=exporter.auth)

    assert response.status_code == 404
    assert response.json() == {"detail": "export not found"}


def test_an_export_id_in_another_spelling_finds_the_export(client, harness, exporter):
    export_id = harness.pending_export(exporter, harness.acme_id)

    response = client.get(f"/api/v1/exports/{export_id.upper()}", headers=exporter.auth)

    assert response.status_code == 200
    assert response.json()["id"] == export_id


def test_a_busy_lead_store_is_503_with_retry_after_and_queues_nothing(harness, exporter, serve):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; connection = duckdb.connect(sys.argv[1]); "
            "print('locked', flush=True); sys.stdin.read()",
            str(harness.settings.lead_store_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    before = harness.export_count()
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with (
            serve(lead_store_wait_seconds=0.3) as busy,
            httpx.Client(base_url=busy.base_url, timeout=10) as http,
        ):
            response = http.post(
                f"/api/v1/sources/{harness.acme_id}/exports", headers=exporter.auth
            )
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)

    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert "busy" in response.json()["detail"]
    assert str(harness.settings.lead_store_path) not in response.text
    assert harness.export_count() == before


def test_a_chunked_body_over_one_mebibyte_is_413_and_queues_nothing(client, harness, exporter):
    before = harness.export_count()

    def chunks():
        yield b'{"filters": {}}'
        for _ in range(40):
            yield b" " * 65536

    response = client.post(
        f"/api/v1/sources/{harness.acme_id}/exports",
        content=chunks(),
        headers={**exporter.auth, "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert harness.export_count() == before
