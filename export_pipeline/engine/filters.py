"""Export filters: what a request may say, and its frozen form that a run applies.

A request's filters are validated, then frozen at request time: calendar dates and
zone-less timestamps are resolved to UTC instants in the request's time zone, and the
request time becomes a cut-off. A run applies only the frozen form, so neither a
later change of time-zone rules nor leads added after the request change the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_SEARCH_LENGTH = 200
MAX_STATUS_LENGTH = 200


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
        if name not in _iana_time_zones():
            msg = f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin'"
            raise ValueError(msg)
        return name

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
        moment = moment.replace(tzinfo=zone)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        msg = f"{text!r} lies outside the years 1 to 9999 once converted to UTC"
        raise ValueError(msg) from None


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
