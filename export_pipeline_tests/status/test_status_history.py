"""Paging through the export history and the audit log, usage statistics and the
large-export flag: the queries on SQLite and PostgreSQL, the pure parts without any
database."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.leads.catalog import Source
from export_pipeline.status.audit import AuditAction, AuditFilters, read_audit_log, record_event
from export_pipeline.status.exports import mark_completed, mark_failed, mark_processing
from export_pipeline.status.history import (
    CursorError,
    HistoryFilters,
    PageKey,
    decode_cursor,
    encode_cursor,
    listing_scope,
    read_history,
)
from export_pipeline.status.models import AuditEvent, Export, ExportStatus
from export_pipeline.status.stats import (
    DownloadFact,
    ExportFact,
    StatsPeriod,
    UsageRow,
    default_range,
    is_large,
    period_end,
    period_start,
    read_usage,
    summarize_usage,
)
from export_pipeline.status.users import create_user
from export_pipeline.storage import FileFacts

SOURCE = Source(source_id=1, name="Trade Fair", slug="trade-fair")
T0 = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
FACTS = FileFacts(uri="file:///exports/trade-fair.csv", size=1234, sha256="ab" * 32)

NewExport = Callable[..., Export]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def all_pages(read: Callable[[str | None], object]) -> list[list[object]]:
    """Every page of a listing, following `next_cursor` to the end."""
    pages, cursor = [], None
    while True:
        page = read(cursor)
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return pages


# Cursors, without a database.

EXPORT_ID = "0b7c5f4e-2a61-4d9b-8f3e-5c1a2d3e4f50"


def test_a_cursor_round_trips_the_key_of_the_last_row() -> None:
    scope = listing_scope("exports", 1, HistoryFilters().canonical())
    at = datetime(2024, 6, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    key = PageKey(at, EXPORT_ID)

    cursor = encode_cursor(key, scope)

    assert decode_cursor(cursor, scope, str) == PageKey(
        utc(2024, 6, 1, 12, 0, 0, 123456), EXPORT_ID
    )
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_the_same_filters_in_another_spelling_share_a_scope() -> None:
    berlin = timezone(timedelta(hours=2))
    one = HistoryFilters(
        statuses=frozenset({ExportStatus.FAILED, ExportStatus.COMPLETED}),
        requested_from=datetime(2024, 6, 1, 14, tzinfo=berlin),
    )
    other = HistoryFilters(
        statuses=frozenset({ExportStatus.COMPLETED, ExportStatus.FAILED}),
        requested_from=utc(2024, 6, 1, 12),
    )

    assert listing_scope("exports", 1, one.canonical()) == listing_scope(
        "exports", 1, other.canonical()
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("", id="empty"),
        pytest.param("not a cursor!", id="outside-the-alphabet"),
        pytest.param("abc", id="not-base64"),
        pytest.param(_b64(b"\xff\xfe"), id="not-utf8"),
        pytest.param(_b64(b"[1, 2]"), id="json-list"),
        pytest.param(_b64(b'{"v": 1}'), id="missing-fields"),
        pytest.param(
            _b64(
                json.dumps({"v": 2, "s": "S", "t": "2024-06-01T12:00:00+00:00", "k": "a"}).encode()
            ),
            id="other-version",
        ),
        pytest.param(
            _b64(json.dumps({"v": 1, "s": "S", "t": "2024-06-01T12:00:00", "k": "a"}).encode()),
            id="naive-time",
        ),
        pytest.param(
            _b64(json.dumps({"v": 1, "s": "S", "t": "yesterday", "k": "a"}).encode()),
            id="not-a-time",
        ),
        pytest.param(
            _b64(json.dumps({"v": 1, "s": "S", "t": "2024-06-01T12:00:00Z", "k": 7}).encode()),
            id="id-of-another-type",
        ),
    ],
)
def test_a_malformed_cursor_is_refused_saying_what_to_pass(cursor: str) -> None:
    with pytest.raises(CursorError, match="next_cursor of the previous page"):
        decode_cursor(cursor, "S", str)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"t": "0001-01-01T00:00:00+05:00", "k": 1}, id="before-year-1-in-utc"),
        pytest.param({"t": "2024-06-01T12:00:00Z", "k": 2**63}, id="id-past-64-bits"),
        pytest.param({"t": "2024-06-01T12:00:00Z", "k": True}, id="id-a-boolean"),
    ],
)
def test_a_cursor_the_databases_could_not_compare_is_refused(payload: dict) -> None:
    cursor = _b64(json.dumps({"v": 1, "s": "S", **payload}).encode())

    with pytest.raises(CursorError, match="next_cursor of the previous page"):
        decode_cursor(cursor, "S", int)


def test_a_cursor_of_another_listing_is_refused_saying_so() -> None:
    key = PageKey(T0, EXPORT_ID)
    completed = HistoryFilters(statuses=frozenset({ExportStatus.COMPLETED}))
    cursor = encode_cursor(key, listing_scope("exports", 1, completed.canonical()))

    for scope in (
        listing_scope("exports", 1, HistoryFilters().canonical()),
        listing_scope("exports", 2, completed.canonical()),
        listing_scope("audit", 1, completed.canonical()),
    ):
        with pytest.raises(CursorError, match="listing with other filters"):
            decode_cursor(cursor, scope, str)


# The export history, on both databases.


def test_pages_cover_the_history_once_while_new_exports_arrive(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    offsets = [0, 0, 0, 5, 5, 9, 12]  # minutes; ties must not split or repeat across pages
    with sessions() as session:
        for minutes in offsets:
            make_export(session, user_id, requested_at=T0 + timedelta(minutes=minutes))
        session.commit()
        everything = [export.id for export in read_history(session, SOURCE.source_id).items]

    seen: list[str] = []
    cursor = None
    arrivals = iter(range(1, 10))
    while True:
        with sessions() as session:
            page = read_history(session, SOURCE.source_id, limit=3, cursor=cursor)
            seen.extend(export.id for export in page.items)
            arrival = T0 + timedelta(hours=next(arrivals))
            make_export(session, user_id, requested_at=arrival)
            session.commit()
        cursor = page.next_cursor
        if cursor is None:
            break

    assert len(everything) == len(offsets)
    assert seen == everything
    with sessions() as session:
        first = read_history(session, SOURCE.source_id, limit=3).items
    assert [export.requested_at for export in first] == [
        T0 + timedelta(hours=hours) for hours in (3, 2, 1)
    ]


def test_history_is_newest_first_with_ties_by_id_and_the_last_page_has_no_cursor(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    with sessions() as session:
        for minutes in (0, 30, 30, 10, 30):
            make_export(session, user_id, requested_at=T0 + timedelta(minutes=minutes))
        session.commit()

        pages = all_pages(
            lambda cursor: read_history(session, SOURCE.source_id, limit=2, cursor=cursor)
        )

    assert [len(page) for page in pages] == [2, 2, 1]
    keys = [(export.requested_at, export.id) for page in pages for export in page]
    assert keys == sorted(keys, reverse=True)
    assert len(set(keys)) == 5


def test_an_exact_page_leaves_no_empty_page_behind(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    with sessions() as session:
        for minutes in range(4):
            make_export(session, user_id, requested_at=T0 + timedelta(minutes=minutes))
        session.commit()

        pages = all_pages(
            lambda cursor: read_history(session, SOURCE.source_id, limit=2, cursor=cursor)
        )

    assert [len(page) for page in pages] == [2, 2]


def test_history_filters_combine_and_time_bounds_are_half_open(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    with sessions() as session:
        bob = create_user(session, "bob")
        made = {
            "ann-completed-early": make_export(session, user_id, requested_at=T0),
            "ann-failed": make_export(session, user_id, requested_at=T0 + timedelta(hours=1)),
            "bob-completed": make_export(session, bob, requested_at=T0 + timedelta(hours=1)),
            "ann-pending-late": make_export(session, user_id, requested_at=T0 + timedelta(hours=2)),
            "ann-completed-late": make_export(
                session, user_id, requested_at=T0 + timedelta(hours=2)
            ),
        }
        make_export(session, user_id, source=Source(2, "Other", "other"), requested_at=T0)
        for name in ("ann-completed-early", "bob-completed", "ann-completed-late"):
            mark_completed(session, made[name], lead_count=1, facts=FACTS, at=T0)
        mark_failed(session, made["ann-failed"], error="boom", at=T0)
        session.commit()
        name_of = {export.id: name for name, export in made.items()}

        def names(**filters: object) -> set[str]:
            page = read_history(session, SOURCE.source_id, HistoryFilters(**filters))
            return {name_of[export.id] for export in page.items}

        statuses = frozenset({ExportStatus.COMPLETED, ExportStatus.FAILED})
        assert names(statuses=statuses) == {
            "ann-completed-early",
            "ann-failed",
            "bob-completed",
            "ann-completed-late",
        }
        assert names(requested_by="bob") == {"bob-completed"}
        assert names(requested_by="nobody") == set()
        assert names(requested_from=T0 + timedelta(hours=1)) == {
            "ann-failed",
            "bob-completed",
            "ann-pending-late",
            "ann-completed-late",
        }
        assert names(requested_to=T0 + timedelta(hours=1)) == {"ann-completed-early"}
        assert names(
            statuses=frozenset({ExportStatus.COMPLETED}),
            requested_by="ann",
            requested_from=T0 + timedelta(minutes=1),
            requested_to=T0 + timedelta(hours=3),
        ) == {"ann-completed-late"}


def test_filtered_pages_follow_their_own_cursor_only(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    with sessions() as session:
        for minutes in range(5):
            export = make_export(session, user_id, requested_at=T0 + timedelta(minutes=minutes))
            if minutes % 2 == 0:
                mark_failed(session, export, error="boom", at=T0)
        session.commit()
        failed = HistoryFilters(statuses=frozenset({ExportStatus.FAILED}))

        pages = all_pages(
            lambda cursor: read_history(session, SOURCE.source_id, failed, limit=2, cursor=cursor)
        )
        first = read_history(session, SOURCE.source_id, failed, limit=2)

        assert [[export.status for export in page] for page in pages] == [
            ["failed", "failed"],
            ["failed"],
        ]
        with pytest.raises(CursorError, match="other filters"):
            read_history(session, SOURCE.source_id, limit=2, cursor=first.next_cursor)


# The audit log, on both databases.


def test_audit_pages_list_the_sources_events_newest_first_with_actor_names(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    with sessions() as session:
        export = make_export(session, user_id, requested_at=T0)
        mark_processing(session, export, at=T0 + timedelta(seconds=1))
        mark_completed(session, export, lead_count=3, facts=FACTS, at=T0 + timedelta(seconds=2))
        record_event(
            session,
            AuditAction.DOWNLOADED,
            actor_id=user_id,
            source_id=SOURCE.source_id,
            export_id=export.id,
            details={"link_id": 1, "file_size": 1234},
            at=T0 + timedelta(seconds=2),
        )
        record_event(session, AuditAction.REQUESTED, actor_id=user_id, source_id=2, at=T0)
        session.commit()

        pages = all_pages(
            lambda cursor: read_audit_log(session, SOURCE.source_id, limit=3, cursor=cursor)
        )

    entries = [entry for page in pages for entry in page]
    assert [len(page) for page in pages] == [3, 1]
    assert [(e.action, e.actor, e.occurred_at) for e in entries] == [
        ("downloaded", "ann", T0 + timedelta(seconds=2)),
        ("completed", None, T0 + timedelta(seconds=2)),
        ("started", None, T0 + timedelta(seconds=1)),
        ("requested", "ann", T0),
    ]
    assert {entry.export_id for entry in entries} == {export.id}
    assert entries[1].details == {"lead_count": 3, "file_size": 1234, "large": False}


def test_audit_filters_by_actor_action_and_half_open_time(
    sessions: sessionmaker[Session], user_id: int
) -> None:
    with sessions() as session:
        bob = create_user(session, "bob")
        for minutes, action, actor in [
            (0, AuditAction.REQUESTED, user_id),
            (1, AuditAction.DOWNLOADED, user_id),
            (2, AuditAction.DOWNLOADED, bob.id),
            (3, AuditAction.DENIED, bob.id),
            (4, AuditAction.COMPLETED, None),
        ]:
            record_event(
                session,
                action,
                actor_id=actor,
                source_id=SOURCE.source_id,
                details={"minute": minutes},
                at=T0 + timedelta(minutes=minutes),
            )
        session.commit()

        def minutes(**filters: object) -> list[int]:
            page = read_audit_log(session, SOURCE.source_id, AuditFilters(**filters))
            return [entry.details["minute"] for entry in page.items]

        assert minutes(actor="bob") == [3, 2]
        assert minutes(actions=frozenset({AuditAction.DOWNLOADED, AuditAction.COMPLETED})) == [
            4,
            2,
            1,
        ]
        assert minutes(
            occurred_from=T0 + timedelta(minutes=1), occurred_to=T0 + timedelta(minutes=3)
        ) == [2, 1]
        assert minutes(actor="ann", actions=frozenset({AuditAction.DOWNLOADED})) == [1]


# The large-export flag, on both databases.


@pytest.mark.parametrize(("lead_count", "large"), [(99, False), (100, True), (250, True)])
def test_the_completed_event_says_whether_the_export_was_large(
    sessions: sessionmaker[Session],
    user_id: int,
    make_export: NewExport,
    lead_count: int,
    large: bool,
) -> None:
    with sessions() as session:
        export = make_export(session, user_id)
        mark_completed(
            session, export, lead_count=lead_count, facts=FACTS, at=T0, large_threshold=100
        )
        session.commit()
        event = session.scalars(
            select(AuditEvent).where(
                AuditEvent.export_id == export.id, AuditEvent.action == "completed"
            )
        ).one()

    assert event.details == {"lead_count": lead_count, "file_size": 1234, "large": large}


def test_by_default_an_export_is_large_from_one_hundred_thousand_leads(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    with sessions() as session:
        below, at = make_export(session, user_id), make_export(session, user_id)
        mark_completed(session, below, lead_count=99_999, facts=FACTS, at=T0)
        mark_completed(session, at, lead_count=100_000, facts=FACTS, at=T0)
        session.commit()
        flags = {
            event.export_id: event.details["large"]
            for event in session.scalars(select(AuditEvent).where(AuditEvent.action == "completed"))
        }

    assert flags == {below.id: False, at.id: True}


# Periods and usage rows, without a database.


@pytest.mark.parametrize(
    ("moment", "period", "start", "end"),
    [
        (utc(2024, 7, 31, 23, 59, 59), StatsPeriod.DAY, utc(2024, 7, 31), utc(2024, 8, 1)),
        (utc(2024, 8, 1), StatsPeriod.DAY, utc(2024, 8, 1), utc(2024, 8, 2)),
        # The week of Monday 29 July 2024 runs into August.
        (utc(2024, 8, 1, 9), StatsPeriod.WEEK, utc(2024, 7, 29), utc(2024, 8, 5)),
        (utc(2024, 8, 4, 23, 59), StatsPeriod.WEEK, utc(2024, 7, 29), utc(2024, 8, 5)),
        (utc(2024, 8, 5), StatsPeriod.WEEK, utc(2024, 8, 5), utc(2024, 8, 12)),
        # ISO week 1 of 2025 starts on Monday 30 December 2024.
        (utc(2025, 1, 1), StatsPeriod.WEEK, utc(2024, 12, 30), utc(2025, 1, 6)),
        (utc(2024, 2, 29, 12), StatsPeriod.MONTH, utc(2024, 2, 1), utc(2024, 3, 1)),
        (utc(2024, 12, 31, 23), StatsPeriod.MONTH, utc(2024, 12, 1), utc(2025, 1, 1)),
        # 01:00 on 1 August in Berlin summer time is still July in UTC.
        (
            datetime(2024, 8, 1, 1, tzinfo=timezone(timedelta(hours=2))),
            StatsPeriod.MONTH,
            utc(2024, 7, 1),
            utc(2024, 8, 1),
        ),
        (
            utc(9999, 12, 31, 12),
            StatsPeriod.WEEK,
            utc(9999, 12, 27),
            datetime.max.replace(tzinfo=UTC),
        ),
    ],
    ids=[
        "day-last-second",
        "day-midnight",
        "week-into-august",
        "week-sunday-night",
        "week-next-monday",
        "iso-week-1-in-december",
        "month-leap-day",
        "month-december",
        "month-of-utc-not-local-time",
        "week-past-the-last-datetime",
    ],
)
def test_periods_are_utc_days_iso_weeks_and_calendar_months(
    moment: datetime, period: StatsPeriod, start: datetime, end: datetime
) -> None:
    assert period_start(moment, period) == start
    assert period_end(start, period) == end


@pytest.mark.parametrize(
    ("period", "start"),
    [
        (StatsPeriod.MONTH, utc(2025, 3, 1)),
        (StatsPeriod.DAY, utc(2025, 3, 1)),
        (StatsPeriod.WEEK, utc(2025, 2, 24)),
    ],
)
def test_the_default_range_is_the_last_twelve_calendar_months(
    period: StatsPeriod, start: datetime
) -> None:
    now = utc(2026, 2, 14, 10, 30)

    assert default_range(now, period) == (start, now)


def test_usage_is_counted_per_period_and_user() -> None:
    exports = [
        ExportFact(utc(2024, 7, 31, 23), "ann", lead_count=10, large=False),
        ExportFact(utc(2024, 8, 1, 1), "ann", lead_count=500, large=True),
        ExportFact(utc(2024, 8, 1, 2), "ann", lead_count=None, large=False),
        ExportFact(utc(2024, 8, 2), "bob", lead_count=7, large=False),
    ]
    downloads = [
        DownloadFact(utc(2024, 8, 1, 3), "bob"),
        DownloadFact(utc(2024, 8, 1, 4), None),
        DownloadFact(utc(2024, 7, 31), "ann"),
    ]

    monthly = summarize_usage(exports, downloads, StatsPeriod.MONTH)
    weekly = summarize_usage(exports, downloads, StatsPeriod.WEEK)

    july, august = (utc(2024, 7, 1), utc(2024, 8, 1)), (utc(2024, 8, 1), utc(2024, 9, 1))
    assert monthly == [
        UsageRow(*july, "ann", exports_requested=1, leads_exported=10, downloads=1),
        UsageRow(*august, "ann", exports_requested=2, leads_exported=500, large_exports=1),
        UsageRow(*august, "bob", exports_requested=1, leads_exported=7, downloads=1),
        UsageRow(*august, None, downloads=1),
    ]
    week = (utc(2024, 7, 29), utc(2024, 8, 5))
    assert weekly == [
        UsageRow(
            *week, "ann", exports_requested=3, leads_exported=510, downloads=1, large_exports=1
        ),
        UsageRow(*week, "bob", exports_requested=1, leads_exported=7, downloads=1),
        UsageRow(*week, None, downloads=1),
    ]
    assert summarize_usage([], [], StatsPeriod.DAY) == []


@pytest.mark.parametrize(
    ("details", "lead_count", "large"),
    [
        ({"large": True}, 5, True),
        ({"large": False}, 500, False),
        ({"lead_count": 500}, 500, True),
        ({}, 499, False),
        (None, 500, True),
    ],
    ids=["recorded-large", "recorded-small", "unrecorded-at", "unrecorded-below", "no-event"],
)
def test_the_recorded_flag_wins_over_todays_threshold(
    details: dict | None, lead_count: int, large: bool
) -> None:
    assert is_large(details, lead_count, threshold=500) is large


# Usage read from the status table, on both databases.


def test_usage_reads_exports_completions_and_downloads_of_the_source_in_range(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    with sessions() as session:
        bob = create_user(session, "bob")
        done = make_export(session, user_id, requested_at=utc(2024, 7, 31, 22))
        mark_completed(session, done, lead_count=40, facts=FACTS, at=utc(2024, 8, 1, 1))
        big = make_export(session, bob, requested_at=utc(2024, 8, 1, 9))
        mark_completed(
            session, big, lead_count=900, facts=FACTS, at=utc(2024, 8, 1, 10), large_threshold=900
        )
        failed = make_export(session, bob, requested_at=utc(2024, 8, 3))
        mark_failed(session, failed, error="boom", at=utc(2024, 8, 3, 1))
        make_export(session, user_id, requested_at=utc(2024, 8, 5))  # outside the range
        make_export(
            session, user_id, source=Source(2, "Other", "other"), requested_at=utc(2024, 8, 2)
        )
        for at, actor, source_id, action in [
            (utc(2024, 8, 2), user_id, 1, AuditAction.DOWNLOADED),
            (utc(2024, 8, 2), bob.id, 1, AuditAction.DOWNLOADED),
            (utc(2024, 8, 2), bob.id, 1, AuditAction.DENIED),
            (utc(2024, 8, 2), bob.id, 2, AuditAction.DOWNLOADED),
            (utc(2024, 8, 5), bob.id, 1, AuditAction.DOWNLOADED),
        ]:
            record_event(session, action, actor_id=actor, source_id=source_id, at=at)
        session.commit()

        rows = read_usage(
            session,
            SOURCE.source_id,
            period=StatsPeriod.MONTH,
            start=utc(2024, 7, 1),
            end=utc(2024, 8, 5),
            large_threshold=10_000,
        )

    july, august = (utc(2024, 7, 1), utc(2024, 8, 1)), (utc(2024, 8, 1), utc(2024, 9, 1))
    assert rows == [
        UsageRow(*july, "ann", exports_requested=1, leads_exported=40),
        UsageRow(*august, "ann", downloads=1),
        UsageRow(
            *august, "bob", exports_requested=2, leads_exported=900, downloads=1, large_exports=1
        ),
    ]
