"""Export requests and their lifecycle in the status table, on both databases."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.engine.filters import AttributeFilter, ExportFilters, FrozenFilters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import Source
from export_pipeline.status.exports import (
    attach_run,
    exports_awaiting_run,
    get_export,
    list_exports,
    mark_cancelled,
    mark_completed,
    mark_failed,
    mark_processing,
    unsettled_exports,
)
from export_pipeline.status.models import AuditEvent, Export
from export_pipeline.storage import FileFacts

SOURCE = Source(source_id=1, name="Trade Fair", slug="trade-fair")
REQUESTED_AT = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
FACTS = FileFacts(uri="file:///exports/trade-fair.csv", size=1234, sha256="ab" * 32)

NewExport = Callable[..., Export]


def events(session: Session, export_id: str) -> list[tuple[str, datetime, dict]]:
    rows = session.scalars(
        select(AuditEvent).where(AuditEvent.export_id == export_id).order_by(AuditEvent.id)
    )
    return [(event.action, event.occurred_at, event.details) for event in rows]


def test_request_is_stored_pending_with_its_filters_options_and_an_audit_event(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    filters = ExportFilters(
        statuses=["new"],
        time_zone="America/New_York",
        created_from="2024-03-10",
        attribute=AttributeFilter(key="source", value="web"),
        search="o'brien",
    )
    options = ExportOptions(formula_guard=False, columns=["email", "lead_id"])
    with sessions() as session:
        export_id = make_export(session, user_id, filters=filters, options=options).id
        session.commit()

    with sessions() as session:
        export = get_export(session, export_id)
        assert export is not None
        audit = session.scalars(select(AuditEvent).where(AuditEvent.export_id == export_id)).all()

    assert export.status == "pending"
    assert (export.source_id, export.requested_by) == (1, user_id)
    assert export.requested_at == REQUESTED_AT
    assert (export.started_at, export.completed_at, export.dagster_run_id) == (None, None, None)
    assert ExportFilters.model_validate(export.filters) == filters
    assert ExportOptions.model_validate(export.options) == options
    frozen = FrozenFilters.from_json(export.frozen_filters)
    assert frozen.created_from == datetime(2024, 3, 10, 5, tzinfo=UTC)
    assert frozen.cutoff == REQUESTED_AT
    assert frozen.statuses == ("new",)
    assert [(e.action, e.actor_id, e.source_id, e.occurred_at) for e in audit] == [
        ("requested", user_id, 1, REQUESTED_AT)
    ]


def test_file_name_is_slug_utc_request_time_and_export_id_prefix(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    with sessions() as session:
        plain = make_export(session, user_id)
        compressed = make_export(session, user_id, options=ExportOptions(compression="gzip"))
        session.commit()

    pattern = r"trade-fair_20240601T120000Z_([0-9a-f]{8})"
    plain_match = re.fullmatch(pattern + r"\.csv", plain.file_name)
    gzip_match = re.fullmatch(pattern + r"\.csv\.gz", compressed.file_name)
    assert plain_match is not None
    assert gzip_match is not None
    assert plain.id.startswith(plain_match.group(1))
    assert compressed.id.startswith(gzip_match.group(1))
    assert plain.file_name != compressed.file_name


def test_file_name_uses_the_utc_time_even_for_a_request_time_with_an_offset(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    berlin_summer = timezone(timedelta(hours=2))
    requested_at = datetime(2024, 6, 1, 14, 0, 0, tzinfo=berlin_summer)
    with sessions() as session:
        export = make_export(session, user_id, requested_at=requested_at)
        session.commit()

    assert export.file_name.startswith("trade-fair_20240601T120000Z_")


def test_lifecycle_pending_processing_completed_records_facts_and_events(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    started, finished = REQUESTED_AT + timedelta(seconds=5), REQUESTED_AT + timedelta(minutes=2)
    with sessions() as session:
        export = make_export(session, user_id)
        assert attach_run(session, export.id, "run-1", at=REQUESTED_AT)
        session.commit()
        session.refresh(export)

        assert mark_processing(session, export, at=started)
        assert export.status == "processing"
        assert mark_completed(session, export, lead_count=5, facts=FACTS, at=finished)
        session.commit()
        export_id = export.id

    with sessions() as session:
        export = session.get_one(Export, export_id)
        history = events(session, export_id)

    assert export.status == "completed"
    assert (export.started_at, export.completed_at) == (started, finished)
    assert (export.lead_count, export.file_uri, export.file_size, export.sha256) == (
        5,
        FACTS.uri,
        FACTS.size,
        FACTS.sha256,
    )
    assert export.error is None
    assert history == [
        ("requested", REQUESTED_AT, {}),
        ("started", started, {"dagster_run_id": "run-1"}),
        ("completed", finished, {"lead_count": 5, "file_size": 1234, "large": False}),
    ]


def test_terminal_export_cannot_move_again(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    finished = REQUESTED_AT + timedelta(minutes=1)
    later = REQUESTED_AT + timedelta(minutes=5)
    with sessions() as session:
        export = make_export(session, user_id)
        mark_processing(session, export, at=REQUESTED_AT)
        mark_completed(session, export, lead_count=5, facts=FACTS, at=finished)
        session.commit()

        assert not mark_failed(session, export, error="late crash", at=later)
        assert not mark_cancelled(session, export, at=later)
        assert not mark_processing(session, export, at=later)
        assert not mark_completed(
            session, export, lead_count=9, facts=FileFacts("file:///x", 1, "0" * 64), at=later
        )
        session.commit()
        export_id = export.id

    with sessions() as session:
        export = session.get_one(Export, export_id)
        actions = [action for action, _, _ in events(session, export_id)]

    assert (export.status, export.error, export.completed_at) == ("completed", None, finished)
    assert (export.lead_count, export.file_uri) == (5, FACTS.uri)
    assert actions == ["requested", "started", "completed"]


def test_failure_and_cancellation_are_terminal_too(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    at = REQUESTED_AT + timedelta(minutes=1)
    with sessions() as session:
        failing = make_export(session, user_id)
        cancelled = make_export(session, user_id)
        mark_processing(session, cancelled, at=REQUESTED_AT)

        assert mark_failed(session, failing, error="lead store unreachable", at=at)
        assert mark_cancelled(session, cancelled, at=at, actor_id=user_id)
        assert not mark_completed(session, failing, lead_count=1, facts=FACTS, at=at)
        assert not mark_completed(session, cancelled, lead_count=1, facts=FACTS, at=at)
        session.commit()
        ids = failing.id, cancelled.id

    with sessions() as session:
        failing, cancelled = (session.get_one(Export, export_id) for export_id in ids)
        failing_events = events(session, failing.id)
        cancelled_events = events(session, cancelled.id)

    assert (failing.status, failing.error, failing.completed_at) == (
        "failed",
        "lead store unreachable",
        at,
    )
    assert failing.file_uri is None
    assert failing_events[-1] == ("failed", at, {"error": "lead store unreachable"})
    assert (cancelled.status, cancelled.completed_at) == ("cancelled", at)
    assert [action for action, _, _ in cancelled_events] == ["requested", "started", "cancelled"]


def test_a_stale_copy_in_another_session_cannot_move_the_export_twice(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    with sessions() as session:
        export_id = make_export(session, user_id).id
        session.commit()

    with sessions() as first, sessions() as second:
        mine, theirs = first.get_one(Export, export_id), second.get_one(Export, export_id)
        assert mark_processing(first, mine, at=REQUESTED_AT)
        first.commit()

        assert not mark_processing(second, theirs, at=REQUESTED_AT + timedelta(seconds=1))
        second.commit()

    with sessions() as session:
        starts = [a for a, _, _ in events(session, export_id) if a == "started"]
        assert session.get_one(Export, export_id).started_at == REQUESTED_AT
    assert starts == ["started"]


def test_a_run_is_attached_only_once(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    with sessions() as session:
        export_id = make_export(session, user_id).id
        session.commit()

        assert attach_run(session, export_id, "run-1", at=REQUESTED_AT)
        assert not attach_run(session, export_id, "run-2", at=REQUESTED_AT)
        session.commit()

    with sessions() as session:
        assert session.get_one(Export, export_id).dagster_run_id == "run-1"


def test_awaiting_run_lists_pending_exports_without_a_run_oldest_first(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    with sessions() as session:
        newer = make_export(session, user_id, requested_at=REQUESTED_AT + timedelta(hours=1))
        older = make_export(session, user_id, requested_at=REQUESTED_AT)
        picked_up = make_export(session, user_id, requested_at=REQUESTED_AT)
        attach_run(session, picked_up.id, "run-1", at=REQUESTED_AT)
        failed = make_export(session, user_id, requested_at=REQUESTED_AT)
        mark_failed(session, failed, error="boom", at=REQUESTED_AT)
        session.commit()

    with sessions() as session:
        awaiting = [export.id for export in exports_awaiting_run(session)]
        limited = [export.id for export in exports_awaiting_run(session, limit=1)]

    assert awaiting == [older.id, newer.id]
    assert limited == [older.id]


def test_unsettled_exports_are_the_pending_and_processing_ones(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    at = REQUESTED_AT
    with sessions() as session:
        pending = make_export(session, user_id)
        processing = make_export(session, user_id)
        mark_processing(session, processing, at=at)
        completed = make_export(session, user_id)
        mark_completed(session, completed, lead_count=1, facts=FACTS, at=at)
        failed = make_export(session, user_id)
        mark_failed(session, failed, error="boom", at=at)
        cancelled = make_export(session, user_id)
        mark_cancelled(session, cancelled, at=at)
        session.commit()

    with sessions() as session:
        unsettled = {export.id for export in unsettled_exports(session)}

    assert unsettled == {pending.id, processing.id}


def test_history_lists_the_sources_exports_newest_first(
    sessions: sessionmaker[Session], user_id: int, make_export: NewExport
) -> None:
    other_source = Source(source_id=2, name="Other", slug="other")
    with sessions() as session:
        ids = [
            make_export(session, user_id, requested_at=REQUESTED_AT + timedelta(minutes=m)).id
            for m in (5, 0, 30, 10)
        ]
        make_export(session, user_id, source=other_source)
        session.commit()

    with sessions() as session:
        history = [export.id for export in list_exports(session, SOURCE.source_id)]
        latest_two = [export.id for export in list_exports(session, SOURCE.source_id, limit=2)]
        other = list_exports(session, other_source.source_id)

    assert history == [ids[2], ids[3], ids[0], ids[1]]
    assert latest_two == [ids[2], ids[3]]
    assert [export.file_name.split("_")[0] for export in other] == ["other"]
