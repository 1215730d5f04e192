"""The audit log and the usage statistics over HTTP: admins only, filters, pages, and
counts per period and user on a hand-built history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from export_pipeline.engine.filters import ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import Source
from export_pipeline.status.audit import AuditAction, record_event
from export_pipeline.status.exports import mark_completed, mark_failed, request_export
from export_pipeline.status.models import Export, Role
from export_pipeline.storage import FileFacts

FACTS = FileFacts(uri="file:///nowhere/stats.csv", size=10, sha256="0" * 64)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
def source_id() -> int:
    """A source of the status table's own for one test: roles and audit events need no
    leads, so no other test's events show up in its log."""
    return 1_000_000 + uuid.uuid4().int % 1_000_000_000


@pytest.fixture
def admin(harness, source_id):
    return harness.person({source_id: Role.ADMIN})


def stored_export(harness, person, source_id: int, requested_at: datetime) -> str:
    filters = ExportFilters()
    with harness.sessions() as session:
        export = request_export(
            session,
            source=Source(source_id, "Stats", "stats"),
            requested_by=person.user_id,
            filters=filters,
            frozen=freeze_filters(filters, requested_at=requested_at),
            options=ExportOptions(),
            requested_at=requested_at,
        )
        session.commit()
        return export.id


def complete(harness, export_id: str, lead_count: int, *, large_threshold: int) -> None:
    with harness.sessions() as session:
        export = session.get_one(Export, export_id)
        at = export.requested_at + timedelta(minutes=1)
        assert mark_completed(
            session,
            export,
            lead_count=lead_count,
            facts=FACTS,
            at=at,
            large_threshold=large_threshold,
        )
        session.commit()


def event(harness, source_id: int, action: AuditAction, at: datetime, actor=None, **details):
    with harness.sessions() as session:
        record_event(
            session,
            action,
            actor_id=actor.user_id if actor else None,
            source_id=source_id,
            details=details,
            at=at,
        )
        session.commit()


def audit(client, person, source_id: int, **params):
    return client.get(f"/api/v1/sources/{source_id}/audit", params=params, headers=person.auth)


def stats(client, person, source_id: int, **params):
    return client.get(
        f"/api/v1/sources/{source_id}/exports/stats", params=params, headers=person.auth
    )


# The audit log.


def test_an_admin_sees_a_real_exports_trail_newest_first(client, harness, lead_values):
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    admin = harness.person({harness.acme_id: Role.ADMIN})
    started = datetime.now(UTC)
    created = client.post(f"/api/v1/sources/{harness.acme_id}/exports", headers=exporter.auth)
    export_id = created.json()["id"]
    harness.complete(export_id)
    link = client.post(f"/api/v1/exports/{export_id}/links", headers=exporter.auth).json()
    downloaded = client.get(f"/api/v1/downloads/{link['token']}", headers=exporter.auth)

    response = audit(client, admin, harness.acme_id, occurred_from=started.isoformat())

    assert downloaded.status_code == 200
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(item["action"], item["actor"]) for item in items] == [
        ("downloaded", exporter.name),
        ("link_issued", exporter.name),
        ("completed", None),
        ("requested", exporter.name),
    ]
    assert {item["export_id"] for item in items} == {export_id}
    times = [when(item["occurred_at"]) for item in items]
    assert times == sorted(times, reverse=True)
    assert all(item["occurred_at"].endswith("Z") for item in items)
    assert items[2]["details"] == {"lead_count": 3, "file_size": len(downloaded.content)} | {
        "large": False
    }
    assert items[0]["details"]["file_size"] == len(downloaded.content)
    for secret in (link["token"], exporter.key, admin.key, *lead_values):
        assert secret not in response.text
    assert response.json()["next_cursor"] is None


