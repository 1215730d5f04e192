"""The retention schedule and job against a real Dagster instance, real files and the
real status table: old files go, their exports expire, their links stop working."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
from sqlalchemy import select, update

from export_pipeline.definitions import build_definitions
from export_pipeline.settings import Settings
from export_pipeline.status.links import issue_link
from export_pipeline.status.models import DownloadLink, Export
from export_pipeline.storage import PARTIAL_DIR
from export_pipeline_tests.schedules.conftest import completed_export, pending_export

AS_OF = datetime(2026, 5, 1, 3, 30, tzinfo=UTC)


def scheduled_request(definitions: dg.Definitions, instance, at: datetime) -> dg.RunRequest:
    schedule = definitions.resolve_schedule_def("export_retention_schedule")
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=at)
    (request,) = schedule.evaluate_tick(context).run_requests
    return request


def run_retention(definitions, instance, at: datetime = AS_OF) -> dg.ExecuteInProcessResult:
    """The run the schedule's tick at `at` asks for, executed in process."""
    request = scheduled_request(definitions, instance, at)
    return definitions.resolve_job_def("export_retention_job").execute_in_process(
        run_config=request.run_config, instance=instance, tags=request.tags, raise_on_error=False
    )


def statuses(product) -> dict[str, str]:
    with product.sessions() as session:
        return dict(session.execute(select(Export.id, Export.status)).all())


def step_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (output,) = [event for event in result.all_node_events if event.is_successful_output]
    return {key: value.value for key, value in output.step_output_data.metadata.items()}


def test_the_schedule_runs_daily_with_the_configured_retention(sqlite_product, instance):
    settings = Settings(**{**sqlite_product.settings.model_dump(), "retention_days": 7})
    definitions = build_definitions(settings)
    schedule = definitions.resolve_schedule_def("export_retention_schedule")

    request = scheduled_request(definitions, instance, AS_OF)

    assert schedule.cron_schedule == "30 3 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    config = request.run_config["ops"]["expire_old_exports"]["config"]
    assert config == {"retention_days": 7, "as_of": AS_OF.isoformat()}


def test_only_files_older_than_the_retention_period_are_deleted(
    sqlite_product, definitions, instance
):
    old, old_file = completed_export(
        sqlite_product, completed_at=AS_OF - timedelta(days=31), links=2
    )
    just_old, just_old_file = completed_export(
        sqlite_product, completed_at=AS_OF - timedelta(days=30, seconds=1)
    )
    boundary, boundary_file = completed_export(sqlite_product, completed_at=AS_OF - timedelta(30))
    young, young_file = completed_export(
        sqlite_product, completed_at=AS_OF - timedelta(days=2), links=1
    )
    pending = pending_export(sqlite_product, requested_at=AS_OF - timedelta(days=90))

    before = datetime.now(UTC)
    result = run_retention(definitions, instance)

    assert result.success
    assert not old_file.exists()
    assert not old_file.parent.exists()
    assert not just_old_file.exists()
    assert boundary_file.exists()
    assert young_file.exists()
    assert statuses(sqlite_product) == {
        old: "expired",
        just_old: "expired",
        boundary: "completed",
        young: "completed",
        pending: "pending",
    }
    with sqlite_product.sessions() as session:
        links = {link.export_id: link.revoked_at for link in session.scalars(select(DownloadLink))}
    assert links[young] is None
    assert before <= links[old] <= datetime.now(UTC)  # when the run revoked it, not AS_OF
    expired = sqlite_product.events("expired")
    assert sorted(event.export_id for event in expired) == sorted([old, just_old])
    assert {event.details["retention_days"] for event in expired} == {30}
    assert [event.export_id for event in sqlite_product.events("link_revoked")] == [old, old]
    assert step_metadata(result)["exports_expired"] == 2
    assert step_metadata(result)["links_revoked"] == 2


def test_running_twice_changes_nothing_the_second_time(sqlite_product, definitions, instance):
    completed_export(sqlite_product, completed_at=AS_OF - timedelta(days=40), links=1)
    assert run_retention(definitions, instance).success
    before = statuses(sqlite_product)

    again = run_retention(definitions, instance)
    later = run_retention(definitions, instance, AS_OF + timedelta(days=1))

    assert again.success
    assert later.success
    assert statuses(sqlite_product) == before
    assert step_metadata(again)["exports_expired"] == 0
    assert len(sqlite_product.events("expired")) == 1
    assert len(sqlite_product.events("link_revoked")) == 1


def test_a_file_already_gone_still_expires_its_export(sqlite_product, definitions, instance):
    export_id, path = completed_export(sqlite_product, completed_at=AS_OF - timedelta(days=40))
    path.unlink()

    result = run_retention(definitions, instance)

    assert result.success
    assert statuses(sqlite_product) == {export_id: "expired"}


