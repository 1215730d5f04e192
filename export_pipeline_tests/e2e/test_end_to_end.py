"""Real lead files through the whole product: CLI import, HTTP request, a Dagster run
through the daemon, an expiring link and the download, checked against an oracle that
reads the input file with Python's csv module alone."""

import csv
import io
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from export_pipeline.defs.exports.tags import EXPORT_ID_TAG, REQUESTED_BY_TAG, SOURCE_ID_TAG
from export_pipeline_tests.e2e.conftest import SHARED_DATA, RunningProduct

pytestmark = pytest.mark.e2e

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def guarded(value: str) -> str:
    """The default formula guard as the README states it: a leading quote mark."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def read_input(name: str) -> list[dict[str, str]]:
    with (SHARED_DATA / "leads" / name).open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def export_and_download(
    product: RunningProduct, user: str, source_id: int, body: dict
) -> tuple[dict, bytes]:
    with product.client(user) as client:
        response = client.post(f"/sources/{source_id}/exports", json=body)
        assert response.status_code == 202, response.text
        export_id = response.json()["id"]
    started = time.monotonic()
    export = product.wait_for_export(user, export_id)
    print(f"export {export_id}: {export['status']} after {time.monotonic() - started:.1f} s")
    assert export["status"] == "completed", export
    with product.client(user) as client:
        link = client.post(f"/exports/{export_id}/links")
        assert link.status_code == 201, link.text
        download = client.get(link.json()["url"].removeprefix(product.api_url + "/api/v1"))
        assert download.status_code == 200, download.text
    return export, download.content


def parse_export(content: bytes) -> tuple[list[str], list[dict[str, str]]]:
    assert content.endswith(b"\r\n")
    reader = csv.reader(io.StringIO(content.decode("utf-8"), newline=""), strict=True)
    header, *rows = list(reader)
    return header, [dict(zip(header, row, strict=True)) for row in rows]


def assert_system_columns(rows: list[dict[str, str]], source_id: int) -> None:
    lead_ids = [int(row["lead_id"]) for row in rows]
    assert len(set(lead_ids)) == len(lead_ids)
    assert lead_ids == sorted(lead_ids)
    now = datetime.now(UTC)
    for row in rows:
        assert row["source_id"] == str(source_id)
        assert ISO_UTC.match(row["created_at"]), row["created_at"]
        created = datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
        assert now - timedelta(days=366) <= created <= now
        assert row["updated_at"] == row["created_at"]


def without_generated(row: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in row.items() if k not in ("lead_id", "created_at", "updated_at")}


DATABLIST_HEADER = [
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
    "index",
    "account_id",
    "lead_owner",
    "company",
    "phone_2",
    "email_2",
    "website",
    "notes",
    "source",
    "created_at",
    "updated_at",
    "source_id",
]


def test_datablist_export_filtered_by_two_statuses_and_an_attribute(
    running_product: RunningProduct,
):
    source_id = running_product.sources["datablist"]
    statuses, campaign = ["On Hold", "Closed Won"], "Cold Call"
    expected = [
        {
            "first_name": guarded(row["First Name"]),
            "last_name": guarded(row["Last Name"]),
            "email": guarded(row["Email 1"]),
            "phone": guarded(row["Phone 1"]),
            "address": "",
            "city": "",
            "state": "",
            "zip_code": "",
            "status": guarded(row["Deal Stage"]),
            "index": guarded(row["Index"]),
            "account_id": guarded(row["Account Id"]),
            "lead_owner": guarded(row["Lead Owner"]),
            "company": guarded(row["Company"]),
            "phone_2": guarded(row["Phone 2"]),
            "email_2": guarded(row["Email 2"]),
            "website": guarded(row["Website"]),
            "notes": guarded(row["Notes"]),
            "source": guarded(row["Source"]),
            "source_id": str(source_id),
        }
        for row in read_input("datablist_leads-10000.csv")
        if row["Deal Stage"] in statuses and row["Source"] == campaign
    ]
    assert len(expected) > 100

    started = time.monotonic()
    export, content = export_and_download(
        running_product,
        "alice",
        source_id,
        {"filters": {"statuses": statuses, "attribute": {"key": "source", "value": campaign}}},
    )
    print(f"datablist export requested to downloaded: {time.monotonic() - started:.1f} s")

    header, rows = parse_export(content)
    assert header == DATABLIST_HEADER
    assert export["lead_count"] == len(expected) == len(rows)
    assert sorted(map(without_generated, rows), key=lambda r: int(r["index"].lstrip("'"))) == (
        sorted(expected, key=lambda r: int(r["index"]))
    )
    assert_system_columns(rows, source_id)
    assert export["file_size"] == len(content)
    with dg.DagsterInstance.from_config(str(running_product.home / "dagster")) as instance:
        [run] = instance.get_runs(dg.RunsFilter(tags={EXPORT_ID_TAG: export["id"]}))
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert (run.tags[SOURCE_ID_TAG], run.tags[REQUESTED_BY_TAG]) == (str(source_id), "alice")
    assert run.tags["dagster/partition"] == export["id"]


@pytest.mark.parametrize(
    ("source", "file", "columns"),
    [
        (
            "us",
            "us-500.csv",
            {
                "first_name": "first_name",
                "last_name": "last_name",
                "email": "email",
                "phone": "phone1",
                "address": "address",
                "city": "city",
                "state": "state",
                "zip_code": "zip",
                "company_name": "company_name",
                "county": "county",
                "phone2": "phone2",
                "web": "web",
            },
        ),
        (
            "uk",
            "uk-500.csv",
            {
                "first_name": "firstName",
                "last_name": "lastName",
                "email": "email",
                "phone": "phone1",
                "address": "address",
                "city": "city",
                "zip_code": "postal",
                "company_name": "companyName",
                "county": "county",
                "phone2": "phone2",
                "web": "web",
            },
        ),
    ],
)
def test_whole_source_export_keeps_phones_and_zip_codes_exactly(
    running_product: RunningProduct, source: str, file: str, columns: dict[str, str]
):
    source_id = running_product.sources[source]
    expected = []
    for row in read_input(file):
        lead = dict.fromkeys(("address", "city", "state", "zip_code", "status"), "")
        lead.update({key: guarded(row[column]) for key, column in columns.items()})
        lead["source_id"] = str(source_id)
        expected.append(lead)

    export, content = export_and_download(running_product, "alice", source_id, {})

    header, rows = parse_export(content)
    assert header == [
        *DATABLIST_HEADER[:10],
        *("company_name", "county", "phone2", "web"),
        *DATABLIST_HEADER[-3:],
    ]
    assert export["lead_count"] == len(expected) == 500
    actual = sorted(map(without_generated, rows), key=lambda r: (r["email"], r["first_name"]))
    assert actual == sorted(expected, key=lambda r: (r["email"], r["first_name"]))
    phones_with_leading_zero = sum(
        row[columns["phone"]].startswith("0") for row in read_input(file)
    )
    assert sum(row["phone"].startswith("0") for row in rows) == phones_with_leading_zero
    assert sorted(row["zip_code"] for row in rows) == sorted(
        row[columns["zip_code"]] for row in read_input(file)
    )
    assert_system_columns(rows, source_id)


def test_users_without_permission_get_404_for_everything_of_the_source(
    running_product: RunningProduct,
):
    source_id = running_product.sources["datablist"]
    export, _ = export_and_download(
        running_product, "alice", source_id, {"filters": {"statuses": ["Closed Lost"]}}
    )
    with running_product.client("alice") as alice:
        token = alice.post(f"/exports/{export['id']}/links").json()["token"]

    with running_product.client("mallory") as mallory:
        assert mallory.get(f"/sources/{source_id}/exports").status_code == 404
        assert mallory.post(f"/sources/{source_id}/exports", json={}).status_code == 404
        assert mallory.get(f"/exports/{export['id']}").status_code == 404
        assert mallory.post(f"/exports/{export['id']}/links").status_code == 404
        refused = mallory.get(f"/downloads/{token}")
        assert refused.status_code == 404
        assert b"lead_id" not in refused.content
        assert mallory.get(f"/downloads/{uuid.uuid4()}").status_code == 404
    with running_product.client("alice") as alice:
        assert alice.get(f"/downloads/{uuid.uuid4()}").status_code == 404
        assert alice.get(f"/downloads/{token}").status_code == 200


def logged_bytes(product: RunningProduct) -> bytes:
    """Everything the services logged: serve's output (API, webserver, daemon) and every
    file of Dagster's home, where run workers' event logs and compute logs live."""
    chunks = [(product.home / "serve.log").read_bytes()]
    chunks += [
        path.read_bytes() for path in (product.home / "dagster").rglob("*") if path.is_file()
    ]
    return b"\n".join(chunks)


def test_logs_hold_no_token_api_key_or_lead_value(running_product: RunningProduct):
    source_id = running_product.sources["datablist"]
    with running_product.client("alice") as alice:
        export_id = alice.post(
            f"/sources/{source_id}/exports", json={"filters": {"statuses": ["Negotiation"]}}
        ).json()["id"]
    running_product.wait_for_export("alice", export_id)
    with running_product.client("alice") as alice:
        link = alice.post(f"/exports/{export_id}/links").json()
        content = alice.get(f"/downloads/{link['token']}").content
        refused = alice.get(f"/downloads/{uuid.uuid4()}")
    assert refused.status_code == 404
    _, rows = parse_export(content)
    assert rows
    values = {
        row[column]
        for row in rows
        for column in ("email", "phone", "company", "notes", "website", "email_2")
        if len(row[column]) >= 8
    }

    logged = logged_bytes(running_product)

    assert export_id.encode() in logged, "the logs should at least name the export"
    for secret in (link["token"], running_product.keys["alice"]):
        assert secret.encode() not in logged
    leaked = sorted(value for value in values if value.encode() in logged)
    assert leaked == []
