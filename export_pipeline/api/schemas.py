"""Request and response bodies of the HTTP API.

Datetimes are aware UTC and serialise as ISO 8601 with a `Z`.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from export_pipeline.engine.filters import ExportFilters, parse_moment
from export_pipeline.engine.options import ExportOptions
from export_pipeline.status.audit import AuditAction, AuditEntry
from export_pipeline.status.links import LinkState
from export_pipeline.status.models import Export, ExportStatus, Role
from export_pipeline.status.notifications import MAX_WEBHOOK_URL_LENGTH, check_webhook_url
from export_pipeline.status.stats import StatsPeriod, UsageRow


class HealthOut(BaseModel):
    status: str = "ok"


class ErrorOut(BaseModel):
    """Every error other than a validation error (422)."""

    detail: str


class SourceOut(BaseModel):
    id: int
    name: str
    slug: str
    role: Role = Field(description="The calling user's role on the source.")


class SourceList(BaseModel):
    items: list[SourceOut]


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filters: ExportFilters = Field(default_factory=ExportFilters)
    options: ExportOptions = Field(default_factory=ExportOptions)
    notify: NotifyRequest | None = Field(
        default=None,
        description=(
            "Also post the export's outcome to this webhook, signed with a secret of this "
            "request's own, which the 202 answer shows once as `notify.secret`."
        ),
    )


class ExportOut(BaseModel):
    id: str
    source_id: int
    file_name: str
    requested_by: str = Field(description="The name of the user who asked for the export.")
    requested_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    status: ExportStatus
    lead_count: int | None
    file_size: int | None = Field(description="Bytes of the finished file.")
    sha256: str | None = Field(description="Hex SHA-256 of the finished file.")
    filters: dict[str, Any] = Field(description="The filters as the request gave them.")
    applied_filters: dict[str, Any] = Field(
        description=(
            "The filters frozen at request time, as the run applies them: UTC bounds, "
            "and the request time as `cutoff`."
        )
    )
    options: dict[str, Any]
    error: str | None
    download_available: bool = Field(description="Whether a download link can be issued.")
    lead_total: int | None = Field(
        description="How many leads the run found matching, before writing the first."
    )
    leads_written: int | None = Field(description="How many of them the run has written.")
    progress: int | None = Field(
        description="Percent of the matching leads written, 0 to 100, once the run counted."
    )
    attempts: int = Field(description="Runs attempts so far, automatic retries included.")
    schedule_id: str | None = Field(
        default=None, description="The export schedule that filed this export, if one did."
    )

    @classmethod
    def from_export(cls, export: Export) -> ExportOut:
        return cls(
            id=export.id,
            source_id=export.source_id,
            file_name=export.file_name,
            requested_by=export.requester.name,
            requested_at=export.requested_at,
            started_at=export.started_at,
            completed_at=export.completed_at,
            status=ExportStatus(export.status),
            lead_count=export.lead_count,
            file_size=export.file_size,
            sha256=export.sha256,
            filters=export.filters,
            applied_filters=export.frozen_filters,
            options=export.options,
            error=export.error,
            download_available=export.status == ExportStatus.COMPLETED,
            lead_total=export.lead_total,
            leads_written=export.leads_written,
            progress=_percent(export),
            attempts=export.attempts or 0,
            schedule_id=export.schedule_id,
        )


def _percent(export: Export) -> int | None:
    if export.status == ExportStatus.COMPLETED:
        return 100
    if export.lead_total is None or export.leads_written is None:
        return None
    if export.lead_total == 0:
        return 100
    return min(100, export.leads_written * 100 // export.lead_total)


WebhookUrl = Annotated[
    str,
    Field(
        max_length=MAX_WEBHOOK_URL_LENGTH,
        description=(
            "An http(s) URL, at most 2000 characters, without user name or password, whose "
            "host is, or resolves to, a public address (not loopback, private or link-local)."
        ),
        examples=["https://hooks.example.com/exports"],
    ),
    AfterValidator(check_webhook_url),
]


class NotifyRequest(BaseModel):
    """Who else to tell when the export completes or fails; the requester's email (see
    `PATCH /me`) and the source's webhook are told anyway."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: WebhookUrl


