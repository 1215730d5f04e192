"""Export filters checked against a reference written from the README's "Filters" section.

Each of the four files of `../shared/data/leads/` is imported with the real importer from
a temporary copy that adds a `Created` column, so that creation times sit on and just
before the midnights of UTC, UTC+2, UTC-7 and New York around the 2024 daylight saving
changes (New York's 2024-03-10 lasts 23 hours, its 2024-11-03 lasts 25). relaticle's
single `name` column is split at its space into `First` and `Last` in that copy, so
that first, last and full name searches apply to it too; `name` stays a custom field.

The reference reads the same copy with the `csv` module and applies the README's rules
in plain Python, one lead at a time; it uses no product code. Every case exports with
the formula guard off and compares the multiset of exported leads with the reference's.
"""

from __future__ import annotations

import csv
import io
import random
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from export_pipeline.engine.export import stream_export
from export_pipeline.engine.filters import AttributeFilter, ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import read_catalog
from export_pipeline.leads.importer import ColumnMapping, import_leads
from export_pipeline.leads.store import LeadStore

LEADS_FOLDER = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "leads"

IMPORTED_AT = datetime(2024, 3, 1, tzinfo=UTC)
REQUESTED_AT = datetime(2025, 1, 1, tzinfo=UTC)
# In the middle of the November leads: between New York's two 01:30s of 2024-11-03.
MID_RANGE_CUTOFF = datetime(2024, 11, 3, 6, 0, tzinfo=UTC)
BEFORE_IMPORT = datetime(2024, 2, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)

ZONES = ("UTC", "Etc/GMT-2", "America/Phoenix", "America/New_York")
DAYS = tuple(date(2024, 3, day) for day in range(8, 15)) + tuple(
    date(2024, 11, day) for day in range(1, 8)
)
SPREAD_WINDOWS = (
    (datetime(2024, 3, 9, tzinfo=UTC), datetime(2024, 3, 13, tzinfo=UTC)),
    (datetime(2024, 11, 2, tzinfo=UTC), datetime(2024, 11, 6, tzinfo=UTC)),
)
# Leads created before the import, so that a request between the two has leads that
# were created in time but arrived too late.
EARLY_LEADS = tuple(datetime(2024, 1, 15, 9, tzinfo=UTC) + timedelta(hours=h) for h in range(5))
OFFSET_BOUNDS = (
    "2024-03-10T08:00:00+02:00",
    "2024-03-10T01:59:59.999999-05:00",
    "2024-11-03T01:30:00-04:00",
    "2024-11-03T01:30:00-05:00",
    "2024-11-04T00:00:00Z",
)
WALL_CLOCK_BOUNDS = (("2024-03-10T12:00:00", "America/New_York"),)

PHONE_PUNCTUATION = frozenset(" +-()./")


# --- the files and how they are imported ---------------------------------------------


@dataclass(frozen=True)
class LeadFile:
    """One sample file: which columns play which role, and what its cases look for."""

    name: str
    file_name: str
    columns: dict[str, str]
    status_column: str
    attribute_column: str
    attribute_key: str
    attribute_header: str
    one_status: str
    several_statuses: tuple[str, ...]
    attribute_value: str
    searches: tuple[tuple[str, str, bool], ...]
    """(case name, search text, whether some lead matches)."""
    split_name_column: str | None = None


