"""Request and response bodies of export schedules."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from export_pipeline.engine.filters import ScheduleFilters, check_time_zone
from export_pipeline.engine.options import ExportOptions
from export_pipeline.status.models import ExportSchedule
from export_pipeline.status.schedules import MAX_CRON_LENGTH, check_cron, describe_cron

ScheduleName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]

CRON_DESCRIPTION = (
    "A standard 5-field cron expression (minute hour day-of-month month day-of-week) in "
    "`time_zone`, such as `0 6 * * 1` for 06:00 every Monday. The minute must be a single "
    "number: a schedule files at most one export an hour."
)
TIME_ZONE_DESCRIPTION = (
    "The IANA time zone of the cron expression, of the relative `created_range` and of "
    "calendar dates in the filters, such as `Europe/Berlin`."
)


class ScheduleIn(BaseModel):
    """A new schedule; also what a changed schedule must be as a whole."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: ScheduleName = Field(description="A name for people; surrounding spaces are dropped.")
    cron: str = Field(max_length=MAX_CRON_LENGTH, description=CRON_DESCRIPTION)
    time_zone: str = Field(max_length=64, description=TIME_ZONE_DESCRIPTION)
    filters: ScheduleFilters = Field(
        default_factory=ScheduleFilters,
        description=(
            "The filters of an export request, whose creation range may instead be "
            "relative to each filing (`created_range`). Their `time_zone`, if given, must "
            "be the schedule's."
        ),
    )
    options: ExportOptions = Field(default_factory=ExportOptions)
    enabled: bool = Field(default=True, description="False creates the schedule paused.")

    @model_validator(mode="before")
    @classmethod
    def _filters_in_the_schedule_zone(cls, data: Any) -> Any:
        """Dates in the filters are read in the schedule's time zone unless they name one."""
        if not isinstance(data, dict):
            return data
        filters, zone = data.get("filters", {}), data.get("time_zone")
        if isinstance(filters, dict) and "time_zone" not in filters and isinstance(zone, str):
            try:
                check_time_zone(zone)
            except ValueError:
                return data
            return {**data, "filters": {**filters, "time_zone": zone}}
        return data

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        return check_cron(cron)

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, name: str) -> str:
        return check_time_zone(name)

    @field_validator("filters")
    @classmethod
    def _filters_share_the_zone(
        cls, filters: ScheduleFilters, info: ValidationInfo
    ) -> ScheduleFilters:
        zone = info.data.get("time_zone")
        if zone is not None and filters.time_zone != zone:
            msg = (
                f"filters.time_zone {filters.time_zone!r} differs from the schedule's "
                f"time_zone {zone!r}; leave it out: the schedule's time zone applies"
            )
            raise ValueError(msg)
        return filters

    def stored_filters(self) -> dict[str, Any]:
        """The filters as given, without the time zone, which is the schedule's."""
        return self.filters.model_dump(mode="json", exclude_unset=True, exclude={"time_zone"})


class SchedulePatch(BaseModel):
    """Fields to change; the others keep their values. The result is checked as a whole,
    as a new schedule would be."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: ScheduleName | None = None
    cron: str | None = Field(default=None, max_length=MAX_CRON_LENGTH, description=CRON_DESCRIPTION)
    time_zone: str | None = Field(default=None, max_length=64, description=TIME_ZONE_DESCRIPTION)
    filters: dict[str, Any] | None = Field(
        default=None,
        description="Replaces the filters whole; the same form as when creating a schedule.",
    )
    options: ExportOptions | None = Field(default=None, description="Replaces the options whole.")
    enabled: bool | None = Field(
        default=None,
        description=(
            "False pauses the schedule, true resumes it: ticks are then counted from the "
            "moment of resuming, and ticks that fell while it was paused are not filed."
        ),
    )

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            msg = "leave the field out to keep its value; null is not a value for it"
            raise ValueError(msg)
        return value


class ScheduleOut(BaseModel):
    id: str
    source_id: int
    name: str
    owner: str = Field(description="The name of the user whose exports the schedule files.")
    cron: str
    cron_description: str = Field(description="The cron expression in English.")
    time_zone: str
    filters: dict[str, Any] = Field(description="As given, without `time_zone`.")
    options: dict[str, Any]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    next_tick_at: datetime | None = Field(
        description="When the next export is filed; null while the schedule is paused."
    )
    last_tick_at: datetime | None = Field(
        description="The last tick handled, whether it filed an export or was skipped."
    )
    last_export_id: str | None = Field(description="The export the schedule filed last.")
    last_error: str | None = Field(
        description="Why the last skipped tick filed nothing; cleared by the next filing."
    )
    last_error_at: datetime | None

    @classmethod
    def from_schedule(cls, schedule: ExportSchedule) -> ScheduleOut:
        return cls(
            id=schedule.id,
            source_id=schedule.source_id,
            name=schedule.name,
            owner=schedule.owner.name,
            cron=schedule.cron,
            cron_description=describe_cron(schedule.cron),
            time_zone=schedule.time_zone,
            filters=schedule.filters,
            options=schedule.options,
            enabled=schedule.enabled,
            created_at=schedule.created_at,
            updated_at=schedule.updated_at,
            next_tick_at=schedule.next_tick_at,
            last_tick_at=schedule.last_tick_at,
            last_export_id=schedule.last_export_id,
            last_error=schedule.last_error,
            last_error_at=schedule.last_error_at,
        )


class ScheduleList(BaseModel):
    items: list[ScheduleOut] = Field(description="Oldest schedule first.")