class NotifyOut(BaseModel):
    webhook_url: str
    secret: str = Field(
        description=(
            "Signs this export's webhook notifications (`X-Export-Signature`). Shown only "
            "in this answer (and in an idempotent replay of the same request)."
        )
    )


class NewExportOut(ExportOut):
    """A queued export, as the answer to the request that made it."""

    notify: NotifyOut | None = Field(
        default=None,
        description="The request's own webhook and its secret; left out when it named none.",
    )


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl


class WebhookOut(BaseModel):
    url: str = Field(description="Where the source's export notifications are posted.")


class NewWebhookOut(WebhookOut):
    secret: str = Field(
        description=(
            "Signs the source's webhook notifications (`X-Export-Signature`). Shown only in "
            "this answer; setting the webhook again makes a new one."
        )
    )


ExportRequest.model_rebuild()


class PreviewOut(BaseModel):
    lead_count: int = Field(description="Leads the filters match now; nothing is queued.")


class ExportList(BaseModel):
    items: list[ExportOut] = Field(description="Newest request first.")
    next_cursor: str | None = Field(
        description=(
            "Pass as `cursor`, with the same filters, for the next page; null on the last page."
        ),
    )


class QueryParameters(BaseModel):
    """Query parameters of a listing. An unknown name is refused, so that a misspelt
    filter is never silently ignored."""

    model_config = ConfigDict(extra="forbid")

    @staticmethod
    def utc_instant(value: object) -> object:
        """A date (the start of that day in UTC) or a timestamp with an offset, as an aware
        UTC datetime; other values are left to pydantic."""
        if not isinstance(value, str):
            return value
        moment = parse_moment(value)
        if not isinstance(moment, datetime):
            return datetime.combine(moment, time(0), tzinfo=UTC)
        if moment.tzinfo is None:
            msg = f"{value!r} has no UTC offset; add one such as Z or +02:00, or give a date"
            raise ValueError(msg)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            msg = f"{value!r} lies outside the years 1 to 9999 once converted to UTC"
            raise ValueError(msg) from None

    @staticmethod
    def check_order(
        start: datetime | None, end: datetime | None, start_name: str, end_name: str
    ) -> None:
        if start is not None and end is not None and end <= start:
            msg = f"{end_name} must be later than {start_name}: the range includes "
            msg += f"{start_name} and excludes {end_name}"
            raise ValueError(msg)

    TIME_BOUND: ClassVar[str] = (
        "A date (`YYYY-MM-DD`, the start of that day in UTC) or a timestamp with an offset"
    )


class PageParameters(QueryParameters):
    limit: int = Field(default=100, ge=1, le=500, description="At most this many items.")
    cursor: str | None = Field(
        default=None,
        max_length=1000,
        description="The `next_cursor` of the previous page; leave out for the first page.",
    )


class ExportHistoryQuery(PageParameters):
    status: list[ExportStatus] = Field(
        default_factory=list, description="Only exports in one of these statuses (repeatable)."
    )
    requested_by: str | None = Field(
        default=None, max_length=200, description="Only exports requested by this user name."
    )
    requested_from: datetime | None = Field(
        default=None,
        description=f"Only exports requested at or after this. {QueryParameters.TIME_BOUND}.",
    )
    requested_to: datetime | None = Field(
        default=None,
        description=f"Only exports requested before this. {QueryParameters.TIME_BOUND}.",
    )

    _instants = field_validator("requested_from", "requested_to", mode="before")(
        QueryParameters.utc_instant
    )

    @field_validator("requested_to")
    @classmethod
    def _after_requested_from(cls, end: datetime | None, info: ValidationInfo) -> datetime | None:
        cls.check_order(info.data.get("requested_from"), end, "requested_from", "requested_to")
        return end


