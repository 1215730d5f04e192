"""Importing CSV files of leads into the DuckDB lead store.

The real sample files of `../shared/data` are the oracle: what the store holds must
equal the cells Python's csv module reads from them.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from export_pipeline.leads.importer import ColumnMapping, LeadImportError, import_leads
from export_pipeline.leads.store import LeadStore
from export_pipeline.leads.writer import (
    LEAD_TEXT_FIELDS,
    NewField,
    NewLeads,
    append_leads,
    snake_case,
)

NOW = datetime(2024, 6, 1, 15, 30, tzinfo=UTC)
TABLES = (
    "sources",
    "leads",
    "field_definitions",
    "lead_custom_values",
    "attribute_definitions",
    "lead_attributes",
)

DATABLIST_MAPPING = ColumnMapping(
    fields={
        "first_name": "First Name",
        "last_name": "Last Name",
        "phone": "Phone 1",
        "email": "Email 1",
    },
    status_column="Deal Stage",
    attribute_columns=("Source",),
)
DATABLIST_CUSTOM = {
    "index": "Index",
    "account_id": "Account Id",
    "lead_owner": "Lead Owner",
    "company": "Company",
    "phone_2": "Phone 2",
    "email_2": "Email 2",
    "website": "Website",
    "notes": "Notes",
}


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as text:
        return list(csv.DictReader(text))


def write_csv(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def table_counts(store: LeadStore) -> dict[str, int]:
    with store.reading() as connection:
        return {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in TABLES
        }


def stored_leads(store: LeadStore, columns: str = "*") -> list[tuple]:
    with store.reading() as connection:
        return connection.execute(
            f"SELECT {columns} FROM leads ORDER BY lead_id"  # noqa: S608
        ).fetchall()


def stored_custom_values(store: LeadStore) -> dict[int, dict[str, str]]:
    values: dict[int, dict[str, str]] = defaultdict(dict)
    with store.reading() as connection:
        rows = connection.execute(
            "SELECT lead_id, field_key, value FROM lead_custom_values ORDER BY lead_id"
        )
        for lead_id, key, value in rows.fetchall():
            assert key not in values[lead_id], f"lead {lead_id} has two values for {key}"
            values[lead_id][key] = value
    return values


def stored_attributes(store: LeadStore) -> dict[int, list[tuple[str, str]]]:
    values: dict[int, list[tuple[str, str]]] = defaultdict(list)
    with store.reading() as connection:
        rows = connection.execute(
            "SELECT lead_id, key, value FROM lead_attributes ORDER BY lead_id, key, value"
        )
        for lead_id, key, value in rows.fetchall():
            values[lead_id].append((key, value))
    return values


def field_definitions(store: LeadStore) -> list[tuple[str, str, int]]:
    with store.reading() as connection:
        return connection.execute(
            "SELECT key, label, position FROM field_definitions ORDER BY position"
        ).fetchall()


def created_ats(store: LeadStore) -> list[datetime]:
    return [created_at for (created_at,) in stored_leads(store, "created_at")]


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    return write_csv(
        tmp_path / "small.csv",
        "First,Last,Email,Stage,Tag,Company\r\n"
        "Ann,Lee,ann@example.com,new,vip,Acme\r\n"
        "Bob,Ray,bob@example.com,won,,Initech\r\n",
    )


SMALL_MAPPING = ColumnMapping(
    fields={"first_name": "First", "last_name": "Last", "email": "Email"},
    status_column="Stage",
    attribute_columns=("Tag",),
)


# --- the real sample files ---------------------------------------------------------


@pytest.fixture
def datablist_store(shared_data: Path, lead_store: LeadStore) -> tuple[LeadStore, Path]:
    path = shared_data / "leads" / "datablist_leads-10000.csv"
    result = import_leads(
        lead_store, path, source_name="Datablist", mapping=DATABLIST_MAPPING, now=NOW
    )
    assert result.leads == 10_000
    assert result.source_created
    return lead_store, path


def test_datablist_file_becomes_10000_leads_with_custom_fields_in_file_order(
    datablist_store: tuple[LeadStore, Path],
) -> None:
    store, _path = datablist_store

    assert table_counts(store)["leads"] == 10_000
    assert field_definitions(store) == [
        (key, label, position) for position, (key, label) in enumerate(DATABLIST_CUSTOM.items())
    ]
    with store.reading() as connection:
        attributes = connection.execute("SELECT key, label FROM attribute_definitions").fetchall()
    assert attributes == [("source", "Source")]


def test_datablist_leads_hold_exactly_the_cells_of_the_file(
    datablist_store: tuple[LeadStore, Path],
) -> None:
    store, path = datablist_store
    rows = read_csv_rows(path)
    leads = stored_leads(store, "lead_id, first_name, last_name, phone, email, status")
    custom = stored_custom_values(store)
    attributes = stored_attributes(store)

    assert len(leads) == len(rows) == 10_000
    for row, (lead_id, first, last, phone, email, status) in zip(rows, leads, strict=True):
        assert (first, last, phone, email, status) == (
            row["First Name"],
            row["Last Name"],
            row["Phone 1"],
            row["Email 1"],
            row["Deal Stage"],
        ), f"lead {lead_id} differs from record {row['Index']}"
        expected_custom = {key: row[column] for key, column in DATABLIST_CUSTOM.items()}
        expected_custom = {key: value for key, value in expected_custom.items() if value != ""}
        assert custom.get(lead_id, {}) == expected_custom
        assert attributes[lead_id] == [("source", row["Source"])]


def test_datablist_phones_with_plus_zero_and_extensions_and_companies_with_commas_survive(
    datablist_store: tuple[LeadStore, Path],
) -> None:
    store, path = datablist_store
    rows = read_csv_rows(path)
    tricky_phones = {
        row["Phone 1"]
        for row in rows
        if row["Phone 1"].startswith(("+", "0")) or "x" in row["Phone 1"]
    }
    comma_companies = {row["Company"] for row in rows if "," in row["Company"]}
    assert any(p.startswith("+") for p in tricky_phones)
    assert any(p.startswith("0") for p in tricky_phones)
    assert any("x" in p for p in tricky_phones)
    assert len(comma_companies) > 100

    phones = {phone for (phone,) in stored_leads(store, "phone")}
    with store.reading() as connection:
        companies = {
            value
            for (value,) in connection.execute(
                "SELECT value FROM lead_custom_values WHERE field_key = 'company'"
            ).fetchall()
        }
    assert tricky_phones <= phones
    assert comma_companies <= companies


def test_us_500_zip_codes_and_phones_are_stored_as_written(
    shared_data: Path, lead_store: LeadStore
) -> None:
    path = shared_data / "leads" / "us-500.csv"
    mapping = ColumnMapping(
        fields={
            "first_name": "first_name",
            "last_name": "last_name",
            "address": "address",
            "city": "city",
            "state": "state",
            "zip_code": "zip",
            "phone": "phone1",
            "email": "email",
        }
    )

    import_leads(lead_store, path, source_name="US", mapping=mapping, now=NOW)

    rows = read_csv_rows(path)
    stored = stored_leads(lead_store, "zip_code, phone, state, city, address")
    expected = [(r["zip"], r["phone1"], r["state"], r["city"], r["address"]) for r in rows]
    assert stored == expected
    assert any(len(zip_code) == 4 for zip_code, *_ in stored), "upstream lost zeros stay lost"
    custom = stored_custom_values(lead_store)
    assert [custom[lead_id]["company_name"] for lead_id in sorted(custom)] == [
        r["company_name"] for r in rows
    ]


def test_uk_500_postcodes_and_phones_keep_spaces_and_leading_zeros(
    shared_data: Path, lead_store: LeadStore
) -> None:
    path = shared_data / "leads" / "uk-500.csv"
    mapping = ColumnMapping(
        fields={
            "first_name": "firstName",
            "last_name": "lastName",
            "address": "address",
            "city": "city",
            "zip_code": "postal",
            "phone": "phone1",
            "email": "email",
        }
    )

    import_leads(lead_store, path, source_name="UK", mapping=mapping, now=NOW)

    rows = read_csv_rows(path)
    stored = stored_leads(lead_store, "zip_code, phone, city")
    assert stored == [(r["postal"], r["phone1"], r["city"]) for r in rows]
    assert all(phone.startswith("0") for _, phone, _ in stored)
    assert all(" " in postcode for postcode, _, _ in stored)
    assert "Burmantofts and Richmond Hill " in {city for *_, city in stored}
    assert [key for key, _, _ in field_definitions(lead_store)] == [
        "company_name",
        "county",
        "phone2",
        "web",
    ]
    counties = {v["county"] for v in stored_custom_values(lead_store).values()}
    assert {r["county"] for r in rows} == counties


def test_relaticle_duplicate_emails_become_distinct_leads(
    shared_data: Path, lead_store: LeadStore
) -> None:
    path = shared_data / "leads" / "relaticle_people_3453.csv"
    mapping = ColumnMapping(fields={"first_name": "name", "email": "email", "phone": "phone"})

    result = import_leads(lead_store, path, source_name="Relaticle", mapping=mapping, now=NOW)

    rows = read_csv_rows(path)
    stored = stored_leads(lead_store, "lead_id, email")
    assert result.leads == len(stored) == 3_453
    assert len({lead_id for lead_id, _ in stored}) == 3_453
    file_duplicates = {e: n for e, n in Counter(r["email"] for r in rows).items() if n > 1}
    stored_duplicates = {e: n for e, n in Counter(e for _, e in stored).items() if n > 1}
    assert sum(n - 1 for n in file_duplicates.values()) == 182, "182 repeated addresses"
    assert stored_duplicates == file_duplicates


# --- created_at ----------------------------------------------------------------------


def test_created_at_is_spread_over_the_year_before_midnight_utc_in_file_order(
    shared_data: Path, lead_store: LeadStore
) -> None:
    path = shared_data / "leads" / "datablist_leads-10000.csv"
    import_leads(lead_store, path, source_name="D", mapping=DATABLIST_MAPPING, now=NOW)

    moments = created_ats(lead_store)
    midnight = datetime(2024, 6, 1, tzinfo=UTC)
    assert len(moments) == 10_000
    assert all(midnight - timedelta(days=365) <= moment < midnight for moment in moments)
    assert moments == sorted(moments)
    assert moments[-1] - moments[0] > timedelta(days=360), "spread over the year, not bunched"
    updated = [u for (u,) in stored_leads(lead_store, "updated_at")]
    assert updated == moments


def test_spread_created_at_is_the_same_for_any_time_of_the_same_day(
    small_csv: Path, tmp_path: Path
) -> None:
    early, late = LeadStore(tmp_path / "early.duckdb"), LeadStore(tmp_path / "late.duckdb")

    import_leads(
        early,
        small_csv,
        source_name="S",
        mapping=SMALL_MAPPING,
        now=datetime(2024, 6, 1, 0, 1, tzinfo=UTC),
    )
    import_leads(
        late,
        small_csv,
        source_name="S",
        mapping=SMALL_MAPPING,
        now=datetime(2024, 6, 1, 23, 59, tzinfo=UTC),
    )

    assert created_ats(early) == created_ats(late)
    assert created_ats(early)[0] == datetime(2023, 6, 2, tzinfo=UTC)


def test_created_at_column_honours_offsets_and_reads_dates_as_midnight_utc(
    tmp_path: Path, lead_store: LeadStore
) -> None:
    path = write_csv(
        tmp_path / "dated.csv",
        "Name,Created\n"
        "a,2024-03-05\n"
        "b,2024-03-05T10:00:00+02:00\n"
        "c,2024-03-05T23:30:00-05:00\n"
        "d,2024-03-05T10:00:00Z\n",
    )
    mapping = ColumnMapping(fields={"first_name": "Name"}, created_at_column="Created")

    import_leads(lead_store, path, source_name="S", mapping=mapping, now=NOW)

    assert created_ats(lead_store) == [
        datetime(2024, 3, 5, 0, 0, tzinfo=UTC),
        datetime(2024, 3, 5, 8, 0, tzinfo=UTC),
        datetime(2024, 3, 6, 4, 30, tzinfo=UTC),
        datetime(2024, 3, 5, 10, 0, tzinfo=UTC),
    ]
    assert field_definitions(lead_store) == [], "the created-at column is no custom field"


@pytest.mark.parametrize("bad_value", ["05/03/2024", "2024-13-01", "yesterday", ""])
def test_bad_created_at_value_names_record_and_column_and_imports_nothing(
    tmp_path: Path, lead_store: LeadStore, bad_value: str
) -> None:
    path = write_csv(
        tmp_path / "dated.csv",
        f"Name,Created On\na,2024-03-05\nb,2024-03-06\nc,{bad_value}\n",
    )
    mapping = ColumnMapping(fields={"first_name": "Name"}, created_at_column="Created On")

    with pytest.raises(LeadImportError, match=r"record 3\b.*'Created On'"):
        import_leads(lead_store, path, source_name="S", mapping=mapping, now=NOW)

    assert table_counts(lead_store) == dict.fromkeys(TABLES, 0)


# --- all or nothing ------------------------------------------------------------------


@pytest.fixture
def seeded_store(lead_store: LeadStore, small_csv: Path) -> LeadStore:
    import_leads(lead_store, small_csv, source_name="S", mapping=SMALL_MAPPING, now=NOW)
    return lead_store


BAD_IMPORTS = {
    "missing mapped column": (
        "First,Last\nAnn,Lee\n",
        ColumnMapping(fields={"email": "E-mail Address"}),
        r"'E-mail Address'.*does not have",
    ),
    "unknown map key": (
        "First,Last\nAnn,Lee\n",
        ColumnMapping(fields={"nickname": "First"}),
        r"'nickname' is not a system field",
    ),
    "column with two roles": (
        "First,Stage\nAnn,new\n",
        ColumnMapping(status_column="Stage", attribute_columns=("Stage",)),
        r"'Stage' is given two roles",
    ),
    "two columns with one key": (
        "Lead Owner,lead_owner\nAnn,Bob\n",
        ColumnMapping(),
        r"'Lead Owner' and 'lead_owner' both become the key 'lead_owner'",
    ),
    "ragged rows": (
        "a,b,c\n1,2,3\n4,5\n6,7,8\n",
        ColumnMapping(),
        r"record 2 .*has 2 fields where the header has 3",
    ),
    "empty file": ("", ColumnMapping(), r"empty"),
}


@pytest.mark.parametrize(("text", "mapping", "message"), BAD_IMPORTS.values(), ids=BAD_IMPORTS)
def test_bad_file_or_mapping_is_rejected_and_leaves_the_store_unchanged(
    seeded_store: LeadStore, tmp_path: Path, text: str, mapping: ColumnMapping, message: str
) -> None:
    before = table_counts(seeded_store)
    path = write_csv(tmp_path / "bad.csv", text)

    with pytest.raises(LeadImportError, match=message):
        import_leads(seeded_store, path, source_name="S", mapping=mapping, now=NOW)

    assert table_counts(seeded_store) == before


@pytest.mark.parametrize("name", ["test_latin1.csv", "test_utf16_big.csv", "test_utf16_little.csv"])
def test_non_utf8_file_is_rejected_with_advice_and_leaves_the_store_unchanged(
    seeded_store: LeadStore, shared_data: Path, name: str
) -> None:
    before = table_counts(seeded_store)
    path = shared_data / "csv_edge_cases" / "csvkit-examples" / name

    with pytest.raises(LeadImportError, match=r"not UTF-8.*save it as UTF-8"):
        import_leads(seeded_store, path, source_name="S", mapping=ColumnMapping(), now=NOW)

    assert table_counts(seeded_store) == before


def test_csvkit_bad_file_reports_its_first_ragged_record(
    seeded_store: LeadStore, shared_data: Path
) -> None:
    before = table_counts(seeded_store)
    path = shared_data / "csv_edge_cases" / "csvkit-examples" / "bad.csv"

    with pytest.raises(LeadImportError, match=r"record 1 .*4 fields.*1 more"):
        import_leads(seeded_store, path, source_name="S", mapping=ColumnMapping(), now=NOW)

    assert table_counts(seeded_store) == before


def test_missing_file_is_rejected_by_name(lead_store: LeadStore, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"

    with pytest.raises(LeadImportError, match=r"nowhere\.csv: no such file"):
        import_leads(lead_store, missing, source_name="S", mapping=ColumnMapping(), now=NOW)


def test_failure_inside_the_write_rolls_back_everything_of_that_import(
    lead_store: LeadStore, tmp_path: Path
) -> None:
    # The source already has a number field `score`; the file would add `region` first,
    # then clash on `score` inside the write transaction.
    no_leads = NewLeads(
        leads=pl.DataFrame(
            schema={
                "row": pl.UInt32,
                **dict.fromkeys(LEAD_TEXT_FIELDS, pl.String),
                "created_at": pl.Datetime("us", "UTC"),
                "updated_at": pl.Datetime("us", "UTC"),
            }
        ),
        custom_values=pl.DataFrame(schema={"row": pl.UInt32, "key": pl.String, "value": pl.String}),
        attributes=pl.DataFrame(schema={"row": pl.UInt32, "key": pl.String, "value": pl.String}),
        fields=(NewField("score", "Score", "number"),),
        attribute_definitions=(),
    )
    with lead_store.writing() as connection:
        append_leads(connection, "S", no_leads, inserted_at=NOW)
    before = table_counts(lead_store)
    path = write_csv(tmp_path / "scores.csv", "First,Region,Score\nAnn,EU,12\n")

    with pytest.raises(ValueError, match="'score' is already a number field"):
        import_leads(
            lead_store,
            path,
            source_name="S",
            mapping=ColumnMapping(fields={"first_name": "First"}),
            now=NOW,
        )

    assert table_counts(lead_store) == before
    assert field_definitions(lead_store) == [("score", "Score", 0)]


# --- odd but valid files -------------------------------------------------------------


def import_edge_case(store: LeadStore, shared_data: Path, name: str) -> None:
    path = shared_data / "csv_edge_cases" / "csvkit-examples" / name
    import_leads(store, path, source_name="Edge", mapping=ColumnMapping(), now=NOW)


def test_bom_is_not_part_of_the_first_column_key(lead_store: LeadStore, shared_data: Path) -> None:
    import_edge_case(lead_store, shared_data, "test_utf8_bom.csv")

    assert [key for key, _, _ in field_definitions(lead_store)] == ["foo", "bar", "baz"]
    assert list(stored_custom_values(lead_store).values()) == [
        {"foo": "1", "bar": "2", "baz": "3"},
        {"foo": "4", "bar": "5", "baz": "ʤ"},
    ]


def test_mac_cr_line_ends_split_records_but_not_quoted_values(
    lead_store: LeadStore, shared_data: Path
) -> None:
    import_edge_case(lead_store, shared_data, "mac_newlines.csv")

    assert list(stored_custom_values(lead_store).values()) == [
        {"a": "1", "b": "2", "c": "3"},
        {"a": "Once upon\ra time", "b": "5", "c": "6"},
    ]


def test_header_with_newlines_gets_a_clean_key_and_keeps_its_label(
    lead_store: LeadStore, shared_data: Path
) -> None:
    import_edge_case(lead_store, shared_data, "test_header_newline.csv")

    definitions = field_definitions(lead_store)
    assert [key for key, _, _ in definitions] == ["start_end", "b", "c"]
    assert definitions[0][1] == "\t\n\x0b\x0c\r start \t\n\x0b\x0c\r end \t\n\x0b\x0c\r"
    assert list(stored_custom_values(lead_store).values()) == [
        {"start_end": "d", "b": "e", "c": "f"}
    ]


def test_nul_byte_is_kept_as_a_value(lead_store: LeadStore, shared_data: Path) -> None:
    import_edge_case(lead_store, shared_data, "null_byte.csv")

    assert list(stored_custom_values(lead_store).values()) == [{"a": "\x00", "b": "2", "c": "3"}]


def test_placeholder_words_like_na_and_null_are_kept_as_text(
    lead_store: LeadStore, shared_data: Path
) -> None:
    # The cells are ",NA,N/A,NONE,NULL,.": only the empty one is a missing value.
    import_edge_case(lead_store, shared_data, "blanks.csv")

    assert list(stored_custom_values(lead_store).values()) == [
        {"b": "NA", "c": "N/A", "d": "NONE", "e": "NULL", "f": "."}
    ]


def test_names_that_look_like_nulls_are_kept(lead_store: LeadStore, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "names.csv", "First,Last\nnan,NA\nnull,Null\n")
    mapping = ColumnMapping(fields={"first_name": "First", "last_name": "Last"})

    import_leads(lead_store, path, source_name="S", mapping=mapping, now=NOW)

    assert stored_leads(lead_store, "first_name, last_name") == [("nan", "NA"), ("null", "Null")]


def test_a_column_named_row_imports_as_a_custom_field(
    lead_store: LeadStore, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "rows.csv", "row,First\n7,Ann\n8,Bob\n")

    import_leads(
        lead_store,
        path,
        source_name="S",
        mapping=ColumnMapping(fields={"first_name": "First"}),
        now=NOW,
    )

    assert stored_leads(lead_store, "first_name") == [("Ann",), ("Bob",)]
    assert list(stored_custom_values(lead_store).values()) == [{"row": "7"}, {"row": "8"}]


def test_empty_cells_store_no_value(lead_store: LeadStore, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "gaps.csv", 'First,Company,Note\nAnn,,""\n,Acme,x\n')

    import_leads(
        lead_store,
        path,
        source_name="S",
        mapping=ColumnMapping(fields={"first_name": "First"}),
        now=NOW,
    )

    assert stored_leads(lead_store, "first_name") == [("Ann",), (None,)]
    assert list(stored_custom_values(lead_store).values()) == [{"company": "Acme", "note": "x"}]


# --- appending -----------------------------------------------------------------------


def test_importing_twice_appends_with_new_ids_and_reuses_field_definitions(
    lead_store: LeadStore, small_csv: Path, tmp_path: Path
) -> None:
    first = import_leads(lead_store, small_csv, source_name="S", mapping=SMALL_MAPPING, now=NOW)
    definitions = field_definitions(lead_store)

    second = import_leads(lead_store, small_csv, source_name="S", mapping=SMALL_MAPPING, now=NOW)

    assert (first.source_created, second.source_created) == (True, False)
    assert second.source_id == first.source_id
    assert field_definitions(lead_store) == definitions
    counts = table_counts(lead_store)
    assert counts["sources"] == 1
    assert counts["attribute_definitions"] == 1
    lead_ids = [lead_id for (lead_id,) in stored_leads(lead_store, "lead_id")]
    assert len(lead_ids) == len(set(lead_ids)) == 4
    assert stored_leads(lead_store, "first_name") == [("Ann",), ("Bob",), ("Ann",), ("Bob",)]

    wider = write_csv(tmp_path / "wider.csv", "First,Company,Region\nCy,Umbrella,EU\n")
    import_leads(
        lead_store,
        wider,
        source_name="S",
        mapping=ColumnMapping(fields={"first_name": "First"}),
        now=NOW,
    )
    assert field_definitions(lead_store) == [*definitions, ("region", "Region", 1)]


def test_a_second_source_gets_its_own_id_and_ids_stay_unique_across_sources(
    lead_store: LeadStore, small_csv: Path
) -> None:
    first = import_leads(lead_store, small_csv, source_name="S", mapping=SMALL_MAPPING, now=NOW)
    other = import_leads(lead_store, small_csv, source_name="T", mapping=SMALL_MAPPING, now=NOW)

    assert other.source_id != first.source_id
    rows = stored_leads(lead_store, "lead_id, source_id")
    assert [source for _, source in rows] == [first.source_id] * 2 + [other.source_id] * 2
    assert len({lead_id for lead_id, _ in rows}) == 4
    with lead_store.reading() as connection:
        slugs = connection.execute("SELECT slug FROM sources ORDER BY source_id").fetchall()
    assert slugs == [("s",), ("t",)]


# --- keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "key"),
    [
        ("Lead Owner", "lead_owner"),
        ("firstName", "first_name"),
        ("Phone 1", "phone_1"),
        ("E-mail", "e_mail"),
        ("  Deal  Stage  ", "deal_stage"),
        ("Straße", "straße"),
    ],
)
def test_snake_case_turns_column_names_into_field_keys(column: str, key: str) -> None:
    assert snake_case(column) == key