def test_audit_filters_combine_and_pages_follow_the_cursor(client, harness, source_id, admin):
    ann = harness.person({source_id: Role.EXPORTER})
    bob = harness.person({source_id: Role.EXPORTER})
    for minute, action, actor in [
        (0, AuditAction.REQUESTED, ann),
        (1, AuditAction.DOWNLOADED, ann),
        (2, AuditAction.DOWNLOADED, bob),
        (2, AuditAction.DENIED, bob),
        (3, AuditAction.COMPLETED, None),
        (4, AuditAction.DOWNLOADED, ann),
    ]:
        event(harness, source_id, action, utc(2024, 6, 1, 12, minute), actor, minute=minute)

    def minutes(**params) -> list[int]:
        response = audit(client, admin, source_id, **params)
        assert response.status_code == 200, response.text
        return [item["details"]["minute"] for item in response.json()["items"]]

    assert minutes() == [4, 3, 2, 2, 1, 0]
    assert minutes(actor=ann.name) == [4, 1, 0]
    assert minutes(action=["downloaded", "completed"]) == [4, 3, 2, 1]
    assert minutes(occurred_from="2024-06-01T12:01:00Z", occurred_to="2024-06-01T14:03+02:00") == [
        2,
        2,
        1,
    ]
    assert minutes(actor=bob.name, action="downloaded") == [2]
    assert minutes(occurred_to="2024-06-01") == []

    pages, cursor = [], None
    while True:
        params = {"limit": 4, "action": ["downloaded", "denied", "requested"]}
        page = audit(client, admin, source_id, **params, **({"cursor": cursor} if cursor else {}))
        pages.append([item["details"]["minute"] for item in page.json()["items"]])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == [[4, 2, 2, 1], [0]]


def test_only_admins_read_the_audit_log(client, harness, source_id, admin):
    event(harness, source_id, AuditAction.REQUESTED, utc(2024, 6, 1), admin)
    exporter = harness.person({source_id: Role.EXPORTER})
    viewer = harness.person({source_id: Role.VIEWER})
    outsider = harness.person({harness.acme_id: Role.ADMIN})

    for person in (exporter, viewer):
        refused = audit(client, person, source_id)
        assert refused.status_code == 403
        assert "admin role" in refused.json()["detail"]
    hidden = audit(client, outsider, source_id)
    assert hidden.status_code == 404
    assert hidden.json() == {"detail": "source not found"}
    assert client.get(f"/api/v1/sources/{source_id}/audit").status_code == 401
    allowed = audit(client, admin, source_id, action="requested")
    assert [item["actor"] for item in allowed.json()["items"]] == [admin.name]


def test_the_log_names_members_and_former_members_but_not_outsiders_who_were_refused(
    client, harness, source_id, admin
):
    outsider = harness.person({harness.acme_id: Role.EXPORTER})
    leaver = harness.person({source_id: Role.EXPORTER})
    event(harness, source_id, AuditAction.REQUESTED, utc(2024, 6, 1, 12), leaver, minute=0)
    harness.revoke_roles(leaver)
    event(harness, source_id, AuditAction.DENIED, utc(2024, 6, 1, 12, 1), leaver, minute=1)
    event(harness, source_id, AuditAction.DENIED, utc(2024, 6, 1, 12, 2), outsider, minute=2)

    response = audit(client, admin, source_id)

    assert response.status_code == 200, response.text
    assert [
        (item["details"]["minute"], item["actor"], item["actor_outside"])
        for item in response.json()["items"]
    ] == [(2, None, True), (1, leaver.name, False), (0, leaver.name, False)]
    assert outsider.name not in response.text
    by_name = audit(client, admin, source_id, actor=outsider.name)
    assert by_name.json()["items"] == []


@pytest.mark.parametrize(
    ("params", "loc", "mentions"),
    [
        pytest.param({"action": "exploded"}, ["query", "action", 0], "'downloaded'", id="action"),
        pytest.param(
            {"occurred_from": "June"}, ["query", "occurred_from"], "YYYY-MM-DD", id="bad-time"
        ),
        pytest.param(
            {"occurred_from": "2024-06-02", "occurred_to": "2024-06-02"},
            ["query", "occurred_to"],
            "must be later than",
            id="empty-range",
        ),
        pytest.param({"cursor": "eyJ2IjoxfQ"}, ["query", "cursor"], "next_cursor", id="cursor"),
        pytest.param({"limit": 501}, ["query", "limit"], "500", id="limit"),
    ],
)
def test_malformed_audit_queries_are_422(client, source_id, admin, params, loc, mentions):
    response = audit(client, admin, source_id, **params)

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == loc
    assert mentions in error["msg"]


