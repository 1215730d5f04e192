"""The demo leads: repeatable, realistic enough, and stored as an export must show them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from export_pipeline.leads.demo import ATTRIBUTES, STATUS_WEIGHTS, demo_leads
from export_pipeline.leads.store import FIELD_TYPES

NOW = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def leads():
    return demo_leads(2000, seed=7, now=NOW)


def test_the_same_seed_and_day_give_the_same_leads(leads) -> None:
    later_that_day = demo_leads(2000, seed=7, now=NOW + timedelta(hours=5))
    other_seed = demo_leads(2000, seed=8, now=NOW)

    for frame in ("leads", "custom_values", "attributes"):
        assert getattr(leads, frame).equals(getattr(later_that_day, frame))
    assert not leads.leads.equals(other_seed.leads)


def test_every_custom_field_type_is_defined_once(leads) -> None:
    assert sorted(field.type for field in leads.fields) == sorted(FIELD_TYPES)


def test_leads_are_created_over_the_past_year_and_updated_after(leads) -> None:
    midnight = datetime(2026, 12, 3, tzinfo=UTC)
    frame = leads.leads

    assert frame.schema["created_at"] == pl.Datetime("us", "UTC")
    assert frame["created_at"].min() >= midnight - timedelta(days=365)
    assert frame["created_at"].max() <= midnight
    assert (frame["updated_at"] >= frame["created_at"]).all()
    assert frame["updated_at"].max() <= midnight


def test_statuses_come_from_the_fixed_list_with_early_ones_most_common(leads) -> None:
    counts = dict(leads.leads["status"].value_counts().iter_rows())

    assert set(counts) == set(STATUS_WEIGHTS)
    assert counts["new"] > counts["won"]


def test_system_fields_are_filled_text_with_zip_codes_kept_as_written(leads) -> None:
    frame = leads.leads

    for column in ("first_name", "last_name", "email", "phone", "address", "city", "state"):
        assert frame[column].null_count() == 0
    assert frame["zip_code"].str.contains(r"^\d{5}$").all()
    assert frame["zip_code"].str.starts_with("0").any()
    assert frame["email"].str.contains(r"^[a-z]+\.[a-z]+\d*@[a-z.]+$").all()


def test_custom_values_look_like_their_type_and_about_four_in_five_are_there(leads) -> None:
    values = leads.custom_values
    by_key = {key: group["value"].to_list() for (key,), group in values.group_by("key")}

    for key, filled in by_key.items():
        assert 0.6 < len(filled) / leads.leads.height < 0.95, key
    assert all(re.fullmatch(r"[1-9]\d*(\.\d{1,2})?", value) for value in by_key["annual_revenue"])
    assert any("." in value for value in by_key["annual_revenue"])
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", value) for value in by_key["last_contacted"])
    assert set(by_key["newsletter_opt_in"]) == {"true", "false"}
    assert 3 <= len(set(by_key["industry"])) <= 20


def test_each_lead_has_one_to_three_attributes(leads) -> None:
    per_lead = leads.attributes.group_by("row").len()["len"]

    assert per_lead.len() == leads.leads.height
    assert set(per_lead.to_list()) == {1, 2, 3}
    assert set(leads.attributes["key"]) == {attribute.key for attribute in ATTRIBUTES}