def test_a_file_that_cannot_be_deleted_stops_neither_the_others_nor_a_later_run(
    sqlite_product, definitions, instance
):
    blocked, blocked_path = completed_export(
        sqlite_product, completed_at=AS_OF - timedelta(days=50), links=1
    )
    other, other_path = completed_export(sqlite_product, completed_at=AS_OF - timedelta(days=40))
    # A directory where the file should be: storage refuses to delete it as a file.
    blocked_path.unlink()
    blocked_path.mkdir()
    (blocked_path / "inside.csv").write_text("lead_id\r\n")

    result = run_retention(definitions, instance)

    assert not result.success
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "1 files or folders could not be removed" in message
    assert statuses(sqlite_product) == {blocked: "completed", other: "expired"}
    assert not other_path.exists()
    with sqlite_product.sessions() as session:
        (link,) = session.scalars(select(DownloadLink))
    assert link.revoked_at is None  # the export keeps its file, and its link works

    shutil.rmtree(blocked_path)
    assert run_retention(definitions, instance, AS_OF + timedelta(days=1)).success
    assert statuses(sqlite_product) == {blocked: "expired", other: "expired"}


def test_partial_folders_that_no_run_writes_are_removed(sqlite_product, definitions, instance):
    completed, _ = completed_export(sqlite_product, completed_at=AS_OF - timedelta(days=1))
    pending = pending_export(sqlite_product, requested_at=AS_OF)
    unknown = str(uuid.uuid4())
    partial_root = sqlite_product.settings.resolved_home / "exports" / PARTIAL_DIR
    for key in (completed, pending, unknown):
        (partial_root / key).mkdir(parents=True)
        (partial_root / key / "half.csv").write_text("lead_id\r\n1\r\n")

    result = run_retention(definitions, instance)

    assert result.success
    assert sorted(path.name for path in partial_root.iterdir()) == [pending]
    assert step_metadata(result)["partials_removed"] == 2
    assert statuses(sqlite_product)[completed] == "completed"


def test_a_past_as_of_picks_the_exports_but_every_change_is_dated_now(product, instance):
    """On SQLite and PostgreSQL: links issued after `as_of` are revoked at the run's time,
    never before they were issued; links already expired or revoked stay as they were."""
    now = datetime.now(UTC)
    as_of = now - timedelta(minutes=20)
    export_id, _ = completed_export(product, completed_at=as_of - timedelta(hours=2))
    with product.sessions() as session, session.begin():
        export = session.get_one(Export, export_id)
        _, active = issue_link(session, export, product.owner_id, ttl=timedelta(hours=1), now=now)
        _, lapsed = issue_link(
            session,
            export,
            product.owner_id,
            ttl=timedelta(hours=1),
            now=as_of - timedelta(hours=2),
        )
        _, revoked = issue_link(
            session,
            export,
            product.owner_id,
            ttl=timedelta(hours=1),
            now=as_of - timedelta(hours=1),
        )
        link_ids = {"active": active.id, "lapsed": lapsed.id, "revoked": revoked.id}
    revoked_before = as_of - timedelta(minutes=30)
    with product.sessions() as session, session.begin():
        session.execute(
            update(DownloadLink)
            .where(DownloadLink.id == link_ids["revoked"])
            .values(revoked_at=revoked_before)
        )
    definitions = build_definitions(product.settings)
    config = {"retention_days": 0, "as_of": as_of.isoformat().replace("+00:00", "Z")}

    started = datetime.now(UTC)
    result = definitions.resolve_job_def("export_retention_job").execute_in_process(
        run_config={"ops": {"expire_old_exports": {"config": config}}}, instance=instance
    )
    finished = datetime.now(UTC)

    assert result.success
    assert step_metadata(result)["exports_expired"] == 1
    assert step_metadata(result)["links_revoked"] == 1
    with product.sessions() as session:
        expired = session.get_one(Export, export_id)
        links = {name: session.get_one(DownloadLink, link_id) for name, link_id in link_ids.items()}
    assert expired.status == "expired"
    assert started <= expired.updated_at <= finished
    assert links["active"].issued_at <= started <= links["active"].revoked_at <= finished
    assert links["lapsed"].revoked_at is None  # it stays expired, not revoked
    assert links["revoked"].revoked_at == revoked_before
    events = product.events("expired") + product.events("link_revoked")
    assert len(events) == 2
    assert all(started <= event.occurred_at <= finished for event in events)
    (link_event,) = product.events("link_revoked")
    assert link_event.details["link_id"] == link_ids["active"]
