"""Export schedules through the real HTTP API: create, list, read, change, pause,
resume and delete them, who may, and the 422s that keep invalid ones out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from export_pipeline.defs.exports.resources import StatusTableResource
from export_pipeline.defs.schedules.filing import file_due_schedules
from export_pipeline.status.models import Role

DAILY = {
    "name": "New leads of yesterday",
    "cron": "0 6 * * *",
    "time_zone": "Europe/Berlin",
    "filters": {"statuses": ["new"], "created_range": {"last": 1, "unit": "day"}},
    "options": {"formula_guard": False},
}


@pytest.fixture
def acme(schedule_harness):
    return schedule_harness.acme_id


@pytest.fixture
def owner(schedule_harness, acme):
    return schedule_harness.person({acme: Role.EXPORTER})


def create(api, person, source_id: int, body: dict[str, Any] | None = None):
    return api.post(
        f"/sources/{source_id}/export-schedules", json=body or DAILY, headers=person.auth
    )


def created(api, person, source_id: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = create(api, person, source_id, body)
    assert response.status_code == 201, response.text
    return response.json()


def schedule_ids(api, person, source_id: int) -> list[str]:
    response = api.get(f"/sources/{source_id}/export-schedules", headers=person.auth)
    assert response.status_code == 200
    return [item["id"] for item in response.json()["items"]]


def test_an_exporter_creates_a_schedule_and_owns_it(api, owner, acme):
    before = datetime.now(UTC)

    response = create(api, owner, acme)

    assert response.status_code == 201
    body = response.json()
    assert response.headers["Location"] == f"/api/v1/export-schedules/{body['id']}"
    assert body["owner"] == owner.name
    assert body["source_id"] == acme
    assert body["name"] == "New leads of yesterday"
    assert body["cron"] == "0 6 * * *"
    assert body["cron_description"] == "At 06:00 every day"
    assert body["filters"] == {
        "statuses": ["new"],
        "created_range": {"last": 1, "unit": "day"},
    }
    assert body["options"]["formula_guard"] is False
    assert body["enabled"] is True
    next_tick = datetime.fromisoformat(body["next_tick_at"])
    assert before < next_tick <= before + timedelta(days=1)
    assert next_tick.astimezone(UTC).minute == 0
    assert body["last_tick_at"] is None
    assert body["last_error"] is None
    assert body["id"] in schedule_ids(api, owner, acme)
    assert (
        api.get(response.headers["Location"].removeprefix("/api/v1"), headers=owner.auth).json()[
            "id"
        ]
        == body["id"]
    )


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"cron": "*/5 * * * *"}, ["body", "cron"]),
        ({"cron": "0 6 * *"}, ["body", "cron"]),
        ({"cron": "0 25 * * *"}, ["body", "cron"]),
        ({"time_zone": "Mars/Olympus"}, ["body", "time_zone"]),
        ({"name": "   "}, ["body", "name"]),
        ({"enabled": "yes"}, ["body", "enabled"]),
        ({"owner": "someone"}, ["body", "owner"]),
        (
            {"filters": {"created_range": {"last": 1, "unit": "fortnight"}}},
            ["body", "filters", "created_range", "unit"],
        ),
        (
            {
                "filters": {
                    "created_from": "2026-01-01",
                    "created_range": {"last": 1, "unit": "day"},
                }
            },
            ["body", "filters", "created_range"],
        ),
        (
            {"filters": {"created_range": {"last": 1, "unit": "day"}, "time_zone": "UTC"}},
            ["body", "filters"],
        ),
        ({"filters": {"statuses": ["new", "archived"]}}, ["body", "filters", "statuses", 1]),
        ({"filters": {"attribute": {"key": "region"}}}, ["body", "filters", "attribute", "key"]),
        ({"options": {"columns": ["email", "fax"]}}, ["body", "options", "columns", 1]),
    ],
)
def test_an_invalid_definition_is_refused_naming_the_field_and_nothing_is_stored(
    api, owner, acme, change, loc
):
    before = schedule_ids(api, owner, acme)

    response = create(api, owner, acme, {**DAILY, **change})

    assert response.status_code == 422, response.text
    assert loc in [entry["loc"] for entry in response.json()["detail"]]
    assert schedule_ids(api, owner, acme) == before


def test_a_definition_without_its_required_fields_is_refused(api, owner, acme):
    response = create(api, owner, acme, {"filters": {}})

    assert response.status_code == 422
    locs = [entry["loc"] for entry in response.json()["detail"]]
    assert ["body", "name"] in locs
    assert ["body", "cron"] in locs
    assert ["body", "time_zone"] in locs


def test_filters_may_name_the_schedules_own_time_zone(api, owner, acme):
    body = {**DAILY, "filters": {"created_from": "2026-01-01", "time_zone": "Europe/Berlin"}}

    schedule = created(api, owner, acme, body)

    assert schedule["filters"] == {"created_from": "2026-01-01"}


def test_viewers_see_schedules_but_only_exporters_create_them(api, schedule_harness, owner, acme):
    schedule = created(api, owner, acme)
    viewer = schedule_harness.person({acme: Role.VIEWER})

    assert create(api, viewer, acme).status_code == 403
    assert schedule["id"] in schedule_ids(api, viewer, acme)
    assert api.get(f"/export-schedules/{schedule['id']}", headers=viewer.auth).status_code == 200


def test_users_without_a_role_on_the_source_get_404_for_everything(
    api, schedule_harness, owner, acme
):
    schedule = created(api, owner, acme)
    stranger = schedule_harness.person({schedule_harness.other_id: Role.ADMIN})
    path = f"/export-schedules/{schedule['id']}"

    assert create(api, stranger, acme).status_code == 404
    assert api.get(f"/sources/{acme}/export-schedules", headers=stranger.auth).status_code == 404
    assert api.get(path, headers=stranger.auth).status_code == 404
    assert api.patch(path, json={"enabled": False}, headers=stranger.auth).status_code == 404
    assert api.delete(path, headers=stranger.auth).status_code == 404
    assert api.get(path).status_code == 401
    assert api.get("/export-schedules/not-a-uuid", headers=owner.auth).status_code == 404


def test_only_the_owner_and_admins_change_or_delete_a_schedule(api, schedule_harness, owner, acme):
    schedule = created(api, owner, acme)
    path = f"/export-schedules/{schedule['id']}"
    other_exporter = schedule_harness.person({acme: Role.EXPORTER})
    viewer = schedule_harness.person({acme: Role.VIEWER})
    admin = schedule_harness.person({acme: Role.ADMIN})

    for person in (other_exporter, viewer):
        assert api.patch(path, json={"enabled": False}, headers=person.auth).status_code == 403
        assert api.delete(path, headers=person.auth).status_code == 403
    renamed = api.patch(path, json={"name": "Renamed by an admin"}, headers=admin.auth)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Renamed by an admin"
    assert renamed.json()["owner"] == owner.name

    schedule_harness.grant(owner, acme, Role.VIEWER)
    assert api.patch(path, json={"enabled": False}, headers=owner.auth).status_code == 403
    assert api.delete(path, headers=admin.auth).status_code == 204
    assert api.get(path, headers=admin.auth).status_code == 404


def test_pausing_and_resuming(api, owner, acme):
    schedule = created(api, owner, acme)
    path = f"/export-schedules/{schedule['id']}"

    paused = api.patch(path, json={"enabled": False}, headers=owner.auth)
    assert paused.status_code == 200
    assert paused.json()["enabled"] is False
    assert paused.json()["next_tick_at"] is None
    assert paused.json()["filters"] == schedule["filters"]

    resumed = api.patch(path, json={"enabled": True}, headers=owner.auth).json()
    assert resumed["enabled"] is True
    assert datetime.fromisoformat(resumed["next_tick_at"]) > datetime.now(UTC)


def test_a_change_is_checked_as_a_whole_and_an_invalid_one_changes_nothing(api, owner, acme):
    schedule = created(api, owner, acme)
    path = f"/export-schedules/{schedule['id']}"

    for change, loc in [
        ({"filters": {"statuses": ["archived"]}}, ["body", "filters", "statuses", 0]),
        ({"cron": "* * * * *"}, ["body", "cron"]),
        ({"time_zone": "Nowhere/Else"}, ["body", "time_zone"]),
        ({"enabled": None}, ["body", "enabled"]),
        ({"owner": owner.name}, ["body", "owner"]),
    ]:
        response = api.patch(path, json=change, headers=owner.auth)
        assert response.status_code == 422, change
        assert loc in [entry["loc"] for entry in response.json()["detail"]], change

    assert api.get(path, headers=owner.auth).json() == schedule


def test_changing_the_cron_expression_moves_the_next_tick(api, owner, acme):
    schedule = created(api, owner, acme)
    path = f"/export-schedules/{schedule['id']}"

    changed = api.patch(
        path, json={"cron": "0  9 * * MON", "time_zone": "America/New_York"}, headers=owner.auth
    ).json()

    assert changed["cron"] == "0 9 * * MON"
    assert changed["cron_description"] == "At 09:00 on Monday"
    next_tick = datetime.fromisoformat(changed["next_tick_at"])
    assert next_tick.astimezone(UTC).weekday() in (0, 1)
    assert next_tick.astimezone(UTC).hour in (13, 14)  # 09:00 in New York


def test_a_filed_export_appears_in_the_history_as_the_owners(api, schedule_harness, owner, acme):
    schedule = created(api, owner, acme)
    tick = datetime.fromisoformat(schedule["next_tick_at"])
    status_table = StatusTableResource(database_url=schedule_harness.settings.status_database_url)

    filings = file_due_schedules(
        status_table, schedule_harness.lead_store, now=tick + timedelta(seconds=5)
    )

    (filing,) = [f for f in filings if f.schedule_id == schedule["id"]]
    export = api.get(f"/exports/{filing.export_id}", headers=owner.auth).json()
    assert export["requested_by"] == owner.name
    assert export["schedule_id"] == schedule["id"]
    assert export["status"] == "pending"
    assert datetime.fromisoformat(export["requested_at"]) == tick
    assert export["filters"]["statuses"] == ["new"]
    assert export["filters"]["time_zone"] == "Europe/Berlin"
    assert export["options"]["formula_guard"] is False
    history = api.get(f"/sources/{acme}/exports", headers=owner.auth).json()["items"]
    assert filing.export_id in [item["id"] for item in history]
    after = api.get(f"/export-schedules/{schedule['id']}", headers=owner.auth).json()
    assert after["last_export_id"] == filing.export_id
    assert datetime.fromisoformat(after["last_tick_at"]) == tick
