"""Property: whatever text a lead holds comes back out of an export exactly as the README
promises.

With the formula guard off, a strict RFC 4180 reading of the file gives back every stored
value, a missing value and an empty string still told apart. With the guard on, every
text cell is quoted and exactly the cells a spreadsheet would run gain a leading `'`.

Each example builds its own in-memory DuckDB lead store with the real schema and writer.
Values mix arbitrary Unicode with the fields and raw lines of the csv-spectrum and
csvkit sample files (each decoded from its own encoding) and the formula payloads of
`../shared/data/injection`; two tests without chance put every one of those sample
values in every text column.

NUL (`\\x00`) is included on purpose: DuckDB keeps it inside VARCHAR values and Polars
writes it through unchanged, so it must round-trip like any other character. Only lone
surrogates are excluded, since they cannot be encoded as UTF-8 at all.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from export_pipeline.engine.export import stream_export
from export_pipeline.engine.filters import ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import read_catalog
from export_pipeline.leads.store import SCHEMA
from export_pipeline.leads.writer import (
    LEAD_TEXT_FIELDS,
    NewAttribute,
    NewField,
    NewLeads,
    append_leads,
)

# Computed like the `shared_data` fixture, which hypothesis tests cannot use: a
# function-scoped fixture would be shared by every generated example.
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
if not SHARED_DATA.is_dir():
    pytest.skip(
        f"the shared sample data folder {SHARED_DATA} does not exist", allow_module_level=True
    )

INSERTED_AT = datetime(2024, 6, 1, tzinfo=UTC)
REQUESTED_AT = datetime(2300, 1, 1, tzinfo=UTC)
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# The custom field `email` and the attribute `notes` collide with a system field and a
# custom field, so the header also checks the README's prefix rule.
CUSTOM_FIELDS = (
    NewField("company", "Company"),
    NewField("email", "Second e-mail"),
    NewField("notes", "Notes"),
)
ATTRIBUTES = (NewAttribute("campaign", "Campaign"), NewAttribute("notes", "Notes tag"))
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
    "custom_email",
    "notes",
    "campaign",
    "attribute_notes",
    "created_at",
    "updated_at",
    "source_id",
]
CUSTOM_HEADERS = {"company": "company", "email": "custom_email", "notes": "notes"}
ATTRIBUTE_HEADERS = {"campaign": "campaign", "notes": "attribute_notes"}
TIMESTAMP_COLUMNS = ("created_at", "updated_at")
NUMBER_COLUMNS = ("lead_id", "source_id")


# --- sample values -------------------------------------------------------------------


def _csv_fields(text: str) -> list[str]:
    return [field for record in csv.reader(io.StringIO(text, newline="")) for field in record]


def _decoded(raw: bytes) -> str:
    """The text of a sample file in the encoding it was written in."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _file_values(path: Path) -> list[str]:
    """Every field of a sample file and every raw line of it, line ends kept as written."""
    text = _decoded(path.read_bytes())
    lines = [line for line in re.split(r"(?<=\r\n)|(?<=\n)|(?<=\r)(?!\n)", text) if line]
    return _csv_fields(text) + lines


def _spectrum_values() -> list[str]:
    """The csv-spectrum files (location_coordinates too: its quirk is in the expected
    parse, not in the values) and the values of their expected parses."""
    spectrum = SHARED_DATA / "csv_edge_cases" / "csv-spectrum"
    values = []
    for path in sorted((spectrum / "csvs").glob("*.csv")):
        values.extend(_file_values(path))
    for path in sorted((spectrum / "json").glob("*.json")):
        values.extend(_strings_in(json.loads(path.read_text(encoding="utf-8"))))
    return values


def _strings_in(document: object) -> list[str]:
    if isinstance(document, dict):
        return [text for value in document.values() for text in _strings_in(value)]
    if isinstance(document, list):
        return [text for value in document for text in _strings_in(value)]
    return [str(document)]


def _csvkit_values() -> list[str]:
    values = []
    for path in sorted((SHARED_DATA / "csv_edge_cases" / "csvkit-examples").glob("*.csv")):
        values.extend(_file_values(path))
    return values


def _injection_lines() -> list[str]:
    """Each payload line as written: a carriage return that starts or ends one stays."""
    lines = []
    for path in sorted((SHARED_DATA / "injection").glob("*.txt")):
        text = path.read_bytes().decode("utf-8")
        lines.extend(line for line in text.split("\n") if line)
    return lines