def test_a_history_cursor_does_not_page_the_audit_log(client, harness, source_id, admin):
    for minute in range(2):
        stored_export(harness, admin, source_id, utc(2024, 6, 1, 12, minute))
    history = client.get(
        f"/api/v1/sources/{source_id}/exports", params={"limit": 1}, headers=admin.auth
    )

    response = audit(client, admin, source_id, cursor=history.json()["next_cursor"])

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


# Usage statistics.


@pytest.fixture
def usage(harness, source_id, admin):
    """Exports and downloads by ann and bob around the turn of July 2024, where the week
    of Monday 29 July runs into August; large means 1000 leads or more."""
    ann = harness.person({source_id: Role.EXPORTER})
    bob = harness.person({source_id: Role.EXPORTER})

    def export(person, at: datetime, lead_count: int | None = None, *, failed=False) -> None:
        export_id = stored_export(harness, person, source_id, at)
        if lead_count is not None:
            complete(harness, export_id, lead_count, large_threshold=1000)
        if failed:
            with harness.sessions() as session:
                mark_failed(session, session.get_one(Export, export_id), error="boom", at=at)
                session.commit()

    export(ann, utc(2024, 7, 28, 23, 59), 100)  # Sunday: the week of 22 July
    export(ann, utc(2024, 7, 29, 0, 0), 2000)  # Monday: the week of 29 July
    export(ann, utc(2024, 7, 31, 23, 59, 59), 5)
    export(bob, utc(2024, 8, 1, 0, 0), 1000)
    export(bob, utc(2024, 8, 1, 8), failed=True)
    export(bob, utc(2024, 8, 5, 9))  # still pending: requested, nothing exported
    export(ann, utc(2024, 9, 1), 50)  # outside to=2024-09-01
    event(harness, source_id, AuditAction.DOWNLOADED, utc(2024, 7, 31, 12), ann)
    event(harness, source_id, AuditAction.DOWNLOADED, utc(2024, 8, 2, 12), ann)
    event(harness, source_id, AuditAction.DOWNLOADED, utc(2024, 8, 4, 23, 59), bob)
    event(harness, source_id, AuditAction.DENIED, utc(2024, 8, 2, 12), bob)
    event(harness, source_id, AuditAction.LINK_ISSUED, utc(2024, 8, 2, 12), bob)
    return ann, bob


def counts(response) -> dict[tuple[str, str | None], tuple[int, int, int, int]]:
    """(period start, user) -> (exports requested, leads exported, downloads, large)."""
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    starts = [when(item["period_start"]) for item in items]
    assert starts == sorted(starts)
    return {
        (item["period_start"][:10], item["user"]): (
            item["exports_requested"],
            item["leads_exported"],
            item["downloads"],
            item["large_exports"],
        )
        for item in items
    }


RANGE = {"from": "2024-07-01", "to": "2024-09-01"}


def test_monthly_usage_per_user(client, admin, source_id, usage):
    ann, bob = usage

    response = stats(client, admin, source_id, period="month", **RANGE)

    assert response.json()["period"] == "month"
    assert (response.json()["from"], response.json()["to"]) == (
        "2024-07-01T00:00:00Z",
        "2024-09-01T00:00:00Z",
    )
    assert counts(response) == {
        ("2024-07-01", ann.name): (3, 2105, 1, 1),
        ("2024-08-01", ann.name): (0, 0, 1, 0),
        ("2024-08-01", bob.name): (3, 1000, 1, 1),
    }
    july = response.json()["items"][0]
    assert (july["period_start"], july["period_end"]) == (
        "2024-07-01T00:00:00Z",
        "2024-08-01T00:00:00Z",
    )


def test_weekly_usage_starts_on_monday_and_crosses_the_month(client, admin, source_id, usage):
    ann, bob = usage

    response = stats(client, admin, source_id, period="week", **RANGE)

    assert counts(response) == {
        ("2024-07-22", ann.name): (1, 100, 0, 0),
        ("2024-07-29", ann.name): (2, 2005, 2, 1),
        ("2024-07-29", bob.name): (2, 1000, 1, 1),
        ("2024-08-05", bob.name): (1, 0, 0, 0),
    }
    crossing = next(item for item in response.json()["items"] if item["user"] == bob.name)
    assert (crossing["period_start"], crossing["period_end"]) == (
        "2024-07-29T00:00:00Z",
        "2024-08-05T00:00:00Z",
    )