LEAD_FILES = (
    LeadFile(
        name="datablist",
        file_name="datablist_leads-10000.csv",
        columns={
            "first_name": "First Name",
            "last_name": "Last Name",
            "email": "Email 1",
            "phone": "Phone 1",
        },
        status_column="Deal Stage",
        attribute_column="Source",
        attribute_key="source",
        attribute_header="source",
        one_status="Closed Won",
        several_statuses=("On Hold", "Re-engagement", "New Lead"),
        attribute_value="Organic Search (SEO)",
        searches=(
            ("first-name-other-case", "mITCHELL", True),
            ("full-name-other-case", "JAIME hayes", True),
            ("email-part", "stephens@shep", True),
            ("phone-brackets-for-dots", "(369) 329-69", True),
            ("phone-spaces-for-brackets", "704 585 77", True),
            ("phone-plus-one-for-dashes", "+1 802 953 3859", True),
            ("phone-extension-literal", "x15419", True),
            ("underscore-literal", "_", False),
            ("percent-literal", "%", False),
            ("quote-literal", "o'brien", False),
            ("backslash-literal", "\\", False),
        ),
    ),
    LeadFile(
        name="us-500",
        file_name="us-500.csv",
        columns={
            "first_name": "first_name",
            "last_name": "last_name",
            "email": "email",
            "phone": "phone1",
            "address": "address",
            "state": "state",
            "zip_code": "zip",
        },
        status_column="county",
        attribute_column="city",
        attribute_key="city",
        attribute_header="attribute_city",
        one_status="Los Angeles",
        several_statuses=("New York", "Cook", "Miami-Dade"),
        attribute_value="New York",
        searches=(
            ("last-name-other-case", "BUTT", True),
            ("full-name-other-case", "josephine DARAKJY", True),
            ("email-with-underscore-literal", "josephine_darakjy@", True),
            ("underscore-between-letters-literal", "N_D", True),
            ("phone-brackets-for-dashes", "(504) 621-89", True),
            ("percent-literal", "100%", False),
            ("quote-literal", "'", False),
            ("backslash-literal", "a\\b", False),
        ),
    ),
    LeadFile(
        name="uk-500",
        file_name="uk-500.csv",
        columns={
            "first_name": "firstName",
            "last_name": "lastName",
            "email": "email",
            "phone": "phone1",
            "address": "address",
            "zip_code": "postal",
        },
        status_column="county",
        attribute_column="city",
        attribute_key="city",
        attribute_header="attribute_city",
        one_status="Kent",
        several_statuses=("Yorkshire, South", "Yorkshire, West", "Greater London"),
        attribute_value="Broxburn, Uphall and Winchburg",
        searches=(
            ("first-name-other-case", "ALESHIA", True),
            ("full-name-other-case", "Evan zigomalas", True),
            ("email-part", "@HOTMAIL.", True),
            ("underscore-literal", "_", True),
            ("phone-brackets-for-dash", "(01835) 703 5", True),
            ("phone-leading-zero-kept", "01937-86", True),
            ("percent-literal", "%", False),
            ("quote-literal", "o'", False),
            ("backslash-literal", "\\", False),
        ),
    ),
    LeadFile(
        name="relaticle",
        file_name="relaticle_people_3453.csv",
        columns={"first_name": "First", "last_name": "Last", "email": "email", "phone": "phone"},
        status_column="job_title",
        attribute_column="company_name",
        attribute_key="company_name",
        attribute_header="company_name",
        one_status="CTO",
        several_statuses=("CEO", "CFO", "COO"),
        attribute_value="Quantum Dynamics",
        searches=(
            ("full-name-other-case", "ashley MARTIN", True),
            ("last-name-other-case", "wALKER", True),
            ("email-part-shared-by-duplicates", "@business.org", True),
            ("phone-brackets-for-dashes", "(722) 889-56", True),
            ("phone-spaces-without-plus", "1 287 724", True),
            ("underscore-literal", "_", False),
            ("percent-literal", "5%", False),
            ("quote-literal", "'", False),
            ("backslash-literal", "\\", False),
        ),
        split_name_column="name",
    ),
)


