"""SQLAlchemy models of the export status table.

Every timestamp is stored and returned as an aware UTC datetime, on SQLite too.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            msg = "naive datetimes are ambiguous; pass an aware UTC datetime"
            raise ValueError(msg)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class ExportStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self not in (ExportStatus.PENDING, ExportStatus.PROCESSING)


class Role(enum.StrEnum):
    """What a user may do on a source; each role includes the ones before it."""

    VIEWER = "viewer"
    EXPORTER = "exporter"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    email: Mapped[str | None] = mapped_column(String(320))
    """Where mail about the user's exports goes; none is sent while it is unset."""

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="user")
    permissions: Mapped[list[SourcePermission]] = relationship(back_populates="user")


class ApiKey(Base):
    """An API key, kept only as its SHA-256 so a leaked table holds no usable key."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(back_populates="api_keys")


class SourcePermission(Base):
    __tablename__ = "source_permissions"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    source_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))

    user: Mapped[User] = relationship(back_populates="permissions")


class Export(Base):
    """One export request: its filters, its lifecycle and the file it made.

    `filters` are the request's filters as the requester gave them; `frozen_filters`
    are the same resolved at request time (UTC bounds and the cut-off), which is all
    a run applies.
    """

    __tablename__ = "exports"
    __table_args__ = (
        Index("ix_exports_source_requested", "source_id", "requested_at"),
        Index("ix_exports_status", "status"),
        # At most one pending or processing retry of an export, however many requests race.
        Index(
            "ux_exports_unsettled_retry",
            "retry_of",
            unique=True,
            sqlite_where=text("status IN ('pending', 'processing')"),
            postgresql_where=text("status IN ('pending', 'processing')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source_id: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(255))
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    lead_count: Mapped[int | None] = mapped_column(BigInteger)
    file_uri: Mapped[str | None] = mapped_column(Text)
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    filters: Mapped[dict[str, Any]] = mapped_column(JSON)
    frozen_filters: Mapped[dict[str, Any]] = mapped_column(JSON)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    dagster_run_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lead_total: Mapped[int | None] = mapped_column(BigInteger)
    """How many leads the run found matching, counted before it writes the first."""
    leads_written: Mapped[int | None] = mapped_column(BigInteger)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Last sign of life of the run working on the export, every few seconds."""
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    schedule_id: Mapped[str | None] = mapped_column(String(36), index=True)
    """The export schedule that filed this export, if one did; kept after the schedule
    is deleted, like an audit event's export id."""
    retry_of: Mapped[str | None] = mapped_column(String(36))
    """The failed or cancelled export this one repeats, if it is a retry."""

    requester: Mapped[User] = relationship()


class ExportSchedule(Base):
    """A recurring export: filters and options filed as an export request, with the
    owner as requester, at every tick of `cron` in `time_zone`.

    `filters` are stored as given, without a time zone of their own: the schedule's
    applies. `next_tick_at` is the next tick to file, null while the schedule is paused.
    Filing a tick and moving `next_tick_at` on happen in one transaction, conditional on
    `next_tick_at` still being the tick filed, so each tick is filed at most once.
    """

    __tablename__ = "export_schedules"
    __table_args__ = (
        Index("ix_export_schedules_due", "enabled", "next_tick_at"),
        Index("ix_export_schedules_source", "source_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source_id: Mapped[int] = mapped_column(Integer)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(100))
    time_zone: Mapped[str] = mapped_column(String(64))
    filters: Mapped[dict[str, Any]] = mapped_column(JSON)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_tick_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_tick_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The last tick handled, whether it filed an export or was skipped."""
    last_export_id: Mapped[str | None] = mapped_column(String(36))
    last_error: Mapped[str | None] = mapped_column(Text)
    """Why the last skipped tick filed nothing; cleared by the next filing."""
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    owner: Mapped[User] = relationship()


class DownloadLink(Base):
    """A download link, kept only as the SHA-256 of its token."""

    __tablename__ = "download_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    export_id: Mapped[str] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"))
    issued_to: Mapped[int] = mapped_column(ForeignKey("users.id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    export: Mapped[Export] = relationship()


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_source_time", "source_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[int | None] = mapped_column(Integer)
    export_id: Mapped[str | None] = mapped_column(String(36))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class IdempotencyKey(Base):
    """A client's `Idempotency-Key` for an export request: the same key and body give
    back the first export instead of a second one."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    export_id: Mapped[str] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class NotificationChannel(enum.StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"


class WebhookScope(enum.StrEnum):
    """Whose webhook a notification goes to, and so which secret signs it."""

    SOURCE = "source"
    REQUEST = "request"


class SourceWebhook(Base):
    """The webhook a source's admins set. The secret is kept readable, unlike API keys:
    the server needs it to sign every notification."""

    __tablename__ = "source_webhooks"

    source_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    set_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExportWebhook(Base):
    """The webhook an export request named in `notify`, with its own secret."""

    __tablename__ = "export_webhooks"

    export_id: Mapped[str] = mapped_column(
        ForeignKey("exports.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Notification(Base):
    """One message to deliver about an export (the outbox).

    Written in the transaction that settles the export, delivered later by a sensor.
    Pending while `next_attempt_at` is set; delivered once `delivered_at` is set; given
    up once `given_up_at` is set, with the reason in `last_error`.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "next_attempt_at"),
        Index("ix_notifications_export", "export_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[str] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    """The webhook URL or the email address."""
    webhook_scope: Mapped[str | None] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The event and the export's facts at that moment; never lead values or secrets."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    given_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
