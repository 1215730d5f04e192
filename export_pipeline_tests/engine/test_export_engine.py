"""Streaming a CSV export from a real DuckDB lead store.

The store is filled by the importer from a CSV written here, plus one lead appended
with `append_leads` directly (an attribute tagged twice, empty-string values). The
export is read back with Python's csv module and, where quoting matters, as bytes.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from export_pipeline.engine.columns import UnknownColumnsError
from export_pipeline.engine.export import stream_export
from export_pipeline.engine.filters import AttributeFilter, ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import read_catalog
from export_pipeline.leads.importer import ColumnMapping, import_leads
from export_pipeline.leads.store import LeadStore
from export_pipeline.leads.writer import (
    LEAD_TEXT_FIELDS,
    NewAttribute,
    NewField,
    NewLeads,
    append_leads,
)

IMPORTED_AT = datetime(2024, 6, 1, tzinfo=UTC)
REQUESTED_AT = datetime(2024, 6, 2, tzinfo=UTC)

HEADER = [
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
    "company",
    "note",
    "source",
    "tier",
    "created_at",
    "updated_at",
    "source_id",
]

CSV_HEADER = [
    "First",
    "Last",
    "Email",
    "Phone",
    "Zip",
    "Stage",
    "Source",
    "Company",
    "Note",
    "Created",
]
CSV_LEADS = [
    {
        "First": "Ann",
        "Last": 'O\'Brien "Q"',
        "Email": "ann@example.com",
        "Phone": "+1 555-0100",
        "Zip": "02134",
        "Stage": "new",
        "Source": "web",
        "Company": "Acme, Inc",
        "Note": "line1\nline2",
        "Created": "2024-01-01",
    },
    {
        "First": '=HYPERLINK("x")',
        "Last": "-minus",
        "Email": "@at.example.com",
        "Phone": "0044 20 7946 0000",
        "Zip": "01234",
        "Stage": "won",
        "Company": "+SUM(A1)",
        "Created": "2024-02-01T00:00:00Z",
    },
    {
        "First": "Bob",
        "Last": "Smith_100% \\ Co",
        "Email": "BOB@Example.COM",
        "Phone": "(555) 010-9999",
        "Stage": "new",
        "Source": "fair",
        "Note": "\tindented",
        "Created": "2024-03-01T00:00:00+00:00",
    },
    {
        "First": "Zed",
        "Last": "'; DROP TABLE leads; --",
        "Email": "z@example.com",
        "Zip": "99999",
        "Stage": "lost",
        "Source": "web",
        "Company": "Initech",
        "Note": "x",
        "Created": "2024-04-01T02:00:00+02:00",
    },
]
MAPPING = ColumnMapping(
    fields={
        "first_name": "First",
        "last_name": "Last",
        "email": "Email",
        "phone": "Phone",
        "zip_code": "Zip",
    },
    status_column="Stage",
    attribute_columns=("Source",),
    created_at_column="Created",
)

EVE_CREATED_AT = "2024-05-01T12:34:56.789Z"

# What the file says with the formula guard off: every value exactly as stored. Cells
# not named here are missing values; Eve's company and tier are empty strings.
PLAIN_LEADS = [
    {
        "lead_id": "1",
        "first_name": "Ann",
        "last_name": 'O\'Brien "Q"',
        "email": "ann@example.com",
        "phone": "+1 555-0100",
        "zip_code": "02134",
        "status": "new",
        "company": "Acme, Inc",
        "note": "line1\nline2",
        "source": "web",
        "created_at": "2024-01-01T00:00:00Z",
    },
    {
        "lead_id": "2",
        "first_name": '=HYPERLINK("x")',
        "last_name": "-minus",
        "email": "@at.example.com",
        "phone": "0044 20 7946 0000",
        "zip_code": "01234",
        "status": "won",
        "company": "+SUM(A1)",
        "created_at": "2024-02-01T00:00:00Z",
    },
    {
        "lead_id": "3",
        "first_name": "Bob",
        "last_name": "Smith_100% \\ Co",
        "email": "BOB@Example.COM",
        "phone": "(555) 010-9999",
        "status": "new",
        "note": "\tindented",
        "source": "fair",
        "created_at": "2024-03-01T00:00:00Z",
    },
    {
        "lead_id": "4",
        "first_name": "Zed",
        "last_name": "'; DROP TABLE leads; --",
        "email": "z@example.com",
        "zip_code": "99999",
        "status": "lost",
        "company": "Initech",
        "note": "x",
        "source": "web",
        "created_at": "2024-04-01T00:00:00Z",
    },
    {
        "lead_id": "5",
        "first_name": "Eve",
        "status": "new",
        "company": "",
        "source": "fair;web",
        "tier": "",
        "created_at": EVE_CREATED_AT,
    },
]

# With the guard on, cells a spreadsheet would run start with a quote.
GUARD_CHANGES = {
    "1": {"phone": "'+1 555-0100"},
    "2": {
        "first_name": '\'=HYPERLINK("x")',
        "last_name": "'-minus",
        "email": "'@at.example.com",
        "company": "'+SUM(A1)",
    },
    "3": {"note": "'\tindented"},
}
GUARDED_LEADS = [lead | GUARD_CHANGES.get(lead["lead_id"], {}) for lead in PLAIN_LEADS]


def as_rows(leads: list[dict[str, str]]) -> list[list[str]]:
    """The header and one row per lead, as the csv module reads the export."""
    rows = [HEADER]
    for lead in leads:
        cells = {"updated_at": lead["created_at"], "source_id": "1", **lead}
        rows.append([cells.get(header, "") for header in HEADER])
    return rows


def write_leads_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as text:
        writer = csv.DictWriter(text, header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def new_leads(
    leads: list[dict[str, Any]],
    *,
    custom: Sequence[tuple[int, str, str]] = (),
    attributes: Sequence[tuple[int, str, str]] = (),
    fields: tuple[NewField, ...] = (),
    attribute_definitions: tuple[NewAttribute, ...] = (),
) -> NewLeads:
    """Leads as `append_leads` takes them; `created_at` is given per lead."""

    def long(rows: Sequence[tuple[int, str, str]]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "row": pl.Series([row for row, _, _ in rows], dtype=pl.UInt32),
                "key": pl.Series([key for _, key, _ in rows], dtype=pl.String),
                "value": pl.Series([value for _, _, value in rows], dtype=pl.String),
            }
        )

    created = pl.Series([lead["created_at"] for lead in leads], dtype=pl.Datetime("us", "UTC"))
    frame = pl.DataFrame(
        {
            "row": pl.Series(range(len(leads)), dtype=pl.UInt32),
            **{
                name: pl.Series([lead.get(name) for lead in leads], dtype=pl.String)
                for name in LEAD_TEXT_FIELDS
            },
            "created_at": created,
            "updated_at": created,
        }
    )
    return NewLeads(
        leads=frame,
        custom_values=long(custom),
        attributes=long(attributes),
        fields=fields,
        attribute_definitions=attribute_definitions,
    )


@pytest.fixture
def source_id(lead_store: LeadStore, tmp_path: Path) -> int:
    """Five leads: four imported from a CSV, the fifth appended directly."""
    path = write_leads_csv(tmp_path / "leads.csv", CSV_HEADER, CSV_LEADS)
    result = import_leads(
        lead_store, path, source_name="Trade Fair", mapping=MAPPING, now=IMPORTED_AT
    )
    eve = new_leads(
        [
            {
                "first_name": "Eve",
                "status": "new",
                "created_at": datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=UTC),
            }
        ],
        custom=[(0, "company", "")],
        attributes=[(0, "source", "web"), (0, "source", "fair"), (0, "tier", "")],
        attribute_definitions=(NewAttribute("tier", "Tier"),),
    )
    with lead_store.writing() as connection:
        append_leads(connection, "Trade Fair", eve, inserted_at=IMPORTED_AT)
    return result.source_id


def run_export(
    store: LeadStore,
    source_id: int,
    filters: ExportFilters | None = None,
    options: ExportOptions | None = None,
    *,
    requested_at: datetime = REQUESTED_AT,
    batch_size: int = 2,
    on_progress: Any = None,
) -> tuple[int, bytes]:
    frozen = freeze_filters(filters or ExportFilters(), requested_at=requested_at)
    out = io.BytesIO()
    with store.reading() as connection:
        catalog = read_catalog(connection, source_id)
        assert catalog is not None
        count = stream_export(
            connection,
            catalog,
            frozen,
            options or ExportOptions(),
            out,
            batch_size=batch_size,
            on_progress=on_progress,
        )
    return count, out.getvalue()


def parse(raw: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))


def first_names(raw: bytes) -> set[str]:
    return {row[1] for row in parse(raw)[1:]}


def csv_line(*cells: str) -> bytes:
    return (",".join(cells) + "\r\n").encode()


# --- the file ------------------------------------------------------------------------


def test_guarded_export_neutralises_formulas_and_keeps_every_other_value(
    lead_store: LeadStore, source_id: int
) -> None:
    progress: list[int] = []

    count, raw = run_export(
        lead_store, source_id, on_progress=lambda done, total: progress.append((done, total))
    )

    assert count == 5
    assert progress == [(0, 5), (2, 5), (4, 5), (5, 5)]
    assert parse(raw) == as_rows(GUARDED_LEADS)


def test_unguarded_export_carries_every_value_byte_for_byte(
    lead_store: LeadStore, source_id: int
) -> None:
    count, raw = run_export(lead_store, source_id, options=ExportOptions(formula_guard=False))

    assert count == 5
    assert parse(raw) == as_rows(PLAIN_LEADS)
    assert b'=HYPERLINK(""x"")' in raw
    assert b",+1 555-0100," in raw
    assert b",+SUM(A1)," in raw


def test_guard_quotes_every_text_cell_and_leaves_numbers_and_missing_values_bare(
    lead_store: LeadStore, source_id: int
) -> None:
    _, raw = run_export(lead_store, source_id)

    lines = raw.split(b"\r\n")
    assert lines[0] == b",".join(b'"' + header.encode() + b'"' for header in HEADER)
    stamp = f'"{EVE_CREATED_AT}"'
    empties = [""] * 7
    eve = csv_line("5", '"Eve"', *empties, '"new"', '""', "", '"fair;web"', '""', stamp, stamp, "1")
    assert raw.endswith(eve)
    assert b'2,"\'=HYPERLINK(""x"")","\'-minus","\'@at.example.com",' in raw


def test_empty_string_and_missing_value_stay_distinguishable_without_guard(
    lead_store: LeadStore, source_id: int
) -> None:
    _, raw = run_export(lead_store, source_id, options=ExportOptions(formula_guard=False))

    empties = [""] * 7
    eve = csv_line(
        "5", "Eve", *empties, "new", '""', "", "fair;web", '""', EVE_CREATED_AT, EVE_CREATED_AT, "1"
    )
    assert raw.endswith(eve)


def test_records_end_with_crlf_and_newlines_inside_values_stay_quoted(
    lead_store: LeadStore, source_id: int
) -> None:
    _, raw = run_export(lead_store, source_id, options=ExportOptions(formula_guard=False))

    assert raw.count(b"\r\n") == 6
    assert raw.endswith(b"\r\n")
    assert raw.replace(b"\r\n", b"").count(b"\n") == 1
    assert b'"line1\nline2"' in raw


def test_include_bom_starts_the_file_with_the_utf8_bom(
    lead_store: LeadStore, source_id: int
) -> None:
    _, plain = run_export(lead_store, source_id)
    _, with_bom = run_export(lead_store, source_id, options=ExportOptions(include_bom=True))

    assert not plain.startswith(b"\xef\xbb\xbf")
    assert with_bom == b"\xef\xbb\xbf" + plain


def test_gzip_compression_decompresses_to_the_same_csv(
    lead_store: LeadStore, source_id: int
) -> None:
    _, plain = run_export(lead_store, source_id, options=ExportOptions(include_bom=True))

    count, compressed = run_export(
        lead_store, source_id, options=ExportOptions(include_bom=True, compression="gzip")
    )

    assert count == 5
    assert compressed[:2] == b"\x1f\x8b"
    assert gzip.decompress(compressed) == plain


def test_columns_option_writes_only_the_chosen_columns_in_the_chosen_order(
    lead_store: LeadStore, source_id: int
) -> None:
    options = ExportOptions(columns=["email", "lead_id", "source", "company", "zip_code"])

    _, raw = run_export(lead_store, source_id, options=options)

    assert parse(raw) == [
        ["email", "lead_id", "source", "company", "zip_code"],
        ["ann@example.com", "1", "web", "Acme, Inc", "02134"],
        ["'@at.example.com", "2", "", "'+SUM(A1)", "01234"],
        ["BOB@Example.COM", "3", "fair", "", ""],
        ["z@example.com", "4", "web", "Initech", "99999"],
        ["", "5", "fair;web", "", ""],
    ]


def test_unknown_column_is_rejected_before_anything_is_written(
    lead_store: LeadStore, source_id: int
) -> None:
    out = io.BytesIO()
    frozen = freeze_filters(ExportFilters(), requested_at=REQUESTED_AT)

    options = ExportOptions(columns=["lead_id", "nickname"])

    with lead_store.reading() as connection:
        catalog = read_catalog(connection, source_id)
        assert catalog is not None
        with pytest.raises(UnknownColumnsError, match="nickname"):
            stream_export(connection, catalog, frozen, options, out)

    assert out.getvalue() == b""


def test_no_matching_lead_gives_a_header_only_file(lead_store: LeadStore, source_id: int) -> None:
    count, raw = run_export(lead_store, source_id, ExportFilters(statuses=["nope"]))

    assert count == 0
    assert parse(raw) == [HEADER]
    assert raw.count(b"\r\n") == 1


def test_leads_of_other_sources_are_not_exported(
    lead_store: LeadStore, source_id: int, tmp_path: Path
) -> None:
    other = write_leads_csv(tmp_path / "other.csv", ["First"], [{"First": "Mallory"}])
    import_leads(
        lead_store,
        other,
        source_name="Other",
        mapping=ColumnMapping(fields={"first_name": "First"}),
        now=IMPORTED_AT,
    )

    _, raw = run_export(lead_store, source_id)

    assert first_names(raw) == {"Ann", '\'=HYPERLINK("x")', "Bob", "Zed", "Eve"}


def test_header_cells_are_guarded_too(lead_store: LeadStore) -> None:
    leads = new_leads(
        [{"first_name": "Ann", "created_at": datetime(2024, 1, 1, tzinfo=UTC)}],
        custom=[(0, "@risk", "high")],
        attributes=[(0, "=flag", "-1")],
        fields=(NewField("@risk", "@risk"),),
        attribute_definitions=(NewAttribute("=flag", "=flag"),),
    )
    with lead_store.writing() as connection:
        source = append_leads(connection, "Odd", leads, inserted_at=IMPORTED_AT).source_id

    _, guarded = run_export(lead_store, source, options=ExportOptions(columns=["@risk", "=flag"]))
    _, plain = run_export(
        lead_store,
        source,
        options=ExportOptions(columns=["@risk", "=flag"], formula_guard=False),
    )

    assert guarded == b'"\'@risk","\'=flag"\r\n"high","\'-1"\r\n'
    assert plain == b"@risk,=flag\r\nhigh,-1\r\n"


def test_colliding_keys_are_prefixed_and_values_land_in_their_own_columns(
    lead_store: LeadStore,
) -> None:
    leads = new_leads(
        [
            {
                "first_name": "Ann",
                "email": "system@example.com",
                "created_at": datetime(2024, 1, 1, tzinfo=UTC),
            }
        ],
        custom=[(0, "email", "custom@example.com"), (0, "company", "Acme")],
        attributes=[(0, "company", "partner"), (0, "email", "tagged")],
        fields=(NewField("email", "Email"), NewField("company", "Company")),
        attribute_definitions=(NewAttribute("company", "Company"), NewAttribute("email", "E")),
    )
    with lead_store.writing() as connection:
        source = append_leads(connection, "Clash", leads, inserted_at=IMPORTED_AT).source_id

    _, raw = run_export(lead_store, source, options=ExportOptions(formula_guard=False))

    header, row = parse(raw)
    assert header[10:-3] == ["custom_email", "company", "attribute_company", "attribute_email"]
    assert dict(zip(header, row, strict=True)) == {
        **dict.fromkeys(HEADER[:10], ""),
        "lead_id": "1",
        "first_name": "Ann",
        "email": "system@example.com",
        "custom_email": "custom@example.com",
        "company": "Acme",
        "attribute_company": "partner",
        "attribute_email": "tagged",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "source_id": str(source),
    }


def test_every_lead_of_the_datablist_file_is_exported_once_in_batches(
    lead_store: LeadStore, shared_data: Path
) -> None:
    path = shared_data / "leads" / "datablist_leads-10000.csv"
    mapping = ColumnMapping(
        fields={"first_name": "First Name", "last_name": "Last Name", "phone": "Phone 1"},
        status_column="Deal Stage",
        attribute_columns=("Source",),
    )
    result = import_leads(lead_store, path, source_name="D", mapping=mapping, now=IMPORTED_AT)
    with path.open(encoding="utf-8", newline="") as text:
        records = list(csv.DictReader(text))

    count, raw = run_export(
        lead_store, result.source_id, options=ExportOptions(formula_guard=False), batch_size=3000
    )

    header, *cells = parse(raw)
    rows = [dict(zip(header, row, strict=True)) for row in cells]
    assert count == len(rows) == 10_000
    assert [(r["first_name"], r["phone"], r["company"], r["source"]) for r in rows] == [
        (r["First Name"], r["Phone 1"], r["Company"], r["Source"]) for r in records
    ]


# --- filters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "names"),
    [
        (["new"], {"Ann", "Bob", "Eve"}),
        (["won", "lost"], {'=HYPERLINK("x")', "Zed"}),
        (["New"], set()),
    ],
)
def test_status_filter_keeps_leads_with_one_of_the_statuses(
    lead_store: LeadStore, source_id: int, statuses: list[str], names: set[str]
) -> None:
    options = ExportOptions(formula_guard=False)

    _, raw = run_export(lead_store, source_id, ExportFilters(statuses=statuses), options)

    assert first_names(raw) == names


def test_date_range_includes_created_from_and_excludes_created_to(
    lead_store: LeadStore, source_id: int
) -> None:
    # Bob's lead was created exactly at created_from, Zed's exactly at created_to.
    filters = ExportFilters(created_from="2024-02-01", created_to="2024-04-01T00:00:00Z")

    _, raw = run_export(lead_store, source_id, filters, ExportOptions(formula_guard=False))

    assert first_names(raw) == {'=HYPERLINK("x")', "Bob"}


def test_date_range_in_a_time_zone_uses_that_zones_midnight(
    lead_store: LeadStore, source_id: int
) -> None:
    # Midnight of 2024-04-01 in Berlin is 2024-03-31T22:00Z, so Zed is inside.
    filters = ExportFilters(
        time_zone="Europe/Berlin", created_from="2024-03-02", created_to="2024-04-02"
    )

    _, raw = run_export(lead_store, source_id, filters, ExportOptions(formula_guard=False))

    assert first_names(raw) == {"Zed"}


@pytest.mark.parametrize(
    ("attribute", "names"),
    [
        ({"key": "source"}, {"Ann", "Bob", "Zed", "Eve"}),
        ({"key": "source", "value": "web"}, {"Ann", "Zed", "Eve"}),
        ({"key": "source", "value": "fair"}, {"Bob", "Eve"}),
        ({"key": "source", "value": "Web"}, set()),
        ({"key": "tier"}, {"Eve"}),
        ({"key": "tier", "value": ""}, {"Eve"}),
        ({"key": "nope"}, set()),
    ],
)
def test_attribute_filter_matches_the_key_and_the_value_when_given(
    lead_store: LeadStore, source_id: int, attribute: dict[str, str], names: set[str]
) -> None:
    filters = ExportFilters(attribute=AttributeFilter(**attribute))

    _, raw = run_export(lead_store, source_id, filters, ExportOptions(formula_guard=False))

    assert first_names(raw) == names


@pytest.mark.parametrize(
    ("search", "names"),
    [
        ("ANN", {"Ann"}),
        ("o'brien", {"Ann"}),
        ("ann o'brien", {"Ann"}),
        ("bob@example.com", {"Bob"}),
        ("@AT.", {'=HYPERLINK("x")'}),
        ("(555) 010", {"Ann", "Bob"}),
        ("555-0100", {"Ann"}),
        ("+1 555-0100", {"Ann"}),
        ("20 7946", {'=HYPERLINK("x")'}),
        ("Suite 5", set()),
        ("%", {"Bob"}),
        ("_", {"Bob"}),
        ("\\", {"Bob"}),
        ("'", {"Ann", "Zed"}),
        ('"', {"Ann", '=HYPERLINK("x")'}),
        ("'; DROP TABLE leads; --", {"Zed"}),
        ("acme", set()),
    ],
)
def test_search_matches_names_email_and_phone_literally_ignoring_case(
    lead_store: LeadStore, source_id: int, search: str, names: set[str]
) -> None:
    filters = ExportFilters(search=search)

    _, raw = run_export(lead_store, source_id, filters, ExportOptions(formula_guard=False))

    assert first_names(raw) == names
    with lead_store.reading() as connection:
        assert connection.execute("SELECT count(*) FROM leads").fetchone() == (5,)


@pytest.mark.parametrize(
    ("search", "names"),
    [
        ("ΟΔΥΣΣΕΥΣ", {"Οδυσσευς"}),
        ("οδυσσευσ", {"Οδυσσευς"}),
        ("ΣΟΦΙΑ", {"Σοφια"}),
        ("ibrahim", {"İbrahim"}),
        ("İBRAHİM", {"İbrahim"}),
        ("ÉLODIE", {"élodie"}),
        ("straße", {"STRAßE"}),
        ("strasse", set()),
    ],
)
def test_search_ignores_the_case_of_letters_beyond_ascii(
    lead_store: LeadStore, tmp_path: Path, search: str, names: set[str]
) -> None:
    path = write_leads_csv(
        tmp_path / "unicode.csv",
        ["First"],
        [{"First": name} for name in ("Οδυσσευς", "Σοφια", "İbrahim", "élodie", "STRAßE")],
    )
    mapping = ColumnMapping(fields={"first_name": "First"})
    imported = import_leads(
        lead_store, path, source_name="Abroad", mapping=mapping, now=IMPORTED_AT
    )

    _, raw = run_export(lead_store, imported.source_id, ExportFilters(search=search))

    assert first_names(raw) == names


def test_filters_combine_with_and(lead_store: LeadStore, source_id: int) -> None:
    filters = ExportFilters(
        statuses=["new"],
        attribute=AttributeFilter(key="source", value="web"),
        created_from="2024-01-01",
        search="e",
    )

    _, raw = run_export(lead_store, source_id, filters, ExportOptions(formula_guard=False))

    assert first_names(raw) == {"Ann", "Eve"}


# --- the request time as cut-off -----------------------------------------------------


@pytest.fixture
def cutoff_source(lead_store: LeadStore, tmp_path: Path) -> int:
    """Leads imported on 2024-05-15 (one dated in the future) and one on 2024-05-25."""
    mapping = ColumnMapping(fields={"first_name": "First"}, created_at_column="Created")
    first = write_leads_csv(
        tmp_path / "first.csv",
        ["First", "Created"],
        [
            {"First": "early", "Created": "2024-01-01"},
            {"First": "at-cutoff", "Created": "2024-05-20T00:00:00Z"},
            {"First": "future-dated", "Created": "2024-05-20T00:00:01Z"},
        ],
    )
    later = write_leads_csv(
        tmp_path / "later.csv",
        ["First", "Created"],
        [{"First": "late-arrival", "Created": "2024-01-02"}],
    )
    result = import_leads(
        lead_store,
        first,
        source_name="S",
        mapping=mapping,
        now=datetime(2024, 5, 15, tzinfo=UTC),
    )
    import_leads(
        lead_store,
        later,
        source_name="S",
        mapping=mapping,
        now=datetime(2024, 5, 25, tzinfo=UTC),
    )
    return result.source_id


def test_leads_created_or_added_after_the_request_are_not_exported(
    lead_store: LeadStore, cutoff_source: int
) -> None:
    _, raw = run_export(lead_store, cutoff_source, requested_at=datetime(2024, 5, 20, tzinfo=UTC))

    assert first_names(raw) == {"early", "at-cutoff"}


def test_a_later_request_sees_every_lead(lead_store: LeadStore, cutoff_source: int) -> None:
    _, raw = run_export(lead_store, cutoff_source, requested_at=datetime(2024, 6, 1, tzinfo=UTC))

    assert first_names(raw) == {"early", "at-cutoff", "future-dated", "late-arrival"}
