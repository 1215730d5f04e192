"""Export schedules in the status table, on SQLite and on PostgreSQL: their ticks, and
filing each tick exactly once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from export_pipeline.engine.filters import ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import get_source
from export_pipeline.leads.store import LeadStore
from export_pipeline.status.models import AuditEvent, Export
from export_pipeline.status.schedules import (
    Tick,
    due_schedules,
    file_tick,
    get_schedule,
    plan_tick,
    skip_tick,
    update_schedule,
)

CREATED = datetime(2026, 3, 25, 12, tzinfo=UTC)  # Wednesday, 13:00 in Berlin
FIRST_TICK = datetime(2026, 3, 26, 5, tzinfo=UTC)  # Thursday 06:00 CET


def tick_of(product, schedule_id: str, now: datetime) -> Tick:
    schedule = product.stored_schedule(schedule_id)
    at, following = plan_tick(schedule.cron, schedule.time_zone, schedule.next_tick_at, now)
    return Tick(schedule_id=schedule_id, due=schedule.next_tick_at, at=at, following=following)


def file(product, tick: Tick) -> str | None:
    with LeadStore(product.settings.lead_store_path).reading() as connection:
        source = get_source(connection, product.source_id)
    filters = ExportFilters(statuses=["new"])
    with product.sessions() as session, session.begin():
        export = file_tick(
            session,
            tick,
            source=source,
            filters=filters,
            frozen=freeze_filters(filters, requested_at=tick.at),
            options=ExportOptions(),
        )
        return export.id if export else None


def test_a_new_schedule_is_due_at_its_first_tick_after_creation(product):
    active = product.schedule(created_at=CREATED)
    paused = product.schedule(created_at=CREATED, enabled=False)

    assert product.stored_schedule(active).next_tick_at == FIRST_TICK
    assert product.stored_schedule(paused).next_tick_at is None
    with product.sessions() as session:
        assert due_schedules(session, now=FIRST_TICK - timedelta(seconds=1)) == []
        assert [s.id for s in due_schedules(session, now=FIRST_TICK)] == [active]


def test_a_tick_files_one_export_as_the_owner_at_the_tick_time(product):
    schedule_id = product.schedule(created_at=CREATED)
    tick = tick_of(product, schedule_id, FIRST_TICK + timedelta(seconds=20))

    export_id = file(product, tick)

    (export,) = product.exports()
    assert export.id == export_id
    assert export.schedule_id == schedule_id
    assert export.requested_by == product.owner_id
    assert export.requested_at == FIRST_TICK
    assert export.status == "pending"
    assert export.frozen_filters["cutoff"] == FIRST_TICK.isoformat()
    schedule = product.stored_schedule(schedule_id)
    assert schedule.last_tick_at == FIRST_TICK
    assert schedule.last_export_id == export_id
    assert schedule.next_tick_at == FIRST_TICK + timedelta(days=1)
    (requested,) = product.events("requested")
    assert requested.actor_id == product.owner_id
    assert requested.details == {
        "schedule_id": schedule_id,
        "scheduled_for": FIRST_TICK.isoformat(),
    }


def test_a_tick_already_filed_files_nothing_more(product):
    schedule_id = product.schedule(created_at=CREATED)
    tick = tick_of(product, schedule_id, FIRST_TICK)

    assert file(product, tick) is not None
    assert file(product, tick) is None
    assert file(product, tick) is None

    assert len(product.exports()) == 1
    assert len(product.events("requested")) == 1


def test_two_evaluations_racing_for_a_tick_file_it_once(product):
    schedule_id = product.schedule(created_at=CREATED)
    tick = tick_of(product, schedule_id, FIRST_TICK)
    barrier = threading.Barrier(4)
    results: list[str | None] = []

    def race() -> None:
        barrier.wait()
        results.append(file(product, tick))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(results) == 4
    assert len([result for result in results if result is not None]) == 1
    assert len(product.exports()) == 1


def test_a_skipped_tick_records_the_error_and_the_next_filing_clears_it(product):
    schedule_id = product.schedule(created_at=CREATED)
    first = tick_of(product, schedule_id, FIRST_TICK)

    with product.sessions() as session, session.begin():
        assert skip_tick(session, first, error="filters.statuses.0: unknown status", at=FIRST_TICK)
    with product.sessions() as session, session.begin():
        assert not skip_tick(session, first, error="again", at=FIRST_TICK)

    schedule = product.stored_schedule(schedule_id)
    assert schedule.last_error == "filters.statuses.0: unknown status"
    assert schedule.last_error_at == FIRST_TICK
    assert schedule.next_tick_at == FIRST_TICK + timedelta(days=1)
    assert product.exports() == []
    (failed,) = product.events("failed")
    assert failed.export_id is None
    assert failed.source_id == product.source_id
    assert failed.details["schedule_id"] == schedule_id
    assert failed.details["error"] == "filters.statuses.0: unknown status"

    second = tick_of(product, schedule_id, FIRST_TICK + timedelta(days=1))
    assert file(product, second) is not None
    assert product.stored_schedule(schedule_id).last_error is None


def test_pausing_and_resuming_skips_the_ticks_in_between(product):
    schedule_id = product.schedule(created_at=CREATED)
    with product.sessions() as session, session.begin():
        update_schedule(
            session, get_schedule(session, schedule_id), {"enabled": False}, now=CREATED
        )
    assert product.stored_schedule(schedule_id).next_tick_at is None
    with product.sessions() as session:
        assert due_schedules(session, now=FIRST_TICK + timedelta(days=5)) == []

    resumed_at = FIRST_TICK + timedelta(days=3, hours=1)
    with product.sessions() as session, session.begin():
        update_schedule(
            session, get_schedule(session, schedule_id), {"enabled": True}, now=resumed_at
        )

    assert product.stored_schedule(schedule_id).next_tick_at == FIRST_TICK + timedelta(
        days=4, hours=-1
    )  # 06:00 CEST on 2026-03-30, after the change to summer time


def test_a_tick_planned_before_a_pause_is_not_filed_after_it(product):
    schedule_id = product.schedule(created_at=CREATED)
    tick = tick_of(product, schedule_id, FIRST_TICK)
    with product.sessions() as session, session.begin():
        update_schedule(
            session, get_schedule(session, schedule_id), {"enabled": False}, now=FIRST_TICK
        )

    assert file(product, tick) is None
    assert product.exports() == []


def test_changing_the_cron_expression_counts_ticks_afresh(product):
    schedule_id = product.schedule(created_at=CREATED)
    with product.sessions() as session, session.begin():
        update_schedule(
            session,
            get_schedule(session, schedule_id),
            {"cron": "0 9 * * 1", "name": "weekly"},
            now=CREATED,
        )

    schedule = product.stored_schedule(schedule_id)
    assert schedule.name == "weekly"
    assert schedule.next_tick_at == datetime(2026, 3, 30, 7, tzinfo=UTC)  # Monday 09:00 CEST


def test_deleting_a_schedule_keeps_the_exports_it_filed(product):
    schedule_id = product.schedule(created_at=CREATED)
    export_id = file(product, tick_of(product, schedule_id, FIRST_TICK))

    with product.sessions() as session, session.begin():
        session.delete(get_schedule(session, schedule_id))

    with product.sessions() as session:
        assert get_schedule(session, schedule_id) is None
        assert session.get_one(Export, export_id).schedule_id == schedule_id
        assert session.scalars(select(AuditEvent.action)).all() == ["requested"]