def creation_times(count: int, seed: int) -> list[datetime]:
    """`count` creation instants in a shuffled order: every boundary instant of the cases
    and the moment before it, a few leads from before the import, and the rest spread
    evenly over the two windows around the daylight saving changes."""
    boundaries = {
        datetime.combine(day, datetime.min.time(), ZoneInfo(zone)) for zone in ZONES for day in DAYS
    }
    boundaries |= {datetime.fromisoformat(text) for text in OFFSET_BOUNDS}
    boundaries |= {
        datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))
        for text, zone in WALL_CLOCK_BOUNDS
    }
    boundaries |= {MID_RANGE_CUTOFF + ONE_MICROSECOND}
    special = sorted(
        {
            moment.astimezone(UTC) - shift
            for moment in boundaries
            for shift in (timedelta(0), ONE_MICROSECOND)
        }
    )
    special.extend(EARLY_LEADS)
    spread_count = count - len(special)
    assert spread_count > 0
    moments = list(special)
    for index in range(spread_count):
        start, end = SPREAD_WINDOWS[index % 2]
        step = (end - start) / ((spread_count + 1) // 2)
        moments.append(start + step * (index // 2) + timedelta(seconds=7))
    random.Random(seed).shuffle(moments)
    return moments


def write_copy_with_created(lead_file: LeadFile, folder: Path) -> Path:
    """A copy of the file with a `Created` column (and relaticle's name split in two)."""
    source = LEADS_FOLDER / lead_file.file_name
    with source.open(encoding="utf-8", newline="") as text:
        rows = list(csv.DictReader(text))
    header = list(rows[0])
    if lead_file.split_name_column:
        header += ["First", "Last"]
        for row in rows:
            row["First"], row["Last"] = row[lead_file.split_name_column].split(" ", 1)
    header.append("Created")
    for row, moment in zip(rows, creation_times(len(rows), seed=len(rows)), strict=True):
        row["Created"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    copy = folder / lead_file.file_name
    with copy.open("w", encoding="utf-8", newline="") as text:
        writer = csv.DictWriter(text, header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return copy


# --- the reference -------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceLead:
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    status: str | None
    tag: str | None
    created_at: datetime

    def identity(self) -> tuple[str, ...]:
        """The lead as the export writes it; a missing value reads as ""."""
        texts = (self.first_name, self.last_name, self.email, self.phone, self.status, self.tag)
        return (*(text or "" for text in texts), self.created_at.isoformat())


def read_reference_leads(lead_file: LeadFile, copy: Path) -> list[ReferenceLead]:
    """The copy's rows as leads; an empty cell is a missing value, as the importer says."""

    def cell(row: dict[str, str], column: str | None) -> str | None:
        return (row[column] or None) if column else None

    with copy.open(encoding="utf-8", newline="") as text:
        return [
            ReferenceLead(
                first_name=cell(row, lead_file.columns.get("first_name")),
                last_name=cell(row, lead_file.columns.get("last_name")),
                email=cell(row, lead_file.columns.get("email")),
                phone=cell(row, lead_file.columns.get("phone")),
                status=cell(row, lead_file.status_column),
                tag=cell(row, lead_file.attribute_column),
                created_at=datetime.fromisoformat(row["Created"]).astimezone(UTC),
            )
            for row in csv.DictReader(text)
        ]


@dataclass(frozen=True)
class Case:
    name: str
    matches_some: bool
    statuses: tuple[str, ...] = ()
    time_zone: str = "UTC"
    created_from: str | None = None
    created_to: str | None = None
    attribute_key: str | None = None
    attribute_value: str | None = None
    search: str | None = None
    requested_at: datetime = REQUESTED_AT

    def export_filters(self) -> ExportFilters:
        attribute = None
        if self.attribute_key is not None:
            attribute = AttributeFilter(key=self.attribute_key, value=self.attribute_value)
        return ExportFilters(
            statuses=list(self.statuses),
            time_zone=self.time_zone,
            created_from=self.created_from,
            created_to=self.created_to,
            attribute=attribute,
            search=self.search,
        )


def reference_instant(text: str, zone_name: str) -> datetime:
    """A README bound as a UTC instant: a date is the start of that day in the zone, a
    timestamp without offset a wall-clock time there, one with an offset as given."""
    zone = ZoneInfo(zone_name)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        year, month, day = (int(part) for part in text.split("-"))
        return datetime(year, month, day, tzinfo=zone).astimezone(UTC)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def folded(text: str) -> str:
    """Each character lowercased on its own (its first character, for the one letter
    whose lowercase is two), and the final sigma taken as sigma."""
    return "".join(c.lower()[0] for c in text).replace("\u03c2", "\u03c3")


def reference_search(lead: ReferenceLead, search: str) -> bool:
    """A case-insensitive literal substring of a name, the full name, email or phone;
    a text of digits and phone punctuation also matches a phone on digits alone."""
    full_name = " ".join(part for part in (lead.first_name, lead.last_name) if part)
    texts = [lead.first_name, lead.last_name, full_name, lead.email, lead.phone]
    if any(text and folded(search) in folded(text) for text in texts):
        return True
    is_phone_like = any(c.isdigit() for c in search) and all(
        c in "0123456789" or c in PHONE_PUNCTUATION for c in search
    )
    if not is_phone_like or lead.phone is None:
        return False
    digits = "".join(c for c in search if c in "0123456789")
    return digits in "".join(c for c in lead.phone if c in "0123456789")


def reference_matches(lead: ReferenceLead, case: Case) -> bool:
    if case.statuses and lead.status not in case.statuses:
        return False
    if case.created_from and lead.created_at < reference_instant(case.created_from, case.time_zone):
        return False
    if case.created_to and lead.created_at >= reference_instant(case.created_to, case.time_zone):
        return False
    if case.attribute_key is not None:
        if lead.tag is None:
            return False
        if case.attribute_value is not None and lead.tag != case.attribute_value:
            return False
    if case.search is not None and not reference_search(lead, case.search):
        return False
    # Created after the request, or imported after it: never in the file.
    return lead.created_at <= case.requested_at and case.requested_at >= IMPORTED_AT


# --- the cases -----------------------------------------------------------------------


def in_window(name: str, zone: str, start: str, end: str, **more: object) -> Case:
    """A case over `[start, end)` in `zone` that selects some leads."""
    return Case(name, True, time_zone=zone, created_from=start, created_to=end, **more)


def cases_for(lead_file: LeadFile) -> list[Case]:
    new_york, utc_plus_2, phoenix = "America/New_York", "Etc/GMT-2", "America/Phoenix"
    key, value = lead_file.attribute_key, lead_file.attribute_value
    several = lead_file.several_statuses
    cases = [
        Case("no-filters", True),
        Case("one-status", True, statuses=(lead_file.one_status,)),
        Case("several-statuses", True, statuses=several),
        in_window("utc-day", "UTC", "2024-03-10", "2024-03-11"),
        Case("utc-from-only", True, created_from="2024-11-05"),
        Case("utc-to-only", True, created_to="2024-03-09"),
        Case("same-bound-is-empty", False, created_from="2024-03-10", created_to="2024-03-10"),
        Case("month-without-leads", False, created_from="2024-06-01", created_to="2024-07-01"),
        in_window("utc-plus-2-day", utc_plus_2, "2024-03-10", "2024-03-11"),
        in_window("utc-plus-2-november", utc_plus_2, "2024-11-03", "2024-11-05"),
        in_window("utc-minus-7-day", phoenix, "2024-03-10", "2024-03-11"),
        in_window("utc-minus-7-november", phoenix, "2024-11-02", "2024-11-04"),
        in_window("new-york-23-hour-day", new_york, "2024-03-10", "2024-03-11"),
        in_window("new-york-day-before-spring", new_york, "2024-03-09", "2024-03-10"),
        in_window("new-york-day-after-spring", new_york, "2024-03-11", "2024-03-12"),
        in_window("new-york-25-hour-day", new_york, "2024-11-03", "2024-11-04"),
        in_window("new-york-day-before-fall", new_york, "2024-11-02", "2024-11-03"),
        in_window("new-york-day-after-fall", new_york, "2024-11-04", "2024-11-05"),
        in_window("new-york-both-changes", new_york, "2024-03-09", "2024-11-05"),
        in_window("new-york-wall-clock", new_york, "2024-03-10T12:00:00", "2024-03-11"),
        in_window("offsets-across-months", new_york, OFFSET_BOUNDS[0], OFFSET_BOUNDS[2]),
        in_window("offsets-repeated-hour", phoenix, OFFSET_BOUNDS[2], OFFSET_BOUNDS[3]),
        in_window("offset-and-z", "UTC", OFFSET_BOUNDS[1], OFFSET_BOUNDS[4]),
        Case("attribute-key", True, attribute_key=key),
        Case("attribute-value", True, attribute_key=key, attribute_value=value),
        Case("cutoff-mid-range", True, requested_at=MID_RANGE_CUTOFF),
        Case("cutoff-before-import", False, requested_at=BEFORE_IMPORT),
        in_window(
            "statuses-and-new-york-25-hour-day",
            new_york,
            "2024-11-03",
            "2024-11-04",
            statuses=several,
        ),
        in_window(
            "attribute-value-and-utc-plus-2-range",
            utc_plus_2,
            "2024-03-09",
            "2024-11-05",
            attribute_key=key,
            attribute_value=value,
        ),
        in_window(
            "statuses-range-and-cutoff",
            phoenix,
            "2024-11-02",
            "2024-11-06",
            statuses=several,
            requested_at=MID_RANGE_CUTOFF,
        ),
        Case("status-and-attribute-key", True, statuses=(lead_file.one_status,), attribute_key=key),
    ]
    for name, text, matches_some in lead_file.searches:
        cases.append(Case(f"search-{name}", matches_some, search=text))
    first_search = lead_file.searches[0][1]
    cases.append(Case("search-and-attribute-key", True, attribute_key=key, search=first_search))
    return cases


CASES = [
    pytest.param(lead_file, case, id=f"{lead_file.name}-{case.name}")
    for lead_file in LEAD_FILES
    for case in cases_for(lead_file)
]


# --- the stores ----------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedFile:
    store: LeadStore
    source_id: int
    reference: list[ReferenceLead]


@pytest.fixture(scope="module")
def imported_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ImportedFile]:
    """Each file imported once into a lead store of its own, with its reference leads."""
    if not LEADS_FOLDER.is_dir():
        pytest.skip(f"the shared sample leads folder {LEADS_FOLDER} does not exist")
    folder = tmp_path_factory.mktemp("filters_against_reference")
    imported = {}
    for lead_file in LEAD_FILES:
        copy = write_copy_with_created(lead_file, folder)
        store = LeadStore(folder / f"{lead_file.name}.duckdb")
        mapping = ColumnMapping(
            fields=dict(lead_file.columns),
            status_column=lead_file.status_column,
            attribute_columns=(lead_file.attribute_column,),
            created_at_column="Created",
        )
        result = import_leads(
            store, copy, source_name=lead_file.name, mapping=mapping, now=IMPORTED_AT
        )
        imported[lead_file.name] = ImportedFile(
            store, result.source_id, read_reference_leads(lead_file, copy)
        )
    return imported


def export_rows(imported: ImportedFile, case: Case) -> tuple[int, list[dict[str, str]]]:
    frozen = freeze_filters(case.export_filters(), requested_at=case.requested_at)
    out = io.BytesIO()
    with imported.store.reading() as connection:
        catalog = read_catalog(connection, imported.source_id)
        assert catalog is not None
        count = stream_export(connection, catalog, frozen, ExportOptions(formula_guard=False), out)
    return count, list(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8"), newline="")))


def exported_identity(row: dict[str, str], attribute_header: str) -> tuple[str, ...]:
    texts = (row[name] for name in ("first_name", "last_name", "email", "phone", "status"))
    created_at = datetime.fromisoformat(row["created_at"]).astimezone(UTC)
    return (*texts, row[attribute_header], created_at.isoformat())


# --- the tests -----------------------------------------------------------------------


@pytest.mark.parametrize(("lead_file", "case"), CASES)
def test_export_holds_exactly_the_leads_the_reference_filter_selects(
    imported_files: dict[str, ImportedFile], lead_file: LeadFile, case: Case
) -> None:
    imported = imported_files[lead_file.name]
    expected = Counter(
        lead.identity() for lead in imported.reference if reference_matches(lead, case)
    )

    count, rows = export_rows(imported, case)

    assert bool(expected) == case.matches_some, "the case no longer checks what it says"
    assert count == len(rows) == sum(expected.values())
    assert Counter(exported_identity(row, lead_file.attribute_header) for row in rows) == expected
    lead_ids = [int(row["lead_id"]) for row in rows]
    assert lead_ids == sorted(lead_ids)


@pytest.mark.parametrize("lead_file", LEAD_FILES, ids=[f.name for f in LEAD_FILES])
def test_every_file_has_cases_that_select_some_leads_and_cases_that_select_none(
    lead_file: LeadFile,
) -> None:
    outcomes = {case.matches_some for case in cases_for(lead_file)}

    assert outcomes == {True, False}


def test_imported_creation_times_are_the_ones_the_reference_reads(
    imported_files: dict[str, ImportedFile],
) -> None:
    for name, imported in imported_files.items():
        with imported.store.reading() as connection:
            stored = connection.execute(
                "SELECT created_at FROM leads WHERE source_id = ? ORDER BY lead_id",
                [imported.source_id],
            ).fetchall()
        assert [moment for (moment,) in stored] == [
            lead.created_at for lead in imported.reference
        ], name


@pytest.mark.parametrize(
    ("day", "hours"),
    [("2024-03-09", 24), ("2024-03-10", 23), ("2024-11-03", 25), ("2024-11-04", 24)],
)
def test_reference_new_york_days_around_daylight_saving_last_23_or_25_hours(
    day: str, hours: int
) -> None:
    start = reference_instant(day, "America/New_York")
    next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()

    assert reference_instant(next_day, "America/New_York") - start == timedelta(hours=hours)


def test_leads_sit_on_and_just_before_every_local_midnight_of_the_checked_days() -> None:
    moments = set(creation_times(500, seed=1))

    for zone in ZONES:
        for day in DAYS:
            midnight = reference_instant(day.isoformat(), zone)
            assert {midnight, midnight - ONE_MICROSECOND} <= moments, (zone, day)
