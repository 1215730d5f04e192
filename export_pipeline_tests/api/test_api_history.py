"""The export history over HTTP: pages by cursor, filters, refusals and who may look."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from export_pipeline.engine.filters import ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import Source
from export_pipeline.status.exports import mark_failed, request_export
from export_pipeline.status.models import Export, Role

T0 = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def exporter(harness):
    return harness.person({harness.acme_id: Role.EXPORTER})


def stored_export(harness, person, requested_at: datetime, source_id: int | None = None) -> str:
    """A pending export requested at `requested_at`, stored straight in the table."""
    source_id = source_id or harness.acme_id
    filters = ExportFilters()
    with harness.sessions() as session:
        export = request_export(
            session,
            source=Source(source_id, "Acme Leads", "acme-leads"),
            requested_by=person.user_id,
            filters=filters,
            frozen=freeze_filters(filters, requested_at=requested_at),
            options=ExportOptions(),
            requested_at=requested_at,
        )
        session.commit()
        return export.id


def fail(harness, export_id: str) -> None:
    with harness.sessions() as session:
        mark_failed(session, session.get_one(Export, export_id), error="boom", at=T0)
        session.commit()


def history(client, harness, person, source_id: int | None = None, **params):
    source_id = source_id or harness.acme_id
    return client.get(f"/api/v1/sources/{source_id}/exports", params=params, headers=person.auth)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_pages_cover_the_history_once_while_new_exports_arrive(client, harness, exporter):
    for minutes in (0, 0, 0, 7, 7, 30):  # ties sit on page boundaries
        stored_export(harness, exporter, T0 + timedelta(minutes=minutes))
    mine = {"requested_by": exporter.name}
    everything = ids(history(client, harness, exporter, **mine))

    seen, sizes, arrived = [], [], []
    cursor = None
    while True:
        params = {**mine, "limit": 4} if cursor is None else {**mine, "limit": 4, "cursor": cursor}
        page = history(client, harness, exporter, **params)
        seen += ids(page)
        sizes.append(len(ids(page)))
        posted = client.post(f"/api/v1/sources/{harness.acme_id}/exports", headers=exporter.auth)
        arrived.append(posted.json()["id"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    fresh_first_page = ids(history(client, harness, exporter, **mine, limit=4))

    assert len(everything) == 6
    assert sizes == [4, 2]
    assert seen == everything
    assert fresh_first_page == [*arrived[::-1], *everything[:2]]


def test_items_keep_every_field_of_an_export(client, harness, exporter):
    export_id, content = harness.completed_export(exporter, harness.acme_id)

    listed = history(client, harness, exporter, requested_by=exporter.name)
    single = client.get(f"/api/v1/exports/{export_id}", headers=exporter.auth)

    (item,) = listed.json()["items"]
    assert item == single.json()
    assert item["status"] == "completed"
    assert item["download_available"] is True
    assert item["file_size"] == len(content)
    assert len(item["sha256"]) == 64
    assert item["lead_count"] == 3
    assert item["requested_by"] == exporter.name
    assert item["file_name"].startswith("acme-leads_")
    assert item["applied_filters"]["cutoff"]
    assert item["filters"]["statuses"] == []
    assert listed.json()["next_cursor"] is None


def test_status_filter_is_repeatable(client, harness, exporter):
    pending = harness.pending_export(exporter, harness.acme_id)
    completed, _ = harness.completed_export(exporter, harness.acme_id)
    failed = harness.pending_export(exporter, harness.acme_id)
    fail(harness, failed)
    mine = {"requested_by": exporter.name}

    one = history(client, harness, exporter, **mine, status="pending")
    two = history(client, harness, exporter, **mine, status=["completed", "failed"])
    none = history(client, harness, exporter, **mine, status="cancelled")

    assert ids(one) == [pending]
    assert ids(two) == [failed, completed]
    assert ids(none) == []


def test_requested_by_names_a_user(client, harness, exporter):
    colleague = harness.person({harness.acme_id: Role.EXPORTER})
    theirs = harness.pending_export(colleague, harness.acme_id)
    harness.pending_export(exporter, harness.acme_id)

    assert ids(history(client, harness, exporter, requested_by=colleague.name)) == [theirs]
    assert ids(history(client, harness, exporter, requested_by="no-such-user")) == []


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        pytest.param({"requested_from": "2024-06-02"}, ["midnight", "late"], id="from-a-date"),
        pytest.param({"requested_to": "2024-06-02"}, ["before-midnight"], id="to-a-date"),
        pytest.param(
            {"requested_from": "2024-06-02T02:00:00+02:00"},
            ["midnight", "late"],
            id="from-with-an-offset",
        ),
        pytest.param(
            {"requested_from": "2024-06-01T23:59:59.999999Z", "requested_to": "2024-06-02T00:00Z"},
            ["before-midnight"],
            id="half-open",
        ),
        pytest.param(
            {"requested_from": "2024-06-02", "requested_to": "2024-06-02T00:00:00.000001Z"},
            ["midnight"],
            id="one-microsecond",
        ),
    ],
)
def test_time_bounds_include_the_start_and_exclude_the_end(
    client, harness, exporter, bounds, expected
):
    made = {
        "before-midnight": datetime(2024, 6, 1, 23, 59, 59, 999999, tzinfo=UTC),
        "midnight": datetime(2024, 6, 2, tzinfo=UTC),
        "late": datetime(2024, 6, 2, 18, tzinfo=UTC),
    }
    name_of = {stored_export(harness, exporter, at): name for name, at in made.items()}

    response = history(client, harness, exporter, requested_by=exporter.name, **bounds)

    assert sorted(name_of[export_id] for export_id in ids(response)) == sorted(expected)


@pytest.mark.parametrize(
    ("params", "loc", "mentions"),
    [
        pytest.param({"status": "done"}, ["query", "status", 0], "'completed'", id="status"),
        pytest.param(
            {"requested_from": "2024-13-01"}, ["query", "requested_from"], "YYYY-MM-DD", id="date"
        ),
        pytest.param(
            {"requested_to": "yesterday"}, ["query", "requested_to"], "'yesterday'", id="word"
        ),
        pytest.param(
            {"requested_from": "2024-06-01T12:00:00"},
            ["query", "requested_from"],
            "no UTC offset",
            id="naive-timestamp",
        ),
        pytest.param(
            {"requested_from": "2024-06-02", "requested_to": "2024-06-01"},
            ["query", "requested_to"],
            "must be later than",
            id="reversed-range",
        ),
        pytest.param(
            {"requested_to": "9999-12-31T23:00:00-05:00"},
            ["query", "requested_to"],
            "outside the years 1 to 9999",
            id="past-year-9999",
        ),
        pytest.param({"statuses": "completed"}, ["query", "statuses"], "Extra", id="misspelt"),
        pytest.param(
            {"cursor": "bm90IGEgY3Vyc29y"}, ["query", "cursor"], "next_cursor", id="bad-cursor"
        ),
        pytest.param(
            {"cursor": "%%%"}, ["query", "cursor"], "next_cursor", id="cursor-outside-base64url"
        ),
        pytest.param({"cursor": "A" * 1001}, ["query", "cursor"], "1000", id="huge-cursor"),
    ],
)
def test_malformed_filters_and_cursors_are_422_naming_the_parameter(
    client, harness, exporter, params, loc, mentions
):
    response = history(client, harness, exporter, **params)

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == loc
    assert mentions in error["msg"]
    assert set(error) == {"loc", "msg", "type"}


def test_a_cursor_only_continues_the_listing_that_issued_it(client, harness, exporter):
    for minutes in range(3):
        stored_export(harness, exporter, T0 + timedelta(minutes=minutes))
    first = history(client, harness, exporter, requested_by=exporter.name, limit=1)
    cursor = first.json()["next_cursor"]
    admin = harness.person({harness.acme_id: Role.ADMIN, harness.other_id: Role.ADMIN})

    unfiltered = history(client, harness, exporter, cursor=cursor)
    narrowed = history(
        client, harness, exporter, requested_by=exporter.name, status="failed", cursor=cursor
    )
    elsewhere = history(
        client, harness, admin, harness.other_id, requested_by=exporter.name, cursor=cursor
    )
    same = history(client, harness, exporter, requested_by=exporter.name, limit=5, cursor=cursor)

    for refused in (unfiltered, narrowed, elsewhere):
        assert refused.status_code == 422
        (error,) = refused.json()["detail"]
        assert error["loc"] == ["query", "cursor"]
        assert "other filters" in error["msg"]
    assert ids(same) == ids(history(client, harness, exporter, requested_by=exporter.name))[1:]


def test_a_user_without_a_role_gets_404_and_a_viewer_may_read(client, harness, exporter):
    export_id = harness.pending_export(exporter, harness.acme_id)
    outsider = harness.person({harness.other_id: Role.ADMIN})
    viewer = harness.person({harness.acme_id: Role.VIEWER})

    hidden = history(client, harness, outsider, requested_by=exporter.name)
    hidden_bad_filter = history(client, harness, outsider, status="done")
    shown = history(client, harness, viewer, requested_by=exporter.name)
    anonymous = client.get(f"/api/v1/sources/{harness.acme_id}/exports")

    for response in (hidden, hidden_bad_filter):
        assert response.status_code == 404
        assert response.json() == {"detail": "source not found"}
    assert ids(shown) == [export_id]
    assert anonymous.status_code == 401


def test_a_cursor_reveals_nothing_but_a_position(client, harness, exporter, lead_values):
    for minutes in range(2):
        stored_export(harness, exporter, T0 + timedelta(minutes=minutes))
    page = history(client, harness, exporter, requested_by=exporter.name, limit=1)
    cursor = page.json()["next_cursor"]

    decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()

    assert exporter.key not in decoded
    assert exporter.name not in decoded
    for value in lead_values:
        assert value not in decoded