INJECTION_LINES = _injection_lines()
SAMPLE_VALUES = sorted(set(_spectrum_values() + _csvkit_values() + INJECTION_LINES))
assert INJECTION_LINES, "the injection folder holds no payload lines"
assert any("\x00" in value for value in SAMPLE_VALUES), "csvkit's null_byte.csv was not read"
assert "\u00a9" in "".join(SAMPLE_VALUES), "csvkit's test_latin1.csv was not decoded"
assert any("\r\n" in value for value in SAMPLE_VALUES), "CRLF inside values was lost"


# --- a strict RFC 4180 reader ----------------------------------------------------------


class CsvSyntaxError(ValueError):
    """The text is not RFC 4180 with CRLF record ends."""


class Cell(NamedTuple):
    text: str
    quoted: bool


def read_cells(data: str) -> list[list[Cell]]:
    """Every record of `data` as cells that remember whether they were quoted.

    Fields are separated by `,` and every record ends with CRLF. A quoted field may
    hold anything, with `"` written as `""`; an unquoted field may hold anything but
    `,`, `"`, CR and LF. Anything else raises `CsvSyntaxError`.
    """
    records: list[list[Cell]] = []
    record: list[Cell] = []
    position = 0
    while position < len(data):
        if data[position] == '"':
            cell, position = _quoted_cell(data, position + 1)
        else:
            end = position
            while end < len(data) and data[end] not in ',"\r\n':
                end += 1
            cell, position = Cell(data[position:end], quoted=False), end
        record.append(cell)
        if data.startswith(",", position):
            position += 1
            if position == len(data):
                msg = "the data ends right after a comma"
                raise CsvSyntaxError(msg)
        elif data.startswith("\r\n", position):
            records.append(record)
            record = []
            position += 2
        else:
            found = repr(data[position]) if position < len(data) else "the end of the data"
            msg = f"expected ',' or CRLF at offset {position}, found {found}"
            raise CsvSyntaxError(msg)
    return records


def _quoted_cell(data: str, start: int) -> tuple[Cell, int]:
    parts = []
    position = start
    while True:
        quote = data.find('"', position)
        if quote < 0:
            msg = f"the quoted field opened at offset {start - 1} is never closed"
            raise CsvSyntaxError(msg)
        parts.append(data[position:quote])
        if not data.startswith('""', quote):
            return Cell("".join(parts), quoted=True), quote + 1
        parts.append('"')
        position = quote + 2


def parse_rfc4180(data: str) -> list[list[str | None]]:
    """The records of `data`; an unquoted empty field is None, a quoted one `""`."""
    return [
        [None if not cell.quoted and cell.text == "" else cell.text for cell in record]
        for record in read_cells(data)
    ]


def test_strict_reader_tells_missing_from_empty_and_unescapes_quotes() -> None:
    data = 'a,"b ""c"", d\r\ne",,""\r\n'

    assert parse_rfc4180(data) == [["a", 'b "c", d\r\ne', None, ""]]


@pytest.mark.parametrize(
    "data",
    [
        "a,b",
        "a,b\n",
        "a\rb\r\n",
        'a"b\r\n',
        '"a"b\r\n',
        '"a\r\n',
        "a,\r\nb\rc\r\n",
        "a,",
    ],
    ids=[
        "no-final-crlf",
        "bare-lf",
        "bare-cr-unquoted",
        "quote-in-unquoted-field",
        "text-after-closing-quote",
        "unclosed-quote",
        "bare-cr-in-second-record",
        "trailing-comma-at-end",
    ],
)
def test_strict_reader_rejects_what_rfc_4180_with_crlf_does_not_allow(data: str) -> None:
    with pytest.raises(CsvSyntaxError):
        read_cells(data)


# --- generated leads -----------------------------------------------------------------

_ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_FORMULA_LIKE = st.builds(
    lambda trigger, rest: trigger + rest, st.sampled_from(FORMULA_TRIGGERS), _ANY_TEXT
)
# None is a missing value; "" an empty string the export must keep distinct.
values = st.one_of(st.none(), st.just(""), _ANY_TEXT, _FORMULA_LIKE, st.sampled_from(SAMPLE_VALUES))
moments = st.datetimes(
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


class Lead(NamedTuple):
    fields: dict[str, str | None]
    custom: dict[str, str | None]
    attributes: dict[str, str | None]
    created_at: datetime
    updated_at: datetime


leads_strategy = st.lists(
    st.builds(
        Lead,
        fields=st.fixed_dictionaries(dict.fromkeys(LEAD_TEXT_FIELDS, values)),
        custom=st.fixed_dictionaries({field.key: values for field in CUSTOM_FIELDS}),
        attributes=st.fixed_dictionaries({a.key: values for a in ATTRIBUTES}),
        created_at=moments,
        updated_at=moments,
    ),
    min_size=1,
    max_size=6,
)


def _long(rows: list[tuple[int, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "row": pl.Series([row for row, _, _ in rows], dtype=pl.UInt32),
            "key": pl.Series([key for _, key, _ in rows], dtype=pl.String),
            "value": pl.Series([value for _, _, value in rows], dtype=pl.String),
        }
    )


def new_leads(leads: list[Lead]) -> NewLeads:
    """The leads as the writer takes them; a missing custom value or attribute gets no
    row at all, an empty one a row with `""`."""
    frame = pl.DataFrame(
        {
            "row": pl.Series(range(len(leads)), dtype=pl.UInt32),
            **{
                name: pl.Series([lead.fields[name] for lead in leads], dtype=pl.String)
                for name in LEAD_TEXT_FIELDS
            },
            "created_at": pl.Series(
                [lead.created_at for lead in leads], dtype=pl.Datetime("us", "UTC")
            ),
            "updated_at": pl.Series(
                [lead.updated_at for lead in leads], dtype=pl.Datetime("us", "UTC")
            ),
        }
    )
    custom = [
        (row, key, value)
        for row, lead in enumerate(leads)
        for key, value in lead.custom.items()
        if value is not None
    ]
    attributes = [
        (row, key, value)
        for row, lead in enumerate(leads)
        for key, value in lead.attributes.items()
        if value is not None
    ]
    return NewLeads(
        leads=frame,
        custom_values=_long(custom),
        attributes=_long(attributes),
        fields=CUSTOM_FIELDS,
        attribute_definitions=ATTRIBUTES,
    )


@contextmanager
def lead_store_with(leads: list[Lead]) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory lead store holding `leads` as lead ids 1, 2, ... of source 1."""
    connection = duckdb.connect()
    try:
        connection.execute(SCHEMA)
        connection.execute("SET TimeZone = 'UTC'")
        append_leads(connection, "Property source", new_leads(leads), inserted_at=INSERTED_AT)
        yield connection
    finally:
        connection.close()


def export_text(leads: list[Lead], options: ExportOptions, batch_size: int) -> str:
    frozen = freeze_filters(ExportFilters(), requested_at=REQUESTED_AT)
    out = io.BytesIO()
    with lead_store_with(leads) as connection:
        catalog = read_catalog(connection, 1)
        assert catalog is not None
        count = stream_export(connection, catalog, frozen, options, out, batch_size=batch_size)
    assert count == len(leads)
    return out.getvalue().decode("utf-8")


def stored_cells(lead: Lead, lead_id: int) -> dict[str, Any]:
    """The lead's text cells by header, as stored: None for missing."""
    cells: dict[str, Any] = {"lead_id": str(lead_id), "source_id": "1", **lead.fields}
    cells.update({CUSTOM_HEADERS[key]: value for key, value in lead.custom.items()})
    cells.update({ATTRIBUTE_HEADERS[key]: value for key, value in lead.attributes.items()})
    return cells


def guarded(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def needs_quotes(value: str) -> bool:
    return value == "" or any(character in value for character in ',"\r\n')


def assert_timestamp(cell: str | None, stored: datetime) -> None:
    """ISO 8601 in UTC with `Z`, with a fraction exactly when there is one."""
    assert cell is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", cell), cell
    assert ("." in cell) == (stored.microsecond != 0), cell
    assert datetime.fromisoformat(cell) == stored


ROUNDTRIP_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@ROUNDTRIP_SETTINGS
@given(leads=leads_strategy, batch_size=st.sampled_from((1, 3, 100)))
def test_unguarded_export_reads_back_every_stored_value_exactly(
    leads: list[Lead], batch_size: int
) -> None:
    text = export_text(leads, ExportOptions(formula_guard=False), batch_size)

    cells = read_cells(text)
    records = parse_rfc4180(text)
    assert records[0] == HEADER
    assert len(records) == 1 + len(leads)
    for lead_id, (lead, record, raw) in enumerate(
        zip(leads, records[1:], cells[1:], strict=True), start=1
    ):
        exported = dict(zip(HEADER, record, strict=True))
        quoting = dict(zip(HEADER, raw, strict=True))
        for header, value in stored_cells(lead, lead_id).items():
            assert exported[header] == value, (lead_id, header)
            if value is not None:
                assert quoting[header].quoted == needs_quotes(value), (lead_id, header)
        assert_timestamp(exported["created_at"], lead.created_at)
        assert_timestamp(exported["updated_at"], lead.updated_at)


@ROUNDTRIP_SETTINGS
@given(leads=leads_strategy, batch_size=st.sampled_from((1, 3, 100)))
def test_guarded_export_quotes_every_text_cell_and_prefixes_exactly_the_formula_cells(
    leads: list[Lead], batch_size: int
) -> None:
    text = export_text(leads, ExportOptions(), batch_size)

    cells = read_cells(text)
    assert [cell.text for cell in cells[0]] == HEADER
    assert all(cell.quoted for cell in cells[0])
    assert len(cells) == 1 + len(leads)
    for lead_id, (lead, raw) in enumerate(zip(leads, cells[1:], strict=True), start=1):
        exported = dict(zip(HEADER, raw, strict=True))
        for header, value in stored_cells(lead, lead_id).items():
            cell = exported[header]
            if value is None:
                assert cell == Cell("", quoted=False), (lead_id, header)
            elif header in NUMBER_COLUMNS:
                assert cell.text == value, (lead_id, header)
            else:
                assert cell == Cell(guarded(value), quoted=True), (lead_id, header)
        for header in TIMESTAMP_COLUMNS:
            assert exported[header].quoted, (lead_id, header)
        assert_timestamp(exported["created_at"].text, lead.created_at)
        assert_timestamp(exported["updated_at"].text, lead.updated_at)
    for record in cells:
        for cell in record:
            assert not cell.text.startswith(FORMULA_TRIGGERS), cell


# --- the injection payloads, one by one ----------------------------------------------


def payload_leads() -> list[Lead]:
    """One lead per payload line, in file order, the payload as its first name."""
    moment = datetime(2024, 5, 1, 12, tzinfo=UTC)
    return [
        Lead(
            fields={name: payload if name == "first_name" else None for name in LEAD_TEXT_FIELDS},
            custom=dict.fromkeys(CUSTOM_HEADERS),
            attributes=dict.fromkeys(ATTRIBUTE_HEADERS),
            created_at=moment,
            updated_at=moment,
        )
        for payload in INJECTION_LINES
    ]


def test_every_injection_payload_as_first_name_is_neutralised_by_default() -> None:
    text = export_text(payload_leads(), ExportOptions(), batch_size=7)

    cells = read_cells(text)
    assert len(cells) == 1 + len(INJECTION_LINES)
    for payload, record in zip(INJECTION_LINES, cells[1:], strict=True):
        first_name = record[HEADER.index("first_name")]
        assert first_name == Cell(guarded(payload), quoted=True), payload
        assert not first_name.text.startswith(FORMULA_TRIGGERS), payload


def test_every_injection_payload_as_first_name_is_carried_byte_for_byte_without_guard() -> None:
    text = export_text(payload_leads(), ExportOptions(formula_guard=False), batch_size=7)

    cells = read_cells(text)
    assert len(cells) == 1 + len(INJECTION_LINES)
    for payload, record in zip(INJECTION_LINES, cells[1:], strict=True):
        first_name = record[HEADER.index("first_name")]
        assert first_name == Cell(payload, quoted=needs_quotes(payload)), payload
        if not first_name.quoted:
            assert f",{payload},".encode() in text.encode(), payload


# --- every sample value, in every text column ----------------------------------------


def sample_leads() -> list[Lead]:
    """One lead per sample value, the value in every text field, custom field and
    attribute of the lead."""
    moment = datetime(2024, 5, 1, 12, tzinfo=UTC)
    return [
        Lead(
            fields=dict.fromkeys(LEAD_TEXT_FIELDS, value),
            custom=dict.fromkeys(CUSTOM_HEADERS, value),
            attributes=dict.fromkeys(ATTRIBUTE_HEADERS, value),
            created_at=moment,
            updated_at=moment,
        )
        for value in SAMPLE_VALUES
    ]


def test_every_sample_value_in_every_text_column_reads_back_exactly_without_guard() -> None:
    leads = sample_leads()

    records = parse_rfc4180(export_text(leads, ExportOptions(formula_guard=False), 50))

    assert len(records) == 1 + len(SAMPLE_VALUES)
    for lead_id, (lead, record) in enumerate(zip(leads, records[1:], strict=True), start=1):
        exported = dict(zip(HEADER, record, strict=True))
        for header, value in stored_cells(lead, lead_id).items():
            assert exported[header] == value, (lead_id, header)


def test_every_sample_value_in_every_text_column_is_neutralised_by_default() -> None:
    leads = sample_leads()

    cells = read_cells(export_text(leads, ExportOptions(), 50))

    assert len(cells) == 1 + len(SAMPLE_VALUES)
    for lead_id, (lead, raw) in enumerate(zip(leads, cells[1:], strict=True), start=1):
        exported = dict(zip(HEADER, raw, strict=True))
        for header, value in stored_cells(lead, lead_id).items():
            if header not in NUMBER_COLUMNS:
                assert exported[header] == Cell(guarded(value), quoted=True), (lead_id, header)
