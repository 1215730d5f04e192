"""The retention job: delete export files past the retention period and expire them.

For every completed export whose `completed_at` is more than `retention_days` before
the run's reference time (`as_of`), the job deletes the file (a file already gone counts
as deleted), then marks the export `expired`, revokes its active download links and
records the audit events, in one transaction per export. `as_of` only picks the exports:
every time the job records is the time it actually did the work, so a run for a past
`as_of` never dates a change before the link or event it follows.

A file that cannot be deleted leaves its export completed and downloadable; the job
goes on with the others, reports each failure, and fails at the end so that the run
shows red in Dagster. The next run tries those files again. Running the job twice
changes nothing the second time.

It also removes `.partial/` folders that no run can still be writing: those of exports
that are neither pending nor processing, or unknown.
"""

import logging
import posixpath
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from export_pipeline.defs.exports.resources import ExportStorageResource, StatusTableResource
from export_pipeline.settings import Settings
from export_pipeline.status.retention import (
    ExpiringFile,
    expire_export,
    exports_past_retention,
    retention_cutoff,
    settled_partials,
)
from export_pipeline.storage import PARTIAL_DIR, ExportStorage

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS: int = Settings.model_fields["retention_days"].default
BATCH_SIZE = 500


class RetentionConfig(dg.Config):
    retention_days: int = Field(
        default=DEFAULT_RETENTION_DAYS,
        description="Exports completed more than this many days before `as_of` expire.",
    )
    as_of: str | None = Field(
        default=None,
        description=(
            "ISO 8601 timestamp with an offset to count the retention period back from; "
            "the run's start if unset. It only picks the exports: expiries are recorded at "
            "the time the run makes them."
        ),
    )


@dataclass
class RetentionReport:
    """What one retention pass did; `errors` maps an export id or partial folder to why it
    could not be removed."""

    expired: list[str] = field(default_factory=list)
    links_revoked: int = 0
    partials_removed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def apply_retention(
    status_table: StatusTableResource,
    storage: ExportStorage,
    *,
    as_of: datetime,
    retention_days: int,
) -> RetentionReport:
    """Expire every export completed before `as_of - retention_days` and remove settled
    partial folders; see the module's description. The expiry is recorded at the current
    time, whatever `as_of` is. Never raises for one file."""
    report = RetentionReport()
    cutoff = retention_cutoff(as_of, retention_days)
    after: ExpiringFile | None = None
    while True:
        with status_table.session() as session:
            batch = exports_past_retention(session, completed_before=cutoff, after=after)
        if not batch:
            break
        for expiring in batch:
            _expire(status_table, storage, expiring, retention_days, report)
        after = batch[-1]

    _remove_settled_partials(status_table, storage, report)
    return report


def _expire(
    status_table: StatusTableResource,
    storage: ExportStorage,
    expiring: ExpiringFile,
    retention_days: int,
    report: RetentionReport,
) -> None:
    export_id = expiring.export_id
    try:
        if expiring.file_uri is not None:
            storage.delete(expiring.file_uri)
    except FileNotFoundError:
        pass  # gone already, between the check for it and its removal
    except Exception as error:  # one file must not stop the others
        report.errors[export_id] = f"could not delete the file: {_reason(error)}"
        log.error("retention: the file of export %s: %s", export_id, report.errors[export_id])
        return

    with status_table.session() as session:
        revoked = expire_export(
            session, export_id, at=datetime.now(UTC), retention_days=retention_days
        )
    if revoked is not None:
        report.expired.append(export_id)
        report.links_revoked += revoked
        log.info("retention: export %s expired, %d links revoked", export_id, revoked)


def _remove_settled_partials(
    status_table: StatusTableResource, storage: ExportStorage, report: RetentionReport
) -> None:
    partial_root = posixpath.join(storage.root, PARTIAL_DIR)
    try:
        listed = (
            storage.fs.ls(partial_root, detail=False) if storage.fs.exists(partial_root) else []
        )
    except Exception as error:  # the expiry is done: report, go on
        report.errors[PARTIAL_DIR] = f"could not list the partial folders: {_reason(error)}"
        return
    keys = [posixpath.basename(path.rstrip("/")) for path in listed]
    with status_table.session() as session:
        settled = settled_partials(session, keys)
    for key in settled:
        try:
            storage.discard_partial(key)
        except Exception as error:  # one folder must not stop the others
            report.errors[f"{PARTIAL_DIR}/{key}"] = f"could not remove it: {_reason(error)}"
            continue
        report.partials_removed.append(key)


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:500]


@dg.op(
    name="expire_old_exports",
    description=(
        "Deletes export files past the retention period, marks their exports expired and "
        "revokes their links; removes partial files no run is writing."
    ),
)
def expire_old_exports(
    context: dg.OpExecutionContext,
    config: RetentionConfig,
    status_table: StatusTableResource,
    export_storage: ExportStorageResource,
) -> dg.Output[None]:
    as_of = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(UTC)
    if as_of.tzinfo is None:
        msg = f"as_of {config.as_of!r} needs an offset, such as +00:00 or Z"
        raise dg.Failure(description=msg, allow_retries=False)

    report = apply_retention(
        status_table,
        export_storage.storage(),
        as_of=as_of.astimezone(UTC),
        retention_days=config.retention_days,
    )

    metadata = {
        "as_of": as_of.isoformat(),
        "retention_days": config.retention_days,
        "exports_expired": len(report.expired),
        "links_revoked": report.links_revoked,
        "partials_removed": len(report.partials_removed),
        "errors": len(report.errors),
    }
    context.log.info(
        f"retention as of {as_of.isoformat()}: {len(report.expired)} exports expired, "
        f"{report.links_revoked} links revoked, {len(report.partials_removed)} partial "
        f"folders removed, {len(report.errors)} errors"
    )
    if report.errors:
        for target, reason in sorted(report.errors.items()):
            context.log.error(f"retention could not remove {target}: {reason}")
        msg = (
            f"{len(report.errors)} files or folders could not be removed (the others were); "
            "their exports stay completed and the next run tries again"
        )
        raise dg.Failure(
            description=msg,
            metadata={**metadata, "failed": dg.MetadataValue.json(report.errors)},
            allow_retries=False,
        )
    return dg.Output(None, metadata=metadata)


def build_retention_job(settings: Settings) -> dg.JobDefinition:
    """The job, with `settings.retention_days` as its default configuration."""

    @dg.job(
        name="export_retention_job",
        description="Deletes export files past the retention period and expires their exports.",
        config=dg.RunConfig(
            ops={"expire_old_exports": RetentionConfig(retention_days=settings.retention_days)}
        ),
        executor_def=dg.in_process_executor,
    )
    def export_retention_job() -> None:
        expire_old_exports()

    return export_retention_job
