"""Request and response bodies of the HTTP API.

Datetimes are aware UTC and serialise as ISO 8601 with a `Z`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from export_pipeline.engine.filters import ExportFilters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.status.models import Export, ExportStatus, Role


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
        )


class ExportList(BaseModel):
    items: list[ExportOut] = Field(description="Newest request first.")


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
    url: str = Field(description="Download URL; it still needs the API key of a user.")
    token: str
    expires_at: datetime
