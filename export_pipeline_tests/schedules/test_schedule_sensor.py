"""The schedule sensor against a real Dagster instance and real stores, evaluated at
explicit instants: each due tick files one export request, whatever restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import delete

from export_pipeline.definitions import build_definitions
from export_pipeline.defs.exports.sensors import export_request_sensor, export_status_sensor
from export_pipeline.defs.schedules.sensors import build_export_schedule_sensor
from export_pipeline.leads.store import LeadStore
from export_pipeline.status.models import Role, SourcePermission

CREATED = datetime(2026, 3, 25, 12, tzinfo=UTC)  # Wednesday, 13:00 in Berlin
FIRST_TICK = datetime(2026, 3, 26, 5, tzinfo=UTC)  # Thursday 06:00 CET


def evaluate(definitions: dg.Definitions, instance: dg.DagsterInstance, at: datetime):
    """One evaluation of the schedule sensor, as the daemon runs it, at `at`."""
    sensor = build_export_schedule_sensor(clock=lambda: at)
    context = dg.build_sensor_context(instance=instance, resources=definitions.resources)
    return sensor(context)


def test_the_code_location_holds_the_schedule_sensor(definitions):
    sensor = definitions.resolve_sensor_def("export_schedule_sensor")

    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_nothing_is_filed_before_the_first_tick(sqlite_product, definitions, instance):
    sqlite_product.schedule(created_at=CREATED)

    result = evaluate(definitions, instance, FIRST_TICK - timedelta(seconds=1))

    assert isinstance(result, dg.SkipReason)
    assert sqlite_product.exports() == []


def test_a_due_tick_is_filed_once_across_evaluations_and_restarts(
    sqlite_product, definitions, instance
):
    schedule_id = sqlite_product.schedule(created_at=CREATED, filters={"statuses": ["new"]})

    evaluate(definitions, instance, FIRST_TICK + timedelta(seconds=10))
    evaluate(definitions, instance, FIRST_TICK + timedelta(seconds=40))
    # A restarted daemon: new definitions, new resources, another instance.
    with dg.instance_for_test() as restarted:
        evaluate(
            build_definitions(sqlite_product.settings), restarted, FIRST_TICK + timedelta(hours=1)
        )

    (export,) = sqlite_product.exports()
    assert export.requested_at == FIRST_TICK
    assert export.schedule_id == schedule_id
    assert export.requested_by == sqlite_product.owner_id
    assert export.filters["statuses"] == ["new"]
    assert export.filters["time_zone"] == "Europe/Berlin"
    schedule = sqlite_product.stored_schedule(schedule_id)
    assert schedule.last_export_id == export.id
    assert schedule.next_tick_at == FIRST_TICK + timedelta(days=1)

    evaluate(definitions, instance, FIRST_TICK + timedelta(days=1, seconds=5))

    assert [e.requested_at for e in sqlite_product.exports()] == [
        FIRST_TICK,
        FIRST_TICK + timedelta(days=1),
    ]


def test_ticks_missed_while_the_daemon_was_down_are_filed_once_for_the_latest(
    sqlite_product, definitions, instance
):
    schedule_id = sqlite_product.schedule(created_at=CREATED)
    back_at = datetime(2026, 3, 29, 6, tzinfo=UTC)  # missed Thu, Fri, Sat and Sun 06:00

    evaluate(definitions, instance, back_at)
    evaluate(definitions, instance, back_at + timedelta(minutes=1))

    (export,) = sqlite_product.exports()
    assert export.requested_at == datetime(2026, 3, 29, 4, tzinfo=UTC)  # Sunday 06:00 CEST
    schedule = sqlite_product.stored_schedule(schedule_id)
    assert schedule.next_tick_at == datetime(2026, 3, 30, 4, tzinfo=UTC)


def test_a_paused_schedule_files_nothing(sqlite_product, definitions, instance):
    sqlite_product.schedule(created_at=CREATED, enabled=False)

    result = evaluate(definitions, instance, FIRST_TICK + timedelta(days=7))

    assert isinstance(result, dg.SkipReason)
    assert sqlite_product.exports() == []


def test_previous_day_is_frozen_as_the_berlin_day_before_the_tick(
    sqlite_product, definitions, instance
):
    sqlite_product.schedule(
        created_at=datetime(2026, 3, 29, 12, tzinfo=UTC),
        filters={"created_range": {"last": 1, "unit": "day"}},
    )

    evaluate(definitions, instance, datetime(2026, 3, 30, 4, 0, 10, tzinfo=UTC))

    (export,) = sqlite_product.exports()
    assert export.requested_at == datetime(2026, 3, 30, 4, tzinfo=UTC)
    assert export.filters["created_from"] == "2026-03-29"
    assert export.filters["created_to"] == "2026-03-30"
    assert export.filters["time_zone"] == "Europe/Berlin"
    assert "created_range" not in export.filters
    assert export.frozen_filters["created_from"] == "2026-03-28T23:00:00+00:00"
    assert export.frozen_filters["created_to"] == "2026-03-29T22:00:00+00:00"
    assert export.frozen_filters["cutoff"] == "2026-03-30T04:00:00+00:00"


@pytest.mark.parametrize(
    ("filters", "options", "complaint"),
    [
        ({"statuses": ["new", "archived"]}, {}, "filters.statuses.1: unknown status 'archived'"),
        ({"attribute": {"key": "region"}}, {}, "filters.attribute.key: attribute 'region'"),
        ({}, {"columns": ["email", "fax"]}, "options.columns.1: unknown column 'fax'"),
        ({"statuses": "new"}, {}, "filters.statuses: Input should be a valid list"),
    ],
    ids=["status", "attribute", "column", "malformed"],
)
def test_a_definition_that_became_invalid_records_the_error_and_files_nothing(
    sqlite_product, definitions, instance, filters, options, complaint
):
    schedule_id = sqlite_product.schedule(created_at=CREATED, filters=filters, options=options)

    result = evaluate(definitions, instance, FIRST_TICK + timedelta(seconds=10))

    assert isinstance(result, dg.SkipReason)
    assert "1 due ticks skipped" in result.skip_message
    assert sqlite_product.exports() == []
    schedule = sqlite_product.stored_schedule(schedule_id)
    assert complaint in schedule.last_error
    assert schedule.last_error_at == FIRST_TICK + timedelta(seconds=10)
    assert schedule.last_tick_at == FIRST_TICK
    assert schedule.next_tick_at == FIRST_TICK + timedelta(days=1)
    (failed,) = sqlite_product.events("failed")
    assert failed.export_id is None
    assert failed.details["schedule_id"] == schedule_id
    assert failed.details["scheduled_for"] == FIRST_TICK.isoformat()
    assert complaint in failed.details["error"]

    evaluate(definitions, instance, FIRST_TICK + timedelta(minutes=5))
    assert len(sqlite_product.events("failed")) == 1


def test_a_schedule_whose_owner_lost_the_exporter_role_files_nothing(
    sqlite_product, definitions, instance
):
    viewer = sqlite_product.user("former-exporter", Role.VIEWER)
    gone = sqlite_product.user("former-member", None)
    demoted = sqlite_product.schedule(created_at=CREATED, owner_id=viewer)
    removed = sqlite_product.schedule(created_at=CREATED, owner_id=gone)
    with sqlite_product.sessions() as session, session.begin():
        session.execute(delete(SourcePermission).where(SourcePermission.user_id == gone))

    evaluate(definitions, instance, FIRST_TICK)

    assert sqlite_product.exports() == []
    audited = {
        event.details["schedule_id"]: event.details["error"]
        for event in sqlite_product.events("failed")
    }
    for schedule_id, name in ((demoted, "former-exporter"), (removed, "former-member")):
        error = sqlite_product.stored_schedule(schedule_id).last_error
        assert f"owner '{name}' no longer has the exporter role" in error
        assert audited[schedule_id] == error


def test_a_schedule_of_a_source_that_is_gone_files_nothing(sqlite_product, definitions, instance):
    schedule_id = sqlite_product.schedule(created_at=CREATED)
    with LeadStore(sqlite_product.settings.lead_store_path).writing() as connection:
        connection.execute("DELETE FROM sources")

    evaluate(definitions, instance, FIRST_TICK)

    assert sqlite_product.exports() == []
    error = sqlite_product.stored_schedule(schedule_id).last_error
    assert error == f"source {sqlite_product.source_id} no longer exists"


def test_a_filed_export_runs_like_any_other(sqlite_product, definitions, instance):
    now = datetime.now(UTC)  # the leads were imported just now: ticks must come later
    schedule_id = sqlite_product.schedule(
        created_at=now, cron="0 6 * * *", filters={"statuses": ["new"]}
    )
    tick = sqlite_product.stored_schedule(schedule_id).next_tick_at

    evaluate(definitions, instance, tick + timedelta(seconds=3))
    (export,) = sqlite_product.exports()
    context = dg.build_sensor_context(instance=instance, resources=definitions.resources)
    requested = export_request_sensor(context)
    (run_request,) = requested.run_requests
    instance.add_dynamic_partitions("exports", [export.id])
    result = definitions.resolve_job_def("lead_export_job").execute_in_process(
        partition_key=run_request.partition_key, instance=instance, tags=run_request.tags
    )
    export_status_sensor(context)

    assert run_request.run_key == export.id
    assert "owner" in run_request.tags.values()
    assert result.success
    (done,) = sqlite_product.exports()
    assert done.status == "completed"
    assert done.lead_count == 2


def test_a_tick_in_the_repeated_autumn_hour_files_one_export(sqlite_product, definitions, instance):
    # 02:30 happens twice in Berlin on 2026-10-25: at 00:30 and at 01:30 UTC.
    schedule_id = sqlite_product.schedule(
        cron="30 2 * * *", created_at=datetime(2026, 10, 24, 12, tzinfo=UTC)
    )

    evaluate(definitions, instance, datetime(2026, 10, 25, 0, 30, 10, tzinfo=UTC))
    evaluate(definitions, instance, datetime(2026, 10, 25, 1, 30, 10, tzinfo=UTC))

    (export,) = sqlite_product.exports()
    assert export.requested_at == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    next_tick = sqlite_product.stored_schedule(schedule_id).next_tick_at
    assert next_tick == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_a_tick_in_the_skipped_spring_hour_files_when_the_clocks_moved_on(
    sqlite_product, definitions, instance
):
    # 02:30 does not exist in Berlin on 2026-03-29: the tick comes at 03:00 CEST.
    sqlite_product.schedule(cron="30 2 * * *", created_at=datetime(2026, 3, 28, 12, tzinfo=UTC))

    evaluate(definitions, instance, datetime(2026, 3, 29, 0, 59, tzinfo=UTC))
    assert sqlite_product.exports() == []
    evaluate(definitions, instance, datetime(2026, 3, 29, 1, 0, 5, tzinfo=UTC))

    (export,) = sqlite_product.exports()
    assert export.requested_at == datetime(2026, 3, 29, 1, tzinfo=UTC)
