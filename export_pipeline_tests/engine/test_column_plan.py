"""Which columns an export writes, in which order, under which header keys."""

from __future__ import annotations

import pytest

from export_pipeline.engine.columns import (
    Column,
    ColumnKind,
    UnknownColumnsError,
    plan_columns,
    select_columns,
)
from export_pipeline.leads.catalog import (
    AttributeDefinition,
    FieldDefinition,
    Source,
    SourceCatalog,
)

SYSTEM_HEADERS = [
    "lead_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "address",
    "city",
    "state",
    "zip_code",
    "status",
]
TRAILING_HEADERS = ["created_at", "updated_at", "source_id"]


def catalog(fields: list[str], attributes: list[str]) -> SourceCatalog:
    return SourceCatalog(
        source=Source(source_id=1, name="Leads", slug="leads"),
        fields=tuple(
            FieldDefinition(key=key, label=key.title(), type="text", position=position)
            for position, key in enumerate(fields)
        ),
        attributes=tuple(
            AttributeDefinition(key=key, label=key.title(), position=position)
            for position, key in enumerate(attributes)
        ),
    )


def headers(columns: tuple[Column, ...]) -> list[str]:
    return [column.header for column in columns]


def test_columns_are_system_then_custom_then_attributes_then_trailing_fields() -> None:
    plan = plan_columns(catalog(["notes", "company", "website"], ["source", "tier"]))

    assert headers(plan) == [
        *SYSTEM_HEADERS,
        "notes",
        "company",
        "website",
        "source",
        "tier",
        *TRAILING_HEADERS,
    ]
    assert [column.kind for column in plan] == (
        [ColumnKind.SYSTEM] * 10
        + [ColumnKind.CUSTOM] * 3
        + [ColumnKind.ATTRIBUTE] * 2
        + [ColumnKind.SYSTEM] * 3
    )


def test_a_source_without_custom_fields_or_attributes_exports_the_system_fields() -> None:
    assert headers(plan_columns(catalog([], []))) == SYSTEM_HEADERS + TRAILING_HEADERS


def test_custom_field_named_like_a_system_field_gets_the_custom_prefix() -> None:
    plan = plan_columns(catalog(["email", "created_at", "source_id", "lead_id"], []))

    custom = [column for column in plan if column.kind is ColumnKind.CUSTOM]
    assert custom == [
        Column("custom_email", ColumnKind.CUSTOM, "email"),
        Column("custom_created_at", ColumnKind.CUSTOM, "created_at"),
        Column("custom_source_id", ColumnKind.CUSTOM, "source_id"),
        Column("custom_lead_id", ColumnKind.CUSTOM, "lead_id"),
    ]


def test_attribute_named_like_a_custom_or_system_field_gets_the_attribute_prefix() -> None:
    plan = plan_columns(catalog(["company"], ["company", "status"]))

    attributes = [column for column in plan if column.kind is ColumnKind.ATTRIBUTE]
    assert attributes == [
        Column("attribute_company", ColumnKind.ATTRIBUTE, "company"),
        Column("attribute_status", ColumnKind.ATTRIBUTE, "status"),
    ]


def test_prefixes_repeat_until_the_header_is_free() -> None:
    plan = plan_columns(
        catalog(
            ["custom_email", "email", "attribute_company", "company"],
            ["company", "custom_email"],
        )
    )

    assert headers(plan)[10:-3] == [
        "custom_email",
        "custom_custom_email",
        "attribute_company",
        "company",
        "attribute_attribute_company",
        "attribute_custom_email",
    ]
    assert [column.key for column in plan][10:-3] == [
        "custom_email",
        "email",
        "attribute_company",
        "company",
        "company",
        "custom_email",
    ]


def test_no_column_is_dropped_and_every_header_is_unique() -> None:
    fields = ["email", "custom_email", "status", "company", "attribute_company"]
    attributes = ["company", "email", "custom_email", "attribute_company", "status"]

    plan = plan_columns(catalog(fields, attributes))

    assert len(plan) == len(SYSTEM_HEADERS) + len(fields) + len(attributes) + 3
    assert len(set(headers(plan))) == len(plan)
    assert [c.key for c in plan if c.kind is ColumnKind.CUSTOM] == fields
    assert [c.key for c in plan if c.kind is ColumnKind.ATTRIBUTE] == attributes


def test_select_columns_keeps_the_requested_subset_in_the_requested_order() -> None:
    plan = plan_columns(catalog(["email"], ["source"]))

    chosen = select_columns(plan, ["source", "custom_email", "lead_id", "created_at"])

    assert chosen == (
        Column("source", ColumnKind.ATTRIBUTE, "source"),
        Column("custom_email", ColumnKind.CUSTOM, "email"),
        Column("lead_id", ColumnKind.SYSTEM, "lead_id"),
        Column("created_at", ColumnKind.SYSTEM, "created_at"),
    )


def test_select_columns_without_a_choice_keeps_every_column() -> None:
    plan = plan_columns(catalog(["notes"], ["source"]))

    assert select_columns(plan, None) == plan


def test_select_columns_names_every_unknown_key() -> None:
    plan = plan_columns(catalog(["email"], []))

    with pytest.raises(UnknownColumnsError) as raised:
        select_columns(plan, ["lead_id", "nickname", "email_2"])

    assert raised.value.unknown == ["nickname", "email_2"]
    assert "'nickname'" in str(raised.value)
    assert "'email_2'" in str(raised.value)
