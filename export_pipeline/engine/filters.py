"""Export filters: what a request may say, and its frozen form that a run applies.

A request's filters are validated, then frozen at request time: calendar dates and
zone-less timestamps are resolved to UTC instants in the request's time zone, and the
request time becomes a cut-off. A run applies only the frozen form, so neither a
later change of time-zone rules nor leads added after the request change the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_SEARCH_LENGTH = 200
MAX_STATUS_LENGTH = 200
MAX_RELATIVE_PERIODS = 1000


class AttributeFilter(BaseModel):
    """Leads tagged with `key`, and with `value` when one is given."""

    model_config = ConfigDict(extra="forbid", strict=True)

    key: str = Field(min_length=1, max_length=200)
    value: str | None = Field(default=None, max_length=1000)


class ExportFilters(BaseModel):
    """The filters of an export request; all of them combine with AND.

    `created_from` is included and `created_to` excluded. Each is an ISO 8601
    timestamp or a calendar date (`YYYY-MM-DD`). A timestamp with an offset is
    taken as given; a date means the start of that day in `time_zone`, and a
    timestamp without an offset is a wall-clock time there.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    statuses: list[Annotated[str, Field(max_length=MAX_STATUS_LENGTH)]] = Field(
        default_factory=list, max_length=1000
    )
    time_zone: str = Field(default="UTC", max_length=64)
    created_from: str | None = Field(default=None, max_length=40)
    created_to: str | None = Field(default=None, max_length=40)
    attribute: AttributeFilter | None = None
    search: str | None = Field(default=None, max_length=MAX_SEARCH_LENGTH)

    @field_validator("statuses")
    @classmethod
    def _unique_statuses(cls, statuses: list[str]) -> list[str]:
        return list(dict.fromkeys(statuses))

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, name: str) -> str:
        return check_time_zone(name)

    @field_validator("created_from", "created_to")
    @classmethod
    def _resolvable_moment(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            zone_name = info.data.get("time_zone") or "UTC"
            _resolve(value, ZoneInfo(zone_name))
        return value

    @field_validator("search")
    @classmethod
    def _blank_search_is_none(cls, search: str | None) -> str | None:
        return search if search and search.strip() else None

    @field_validator("created_to")
    @classmethod
    def _after_created_from(cls, created_to: str | None, info: ValidationInfo) -> str | None:
        start_text, zone_name = info.data.get("created_from"), info.data.get("time_zone")
        if created_to is None or start_text is None or zone_name is None:
            return created_to
        zone = ZoneInfo(zone_name)
        if _resolve(created_to, zone) < _resolve(start_text, zone):
            msg = "created_to is before created_from; the range includes created_from "
            msg += "and excludes created_to"
            raise ValueError(msg)
        return created_to


class RelativeRange(BaseModel):
    """A creation date range counted back from the filing time of a scheduled export.

    Periods are calendar days, ISO weeks (Monday to Sunday) or calendar months in the
    filters' time zone. Without `include_current`, the range is the `last` whole periods
    before the one holding the filing time: `{"last": 1, "unit": "day"}` is yesterday.
    With it, the current period counts as the most recent of them, up to the filing time
    (the cut-off): `{"last": 1, "unit": "month", "include_current": true}` is this month
    so far.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    last: int = Field(ge=1, le=MAX_RELATIVE_PERIODS)
    unit: Literal["day", "week", "month"]
    include_current: bool = False

    def calendar_bounds(self, today: date) -> tuple[date, date]:
        """The range as calendar dates, `[start, end)`, for a filing on `today`."""
        current = _period_start(today, self.unit)
        end = _shift(current, self.unit, 1) if self.include_current else current
        start = _shift(end, self.unit, -self.last)
        return start, end


class ScheduleFilters(ExportFilters):
    """The filters of a recurring export: an export request's filters, whose creation
    range may instead be relative to each filing time (`created_range`)."""

    created_range: RelativeRange | None = None

    @field_validator("created_range")
    @classmethod
    def _one_kind_of_range(
        cls, created_range: RelativeRange | None, info: ValidationInfo
    ) -> RelativeRange | None:
        absolute = info.data.get("created_from") or info.data.get("created_to")
        if created_range is not None and absolute:
            msg = "give either created_range or created_from/created_to, not both"
            raise ValueError(msg)
        return created_range


def resolve_schedule_filters(filters: ScheduleFilters, *, filed_at: datetime) -> ExportFilters:
    """The filters of the export a schedule files at `filed_at` (aware): a relative range
    becomes `created_from`/`created_to` calendar dates in `filters.time_zone`, so the
    export's filters show the exact days, and `freeze_filters` resolves them to UTC
    across any daylight-saving change. `ValueError` if the range leaves the calendar.
    """
    values = {name: getattr(filters, name) for name in ExportFilters.model_fields}
    if filters.created_range is not None:
        today = filed_at.astimezone(ZoneInfo(filters.time_zone)).date()
        try:
            start, end = filters.created_range.calendar_bounds(today)
        except (OverflowError, ValueError):
            msg = f"created_range reaches outside the years 1 to 9999 from {today}"
            raise ValueError(msg) from None
        values.update(created_from=start.isoformat(), created_to=end.isoformat())
    return ExportFilters(**values)


def check_time_zone(name: str) -> str:
    """`name` if it is an IANA time zone; `ValueError` naming the expected form."""
    if name not in _iana_time_zones():
        msg = f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin'"
        raise ValueError(msg)
    return name


def _period_start(day: date, unit: str) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def _shift(start: date, unit: str, periods: int) -> date:
    """`start` (the first day of a period) moved by whole periods."""
    if unit == "day":
        return start + timedelta(days=periods)
    if unit == "week":
        return start + timedelta(weeks=periods)
    months = start.year * 12 + start.month - 1 + periods
    return date(months // 12, months % 12 + 1, 1)


@dataclass(frozen=True)
class FrozenFilters:
    """The filters as a run applies them: every bound an aware UTC instant.

    A lead matches when its status is one of `statuses` (if any), `created_from <=
    created_at < created_to` (each bound if given), it is tagged with the attribute
    (if any), its name, email or phone contains `search` (if any), and both its
    `created_at` and the time it entered the store are at or before `cutoff`.
    """

    statuses: tuple[str, ...]
    created_from: datetime | None
    created_to: datetime | None
    attribute_key: str | None
    attribute_value: str | None
    search: str | None
    cutoff: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "statuses": list(self.statuses),
            "created_from": _iso_or_none(self.created_from),
            "created_to": _iso_or_none(self.created_to),
            "attribute_key": self.attribute_key,
            "attribute_value": self.attribute_value,
            "search": self.search,
            "cutoff": _iso_or_none(self.cutoff),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FrozenFilters:
        return cls(
            statuses=tuple(data["statuses"]),
            created_from=_datetime_or_none(data["created_from"]),
            created_to=_datetime_or_none(data["created_to"]),
            attribute_key=data["attribute_key"],
            attribute_value=data["attribute_value"],
            search=data["search"],
            cutoff=datetime.fromisoformat(data["cutoff"]),
        )


def freeze_filters(filters: ExportFilters, *, requested_at: datetime) -> FrozenFilters:
    """Resolve validated filters against the request time (an aware datetime)."""
    start, end = resolve_window(filters)
    attribute = filters.attribute
    return FrozenFilters(
        statuses=tuple(filters.statuses),
        created_from=start,
        created_to=end,
        attribute_key=attribute.key if attribute else None,
        attribute_value=attribute.value if attribute else None,
        search=filters.search,
        cutoff=requested_at.astimezone(UTC),
    )


def resolve_window(filters: ExportFilters) -> tuple[datetime | None, datetime | None]:
    """The created-at bounds as UTC instants, `None` where unbounded."""
    zone = ZoneInfo(filters.time_zone)
    return (
        _resolve(filters.created_from, zone),
        _resolve(filters.created_to, zone),
    )


def parse_moment(text: str) -> date | datetime:
    """A calendar date or a timestamp in ISO 8601; `ValueError` names what is accepted."""
    try:
        if len(text) == len("YYYY-MM-DD"):
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError:
        msg = (
            f"{text!r} is neither a date (YYYY-MM-DD) nor an ISO 8601 timestamp "
            "(YYYY-MM-DDTHH:MM:SS with an optional offset such as +02:00 or Z)"
        )
        raise ValueError(msg) from None


def _resolve(text: str | None, zone: ZoneInfo) -> datetime | None:
    if text is None:
        return None
    moment = parse_moment(text)
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time(0), tzinfo=zone)
    elif moment.tzinfo is None:
        local = moment
        moment = moment.replace(tzinfo=zone)
        # A wall time the clocks skip comes back shifted; one they repeat means its first.
        if _round_trip(moment, zone) not in (local, None):
            msg = (
                f"{text!r} does not exist in {zone.key}: the clocks skip it when they move "
                "forward; give an offset or a time outside the change"
            )
            raise ValueError(msg)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        msg = f"{text!r} lies outside the years 1 to 9999 once converted to UTC"
        raise ValueError(msg) from None


def _round_trip(moment: datetime, zone: ZoneInfo) -> datetime | None:
    """The wall time `moment` reads as once converted to UTC and back, or None when
    UTC cannot hold it (the caller reports that)."""
    try:
        return moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    except OverflowError:
        return None


@cache
def _iana_time_zones() -> frozenset[str]:
    """IANA zone names; host-specific entries such as `localtime` are not among them."""
    host_specific = {"localtime", "posixrules", "Factory"}
    names = {
        name
        for name in available_timezones()
        if name not in host_specific and not name.startswith(("posix/", "right/"))
    }
    return frozenset(names | {"UTC"})


def _iso_or_none(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _datetime_or_none(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