def test_daily_usage_cuts_at_utc_midnight(client, admin, source_id, usage):
    ann, bob = usage

    response = stats(client, admin, source_id, period="day", **RANGE)

    assert counts(response) == {
        ("2024-07-28", ann.name): (1, 100, 0, 0),
        ("2024-07-29", ann.name): (1, 2000, 0, 1),
        ("2024-07-31", ann.name): (1, 5, 1, 0),
        ("2024-08-01", bob.name): (2, 1000, 0, 1),
        ("2024-08-02", ann.name): (0, 0, 1, 0),
        ("2024-08-04", bob.name): (0, 0, 1, 0),
        ("2024-08-05", bob.name): (1, 0, 0, 0),
    }


def test_a_range_counts_only_what_lies_inside_it(client, admin, source_id, usage):
    ann, bob = usage

    response = stats(
        client, admin, source_id, period="month", **{"from": "2024-07-29T02:00:00+02:00"}
    )
    narrow = stats(
        client, admin, source_id, period="week", **{"from": "2024-08-01", "to": "2024-08-02"}
    )

    assert response.json()["from"] == "2024-07-29T00:00:00Z"
    assert counts(response) == {
        ("2024-07-01", ann.name): (2, 2005, 1, 1),
        ("2024-08-01", ann.name): (0, 0, 1, 0),
        ("2024-08-01", bob.name): (3, 1000, 1, 1),
        ("2024-09-01", ann.name): (1, 50, 0, 0),
    }
    assert counts(narrow) == {("2024-07-29", bob.name): (2, 1000, 0, 1)}


def test_by_default_the_last_twelve_calendar_months_count(client, harness, admin, source_id):
    now = datetime.now(UTC)
    recent_at = now - timedelta(seconds=5)
    recent = stored_export(harness, admin, source_id, recent_at)
    complete(harness, recent, 7, large_threshold=1000)
    stored_export(harness, admin, source_id, now - timedelta(days=400))

    response = stats(client, admin, source_id)

    body = response.json()
    assert body["period"] == "month"
    start = when(body["from"])
    assert (start.day, start.hour) == (1, 0)
    assert (now.year * 12 + now.month) - (start.year * 12 + start.month) == 11
    assert now <= when(body["to"]) <= datetime.now(UTC)
    this_month = recent_at.strftime("%Y-%m-01")
    assert counts(response) == {(this_month, admin.name): (1, 7, 0, 0)}


def test_only_admins_read_the_statistics(client, harness, source_id, admin):
    exporter = harness.person({source_id: Role.EXPORTER})
    outsider = harness.person({harness.acme_id: Role.ADMIN})

    refused = stats(client, exporter, source_id)
    hidden = stats(client, outsider, source_id)

    assert refused.status_code == 403
    assert "admin role" in refused.json()["detail"]
    assert hidden.status_code == 404
    assert hidden.json() == {"detail": "source not found"}
    assert stats(client, admin, source_id).status_code == 200


@pytest.mark.parametrize(
    ("params", "loc", "mentions"),
    [
        pytest.param({"period": "year"}, ["query", "period"], "'month'", id="period"),
        pytest.param({"from": "last year"}, ["query", "from"], "YYYY-MM-DD", id="bad-from"),
        pytest.param(
            {"from": "2024-08-01", "to": "2024-07-01"},
            ["query", "to"],
            "must be later than",
            id="reversed",
        ),
        pytest.param(
            {"from": "2999-01-01"}, ["query", "from"], "not after its start", id="from-after-now"
        ),
        pytest.param({"start": "2024-01-01"}, ["query", "start"], "Extra", id="misspelt"),
    ],
)
def test_malformed_statistics_queries_are_422(client, source_id, admin, params, loc, mentions):
    response = stats(client, admin, source_id, **params)

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == loc
    assert mentions in error["msg"]
