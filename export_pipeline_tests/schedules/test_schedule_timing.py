"""Cron ticks and relative date ranges: pure logic, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from export_pipeline.engine.filters import (
    RelativeRange,
    ScheduleFilters,
    freeze_filters,
    resolve_schedule_filters,
)
from export_pipeline.status.schedules import check_cron, next_tick, plan_tick


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "normalized"),
    [
        ("0 6 * * *", "0 6 * * *"),
        ("  30  7 * * MON-FRI ", "30 7 * * MON-FRI"),
        ("0 */2 1,15 JAN-JUN *", "0 */2 1,15 JAN-JUN *"),
        ("0 8 L * *", "0 8 L * *"),
    ],
)
def test_valid_cron_expressions_come_back_with_single_spaces(expression, normalized):
    assert check_cron(expression) == normalized


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ("0 6 * *", "has 5 fields"),
        ("0 0 6 * * *", "has 5 fields"),
        ("@daily", "has 5 fields"),
        ("*/5 * * * *", "single number"),
        ("0,30 6 * * *", "single number"),
        ("0 25 * * *", "Bad hour"),
        ("0 6 31 2 *", "Bad day-of-month"),
        ("0 6 * * FUNDAY", "Bad day-of-week"),
    ],
)
def test_invalid_cron_expressions_say_what_is_wrong(expression, complaint):
    with pytest.raises(ValueError, match=complaint):
        check_cron(expression)


def test_ticks_follow_the_wall_clock_of_the_time_zone_across_daylight_saving():
    # 06:00 in Berlin is 05:00 UTC in winter and 04:00 UTC in summer (from 2026-03-29).
    assert next_tick("0 6 * * *", "Europe/Berlin", utc(2026, 3, 27, 12)) == utc(2026, 3, 28, 5)
    assert next_tick("0 6 * * *", "Europe/Berlin", utc(2026, 3, 28, 5)) == utc(2026, 3, 29, 4)


def test_a_tick_in_the_skipped_hour_runs_when_the_clocks_have_moved_on():
    # 02:30 does not exist in Berlin on 2026-03-29: cron runs it at 03:00 CEST.
    assert next_tick("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1)


def test_a_tick_in_the_repeated_hour_runs_once():
    # 02:30 happens twice in Berlin on 2026-10-25; cron runs the first one only.
    first = next_tick("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12))
    assert first == utc(2026, 10, 25, 0, 30)
    assert next_tick("30 2 * * *", "Europe/Berlin", first) == utc(2026, 10, 26, 1, 30)


def test_a_due_tick_is_filed_itself_with_the_next_tick_after_it():
    due = utc(2026, 3, 28, 5)

    assert plan_tick("0 6 * * *", "Europe/Berlin", due, due) == (due, utc(2026, 3, 29, 4))
    assert plan_tick("0 6 * * *", "Europe/Berlin", due, due + timedelta(minutes=3)) == (
        due,
        utc(2026, 3, 29, 4),
    )


def test_ticks_missed_while_nothing_evaluated_collapse_into_the_latest():
    due = utc(2026, 3, 25, 5)  # Wednesday 06:00 CET; the daemon then stopped until Saturday

    tick, following = plan_tick("0 6 * * *", "Europe/Berlin", due, utc(2026, 3, 28, 9))

    assert tick == utc(2026, 3, 28, 5)
    assert following == utc(2026, 3, 29, 4)


@pytest.mark.parametrize(
    ("range_", "today", "bounds"),
    [
        ({"last": 1, "unit": "day"}, date(2026, 3, 1), (date(2026, 2, 28), date(2026, 3, 1))),
        ({"last": 7, "unit": "day"}, date(2026, 3, 10), (date(2026, 3, 3), date(2026, 3, 10))),
        (
            {"last": 1, "unit": "day", "include_current": True},
            date(2026, 3, 10),
            (date(2026, 3, 10), date(2026, 3, 11)),
        ),
        # 2026-04-01 is a Wednesday: the previous week is Monday 03-23 to Sunday 03-29.
        ({"last": 1, "unit": "week"}, date(2026, 4, 1), (date(2026, 3, 23), date(2026, 3, 30))),
        ({"last": 1, "unit": "week"}, date(2026, 3, 30), (date(2026, 3, 23), date(2026, 3, 30))),
        (
            {"last": 2, "unit": "week", "include_current": True},
            date(2026, 4, 1),
            (date(2026, 3, 23), date(2026, 4, 6)),
        ),
        ({"last": 1, "unit": "month"}, date(2026, 1, 15), (date(2025, 12, 1), date(2026, 1, 1))),
        ({"last": 12, "unit": "month"}, date(2026, 3, 31), (date(2025, 3, 1), date(2026, 3, 1))),
        (
            {"last": 3, "unit": "month", "include_current": True},
            date(2026, 1, 15),
            (date(2025, 11, 1), date(2026, 2, 1)),
        ),
    ],
)
def test_relative_ranges_are_whole_calendar_periods(range_, today, bounds):
    assert RelativeRange.model_validate(range_).calendar_bounds(today) == bounds


@pytest.mark.parametrize(
    ("filed_at", "window"),
    [
        # Filed at 06:00 CEST on Monday 2026-03-30: Sunday 03-29 lasted 23 hours.
        (utc(2026, 3, 30, 4), (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))),
        # Filed at 06:00 CET on Monday 2026-10-26: Sunday 10-25 lasted 25 hours.
        (utc(2026, 10, 26, 5), (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))),
        # Filed at 00:30 CEST on 2026-03-30, which is still 03-29 in UTC.
        (utc(2026, 3, 29, 22, 30), (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))),
    ],
    ids=["spring-forward", "fall-back", "just-after-midnight"],
)
def test_previous_day_in_berlin_resolves_to_that_local_day_in_utc(filed_at, window):
    filters = ScheduleFilters.model_validate(
        {
            "statuses": ["new"],
            "time_zone": "Europe/Berlin",
            "created_range": {"last": 1, "unit": "day"},
        }
    )

    resolved = resolve_schedule_filters(filters, filed_at=filed_at)
    frozen = freeze_filters(resolved, requested_at=filed_at)

    local_day = (window[0] + timedelta(hours=2)).date().isoformat()
    assert resolved.created_from == local_day
    assert resolved.time_zone == "Europe/Berlin"
    assert resolved.statuses == ["new"]
    assert (frozen.created_from, frozen.created_to) == window
    assert frozen.cutoff == filed_at


def test_absolute_ranges_pass_through_unchanged():
    filters = ScheduleFilters.model_validate(
        {"created_from": "2026-01-01", "created_to": "2026-02-01", "time_zone": "Europe/Berlin"}
    )

    resolved = resolve_schedule_filters(filters, filed_at=utc(2026, 6, 1, 4))

    assert (resolved.created_from, resolved.created_to) == ("2026-01-01", "2026-02-01")


@pytest.mark.parametrize(
    "data",
    [
        {"created_from": "2026-01-01", "created_range": {"last": 1, "unit": "day"}},
        {"created_to": "2026-01-01", "created_range": {"last": 1, "unit": "day"}},
        {"created_range": {"last": 0, "unit": "day"}},
        {"created_range": {"last": 1, "unit": "year"}},
        {"created_range": {"last": "1", "unit": "day"}},
        {"created_range": {"last": 1, "unit": "day", "including": True}},
    ],
)
def test_invalid_relative_ranges_are_refused_naming_the_field(data):
    with pytest.raises(ValidationError) as raised:
        ScheduleFilters.model_validate(data)

    assert raised.value.errors()[0]["loc"][0] == "created_range"