class AuditQuery(PageParameters):
    actor: str | None = Field(
        default=None, max_length=200, description="Only events of this user name."
    )
    action: list[AuditAction] = Field(
        default_factory=list, description="Only events of one of these actions (repeatable)."
    )
    occurred_from: datetime | None = Field(
        default=None, description=f"Only events at or after this. {QueryParameters.TIME_BOUND}."
    )
    occurred_to: datetime | None = Field(
        default=None, description=f"Only events before this. {QueryParameters.TIME_BOUND}."
    )

    _instants = field_validator("occurred_from", "occurred_to", mode="before")(
        QueryParameters.utc_instant
    )

    @field_validator("occurred_to")
    @classmethod
    def _after_occurred_from(cls, end: datetime | None, info: ValidationInfo) -> datetime | None:
        cls.check_order(info.data.get("occurred_from"), end, "occurred_from", "occurred_to")
        return end


class AuditEventOut(BaseModel):
    id: int
    occurred_at: datetime
    actor: str | None = Field(
        description=(
            "The user's name; null for the system, and for a user who has no role on the "
            "source and never did anything on it but be refused (`actor_outside`)."
        )
    )
    actor_outside: bool = Field(
        description="True when a user outside the source acted, and is left unnamed."
    )
    action: str = Field(description="One of the `action` values of the audit query.")
    export_id: str | None
    details: dict[str, Any]

    @classmethod
    def from_entry(cls, entry: AuditEntry) -> AuditEventOut:
        return cls(
            id=entry.id,
            occurred_at=entry.occurred_at,
            actor=entry.actor,
            actor_outside=entry.actor_outside,
            action=entry.action,
            export_id=entry.export_id,
            details=entry.details,
        )


class AuditEventList(BaseModel):
    items: list[AuditEventOut] = Field(description="Newest event first.")
    next_cursor: str | None = Field(
        description=(
            "Pass as `cursor`, with the same filters, for the next page; null on the last page."
        )
    )


class StatsQuery(QueryParameters):
    period: StatsPeriod = Field(
        default=StatsPeriod.MONTH,
        description="UTC days, ISO weeks (starting on Monday) or calendar months.",
    )
    start: datetime | None = Field(
        default=None,
        alias="from",
        description=(
            f"Count from this moment (included). {QueryParameters.TIME_BOUND}. Default: "
            "the 1st of the month eleven months ago, or the Monday before it for weeks."
        ),
    )
    end: datetime | None = Field(
        default=None,
        alias="to",
        description=(
            f"Count up to this moment (excluded). {QueryParameters.TIME_BOUND}. Default: now."
        ),
    )

    _instants = field_validator("start", "end", mode="before")(QueryParameters.utc_instant)

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: datetime | None, info: ValidationInfo) -> datetime | None:
        cls.check_order(info.data.get("start"), end, "from", "to")
        return end


class UsageOut(BaseModel):
    period_start: datetime
    period_end: datetime = Field(description="The start of the next period.")
    user: str | None = Field(description="The user's name; null for events without one.")
    exports_requested: int
    leads_exported: int = Field(description="Leads of those exports that completed.")
    downloads: int
    large_exports: int = Field(
        description="Completed exports of at least the server's `large_export_leads` leads."
    )

    @classmethod
    def from_row(cls, row: UsageRow) -> UsageOut:
        return cls(**dataclasses.asdict(row))


class UsageStats(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    period: StatsPeriod
    start: datetime = Field(alias="from", description="The counted range's start (included).")
    end: datetime = Field(alias="to", description="The counted range's end (excluded).")
    items: list[UsageOut] = Field(
        description="One item per period and user with anything to count, oldest period first."
    )


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    expires_in: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Seconds until the link expires, at most the server's `link_max_ttl_seconds`; "
            "the server's `link_ttl_seconds` when left out."
        ),
    )


class LinkOut(BaseModel):
    id: int = Field(description="The link's id, to list or revoke it; not a secret.")
    url: str = Field(description="Download URL; it still needs the API key of a user.")
    token: str = Field(description="Shown only here, once; the server keeps only its hash.")
    expires_at: datetime


class LinkSummary(BaseModel):
    """An issued link as its export's link list shows it: never its token."""

    id: int
    issued_to: str = Field(description="The name of the user the link was issued to.")
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    state: LinkState = Field(description="`revoked` wins over `expired`.")


class LinkList(BaseModel):
    items: list[LinkSummary] = Field(description="Newest link first.")
