"""Sample leads for a fresh machine, so that `serve` has something to export.

The leads are made up by Faker from a seed, so the same seed on the same UTC day gives
the same rows. Every custom field type appears, values are stored as the text an export
writes, and about one value in five is missing, as in a real source.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import polars as pl
from faker import Faker

from export_pipeline.leads.store import LeadStore
from export_pipeline.leads.writer import (
    LEAD_TEXT_FIELDS,
    AppendResult,
    NewAttribute,
    NewField,
    NewLeads,
    append_leads,
)

DEMO_SOURCE_NAME = "Demo leads"
DEMO_USER_NAME = "demo"
"""The user that `export-pipeline demo` makes admin of the demo source."""

STATUS_WEIGHTS = {
    "new": 30,
    "contacted": 25,
    "qualified": 15,
    "proposal": 10,
    "won": 8,
    "lost": 12,
}
"""The pipeline's statuses and how often each occurs: most leads are still early on."""

CREATION_PERIOD_SECONDS = 365 * 24 * 3600

FIELDS = (
    NewField("company", "Company", "text"),
    NewField("annual_revenue", "Annual revenue", "number"),
    NewField("last_contacted", "Last contacted", "date"),
    NewField("newsletter_opt_in", "Newsletter opt-in", "boolean"),
    NewField("industry", "Industry", "select"),
)

FILL_RATES = {
    "company": 0.9,
    "annual_revenue": 0.7,
    "last_contacted": 0.75,
    "newsletter_opt_in": 0.85,
    "industry": 0.8,
}
"""The share of leads that have a value for each custom field."""

ATTRIBUTES = (
    NewAttribute("campaign", "Campaign"),
    NewAttribute("region", "Region"),
    NewAttribute("tier", "Tier"),
)

INDUSTRIES = (
    "Construction",
    "Education",
    "Financial services",
    "Healthcare",
    "Hospitality",
    "Logistics",
    "Manufacturing",
    "Real estate",
    "Retail",
    "Software",
)
CAMPAIGNS = (
    "spring-webinar",
    "summer-trade-show",
    "partner-referral",
    "linkedin-ads",
    "newsletter-signup",
    "cold-outreach",
)
TIERS = ("gold", "silver", "bronze")
REGIONS = {
    "Northeast": "CT ME MA NH RI VT NJ NY PA",
    "Midwest": "IL IN MI OH WI IA KS MN MO NE ND SD",
    "South": "DE DC FL GA MD NC SC VA WV AL KY MS TN AR LA OK TX",
    "West": "AZ CO ID MT NV NM UT WY AK CA HI OR WA",
}
REGION_OF_STATE = {state: region for region, states in REGIONS.items() for state in states.split()}


def demo_leads(count: int, *, seed: int, now: datetime) -> NewLeads:
    """`count` made-up leads, the same for the same `seed` and UTC day of `now`.

    Creation times are spread over the year before midnight UTC of `now`'s day, so a
    second run later that day repeats them; `updated_at` is never before `created_at`.
    """
    if count < 1:
        msg = f"the number of demo leads must be at least 1, not {count}"
        raise ValueError(msg)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = fake.random
    end = datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)

    leads: list[dict[str, object]] = []
    custom_values: list[tuple[int, str, str]] = []
    attributes: list[tuple[int, str, str]] = []
    for row in range(count):
        created_at = end - timedelta(seconds=rng.randrange(CREATION_PERIOD_SECONDS))
        updated_at = created_at + timedelta(
            seconds=rng.randrange(int((end - created_at).total_seconds()) + 1)
        )
        contact = _contact(fake)
        leads.append({"row": row, **contact, "created_at": created_at, "updated_at": updated_at})
        values = _custom_values(fake, created_at.date(), end.date())
        custom_values.extend((row, key, value) for key, value in values.items())
        tags = _attributes(rng, contact["state"])
        attributes.extend((row, key, value) for key, value in tags.items())

    return NewLeads(
        leads=pl.DataFrame(
            leads,
            schema={
                "row": pl.UInt32,
                **dict.fromkeys(LEAD_TEXT_FIELDS, pl.String),
                "created_at": pl.Datetime("us", "UTC"),
                "updated_at": pl.Datetime("us", "UTC"),
            },
            orient="row",
        ),
        custom_values=_long_frame(custom_values),
        attributes=_long_frame(attributes),
        fields=FIELDS,
        attribute_definitions=ATTRIBUTES,
    )


def seed_demo_leads(
    store: LeadStore,
    *,
    count: int,
    seed: int,
    source_name: str = DEMO_SOURCE_NAME,
    now: datetime | None = None,
) -> AppendResult:
    """Append `demo_leads` to the source `source_name`, creating it if needed."""
    now = now or datetime.now(UTC)
    new = demo_leads(count, seed=seed, now=now)
    with store.writing() as connection:
        return append_leads(connection, source_name, new)


def _contact(fake: Faker) -> dict[str, str]:
    """The text fields of one lead, status included."""
    first_name = fake.first_name()
    last_name = fake.last_name()
    return {
        "first_name": first_name,
        "last_name": last_name,
        "email": _email(fake, first_name, last_name),
        "phone": fake.phone_number(),
        "address": fake.street_address(),
        "city": fake.city(),
        "state": fake.state_abbr(include_territories=False, include_freely_associated_states=False),
        "zip_code": fake.zipcode(),
        "status": fake.random.choices(list(STATUS_WEIGHTS), weights=STATUS_WEIGHTS.values())[0],
    }


def _email(fake: Faker, first_name: str, last_name: str) -> str:
    """`first.last@domain`, with a number on some, as people pick their addresses."""
    local = ".".join(re.sub(r"[^a-z]", "", name.lower()) for name in (first_name, last_name))
    if fake.random.random() < 0.4:
        local += str(fake.random.randrange(1, 100))
    return f"{local}@{fake.free_email_domain()}"


def _custom_values(fake: Faker, created_on: date, last_day: date) -> dict[str, str]:
    """The custom values of one lead, each present with its field's fill rate."""
    rng = fake.random
    values = {
        "company": fake.company(),
        "annual_revenue": _revenue(rng),
        "last_contacted": _day_between(rng, created_on, last_day).isoformat(),
        "newsletter_opt_in": "true" if rng.random() < 0.4 else "false",
        "industry": rng.choice(INDUSTRIES),
    }
    return {key: value for key, value in values.items() if rng.random() < FILL_RATES[key]}


def _revenue(rng: random.Random) -> str:
    """Annual revenue in dollars, spread evenly over the orders of magnitude from 100
    thousand to 100 million, as canonical decimal text: `1250000`, `84500.5`."""
    amount = Decimal(round(10 ** rng.uniform(5, 8), -3))
    if rng.random() < 0.2:
        amount += Decimal(rng.randrange(1, 100)) / 100
    return format(amount.normalize(), "f")


def _day_between(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _attributes(rng: random.Random, state: str) -> dict[str, str]:
    """One to three of the attributes, in definition order."""
    chosen = set(rng.sample([attribute.key for attribute in ATTRIBUTES], rng.randint(1, 3)))
    values = {
        "campaign": rng.choice(CAMPAIGNS),
        "region": REGION_OF_STATE[state],
        "tier": rng.choice(TIERS),
    }
    return {
        attribute.key: values[attribute.key] for attribute in ATTRIBUTES if attribute.key in chosen
    }


def _long_frame(rows: list[tuple[int, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"row": pl.UInt32, "key": pl.String, "value": pl.String}, orient="row"
    )
