"""Validating export filters and freezing them into UTC instants at request time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from export_pipeline.engine.filters import (
    AttributeFilter,
    ExportFilters,
    FrozenFilters,
    freeze_filters,
    resolve_window,
)

REQUESTED_AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("time_zone", "day", "start"),
    [
        ("UTC", "2024-03-10", utc(2024, 3, 10, 0)),
        ("Etc/GMT-2", "2024-07-01", utc(2024, 6, 30, 22)),
        ("Africa/Cairo", "2024-01-15", utc(2024, 1, 14, 22)),
        ("America/Phoenix", "2024-07-01", utc(2024, 7, 1, 7)),
        ("America/Phoenix", "2024-01-01", utc(2024, 1, 1, 7)),
    ],
)
def test_calendar_date_starts_at_midnight_of_the_named_zone(
    time_zone: str, day: str, start: datetime
) -> None:
    filters = ExportFilters(time_zone=time_zone, created_from=day, created_to=day)

    assert resolve_window(filters) == (start, start)


@pytest.mark.parametrize(
    ("first_day", "next_day", "start", "hours"),
    [
        ("2024-03-10", "2024-03-11", utc(2024, 3, 10, 5), 23),
        ("2024-11-03", "2024-11-04", utc(2024, 11, 3, 4), 25),
        ("2024-07-04", "2024-07-05", utc(2024, 7, 4, 4), 24),
    ],
)
def test_new_york_days_around_daylight_saving_changes_have_their_true_length(
    first_day: str, next_day: str, start: datetime, hours: int
) -> None:
    filters = ExportFilters(
        time_zone="America/New_York", created_from=first_day, created_to=next_day
    )

    frozen = freeze_filters(filters, requested_at=REQUESTED_AT)

    assert frozen.created_from == start
    assert frozen.created_to is not None
    assert frozen.created_to - frozen.created_from == timedelta(hours=hours)


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2024-03-10T12:00:00+05:30", utc(2024, 3, 10, 6, 30)),
        ("2024-03-10T12:00:00Z", utc(2024, 3, 10, 12)),
        ("2024-03-10T12:00:00-07:00", utc(2024, 3, 10, 19)),
    ],
)
def test_timestamp_with_an_offset_is_taken_as_given_whatever_the_zone(
    text: str, instant: datetime
) -> None:
    filters = ExportFilters(time_zone="America/New_York", created_from=text)

    assert resolve_window(filters) == (instant, None)


def test_timestamp_without_offset_is_a_wall_clock_time_in_the_zone() -> None:
    filters = ExportFilters(time_zone="America/Phoenix", created_from="2024-07-01T09:00:00")

    assert resolve_window(filters) == (utc(2024, 7, 1, 16), None)


@pytest.mark.parametrize("field", ["created_from", "created_to"])
def test_a_wall_time_the_clocks_skip_is_refused_on_its_field(field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ExportFilters(time_zone="Europe/Berlin", **{field: "2024-03-31T02:30:00"})

    assert error_fields(raised.value) == [field]
    assert "does not exist in Europe/Berlin" in str(raised.value)


def test_a_wall_time_the_clocks_repeat_is_its_first_occurrence() -> None:
    filters = ExportFilters(time_zone="Europe/Berlin", created_from="2024-10-27T02:30:00")

    assert resolve_window(filters) == (utc(2024, 10, 27, 0, 30), None)


def test_open_range_has_no_bounds() -> None:
    assert resolve_window(ExportFilters()) == (None, None)


def test_created_to_before_created_from_is_rejected_on_created_to() -> None:
    with pytest.raises(ValidationError) as raised:
        ExportFilters(created_from="2024-03-10", created_to="2024-03-09")

    assert error_fields(raised.value) == ["created_to"]
    assert "before created_from" in str(raised.value)


def test_range_order_is_checked_on_instants_not_on_text() -> None:
    # 2024-03-10 in Tokyo starts at 2024-03-09T15:00Z, before created_from.
    with pytest.raises(ValidationError) as raised:
        ExportFilters(
            time_zone="Asia/Tokyo",
            created_from="2024-03-09T16:00:00Z",
            created_to="2024-03-10",
        )

    assert error_fields(raised.value) == ["created_to"]


def test_created_to_equal_to_created_from_is_an_empty_but_valid_range() -> None:
    filters = ExportFilters(created_from="2024-03-10", created_to="2024-03-10T00:00:00Z")

    assert resolve_window(filters) == (utc(2024, 3, 10), utc(2024, 3, 10))


def error_fields(error: ValidationError) -> list[str]:
    return [str(detail["loc"][0]) for detail in error.errors()]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        ({"created_from": "2024-02-30"}, "created_from"),
        ({"created_from": "10/03/2024"}, "created_from"),
        ({"created_to": "yesterday"}, "created_to"),
        ({"created_from": 20240310}, "created_from"),
        ({"statuses": "new"}, "statuses"),
        ({"statuses": ["new", 3]}, "statuses"),
        ({"search": 5550100}, "search"),
        ({"search": "x" * 201}, "search"),
        ({"attribute": {"key": 1}}, "attribute"),
        ({"attribute": {"key": ""}}, "attribute"),
        ({"attribute": {"key": "source", "colour": "red"}}, "attribute"),
        ({"attribute": "source"}, "attribute"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_filters_are_rejected_naming_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ExportFilters.model_validate(data)

    assert error_fields(raised.value) == [field]


def test_unknown_time_zone_message_suggests_an_iana_name() -> None:
    with pytest.raises(ValidationError, match=r"unknown time zone 'Mars/Olympus_Mons'.*IANA"):
        ExportFilters(time_zone="Mars/Olympus_Mons")


def test_malformed_date_message_says_what_is_accepted() -> None:
    with pytest.raises(ValidationError, match=r"'10/03/2024'.*YYYY-MM-DD"):
        ExportFilters(created_from="10/03/2024")


def test_freezing_resolves_every_filter_and_takes_the_request_time_as_cutoff() -> None:
    filters = ExportFilters(
        statuses=["new", "won", "new"],
        time_zone="Europe/Berlin",
        created_from="2024-01-01",
        created_to="2024-02-01T00:00:00+00:00",
        attribute=AttributeFilter(key="source", value="Cold Call"),
        search="  ann  ",
    )
    requested_at = datetime(2024, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))

    frozen = freeze_filters(filters, requested_at=requested_at)

    assert frozen == FrozenFilters(
        statuses=("new", "won"),
        created_from=utc(2023, 12, 31, 23),
        created_to=utc(2024, 2, 1),
        attribute_key="source",
        attribute_value="Cold Call",
        search="  ann  ",
        cutoff=utc(2024, 6, 1, 12),
    )
    assert frozen.cutoff.utcoffset() == timedelta(0)


def test_blank_search_means_no_search() -> None:
    frozen = freeze_filters(ExportFilters(search="   "), requested_at=REQUESTED_AT)

    assert frozen.search is None


@pytest.mark.parametrize(
    "filters",
    [
        ExportFilters(),
        ExportFilters(
            statuses=["Closed Won", "On Hold"],
            time_zone="America/New_York",
            created_from="2024-03-10",
            created_to="2024-03-11",
            attribute=AttributeFilter(key="source", value=None),
            search="O'Brien \"%_\\",
        ),
        ExportFilters(attribute=AttributeFilter(key="tier", value="")),
    ],
    ids=["empty", "every-filter", "empty-attribute-value"],
)
def test_frozen_filters_survive_a_json_round_trip(filters: ExportFilters) -> None:
    frozen = freeze_filters(filters, requested_at=REQUESTED_AT)

    stored = json.loads(json.dumps(frozen.to_json()))

    assert FrozenFilters.from_json(stored) == frozen
