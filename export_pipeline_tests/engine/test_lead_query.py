"""The lead query: phone-like searches, and user text kept out of the SQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from export_pipeline.engine.filters import ExportFilters, freeze_filters
from export_pipeline.engine.query import build_lead_query, phone_digits


@pytest.mark.parametrize(
    ("search", "digits"),
    [
        ("(555) 010", "555010"),
        ("+1 555-0100", "15550100"),
        ("555.010.9999", "5550109999"),
        ("0044 20/7946", "0044207946"),
        ("5", "5"),
    ],
)
def test_phone_like_search_is_reduced_to_its_digits(search: str, digits: str) -> None:
    assert phone_digits(search) == digits


@pytest.mark.parametrize("search", ["Suite 5", "ann", "Room 101", "---", "", "5550100#"])
def test_search_that_is_not_a_phone_number_has_no_phone_digits(search: str) -> None:
    assert phone_digits(search) is None


def test_user_text_reaches_the_query_only_as_parameters() -> None:
    hostile = "x'; DROP TABLE leads; --"
    filters = ExportFilters(
        statuses=[hostile],
        search=hostile,
        attribute={"key": hostile, "value": hostile},
    )

    query = build_lead_query(7, freeze_filters(filters, requested_at=datetime.now(UTC)))

    assert "DROP" not in query.select_sql
    assert "DROP" not in query.count_sql
    assert query.params["search"] == hostile
    assert query.params["statuses"] == [hostile]
    assert query.params["attribute_key"] == query.params["attribute_value"] == hostile
    assert query.params["source_id"] == 7
