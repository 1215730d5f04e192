"""The production configuration end to end: the status table on PostgreSQL, export
files on S3 (moto's S3 server on loopback), a real Dagster run of the export asset, and
the download over HTTP from the API, which streams the object back from S3."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from export_pipeline.api.main import create_app
from export_pipeline.definitions import build_definitions
from export_pipeline.defs.exports.tags import export_run_tags
from export_pipeline.leads.importer import import_leads
from export_pipeline.leads.store import LeadStore
from export_pipeline.status.database import make_engine, make_session_factory, migrate
from export_pipeline.status.models import Role
from export_pipeline.status.users import create_user, grant_role, issue_api_key
from export_pipeline.storage import ExportStorage
from export_pipeline_tests.api.conftest import ACME_CSV, MAPPING, ApiServer, api_settings

pytestmark = pytest.mark.postgres


def test_an_export_writes_to_s3_records_on_postgres_and_downloads_over_http(
    tmp_path: Path, postgres_url: str, s3_storage: tuple[str, dict[str, Any]]
):
    storage_url, storage_options = s3_storage
    settings = api_settings(
        tmp_path / "home",
        database_url=postgres_url,
        storage_url=storage_url,
        storage_options=storage_options,
    )
    leads_csv = tmp_path / "acme.csv"
    leads_csv.write_text(ACME_CSV, encoding="utf-8")
    source_id = import_leads(
        LeadStore(settings.lead_store_path), leads_csv, source_name="Acme", mapping=MAPPING
    ).source_id
    engine = make_engine(postgres_url)
    migrate(engine)
    with make_session_factory(engine)() as session:
        user = create_user(session, "ada")
        grant_role(session, user, source_id, Role.EXPORTER)
        key = issue_api_key(session, user)
        session.commit()
    engine.dispose()

    with (
        ApiServer(create_app(settings)) as server,
        httpx.Client(
            base_url=server.base_url + "/api/v1", headers={"Authorization": f"Bearer {key}"}
        ) as api,
    ):
        requested = api.post(
            f"/sources/{source_id}/exports",
            json={"filters": {"statuses": ["new", "lost"]}, "options": {"formula_guard": False}},
        )
        export_id = requested.json()["id"]
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("exports", [export_id])
            run = build_definitions(settings).resolve_job_def("lead_export_job")
            result = run.execute_in_process(
                partition_key=export_id,
                instance=instance,
                tags=export_run_tags(export_id, source_id, "ada"),
            )
        export = api.get(f"/exports/{export_id}").json()
        link = api.post(f"/exports/{export_id}/links").json()
        download = api.get(f"/downloads/{link['token']}")

    assert requested.status_code == 202
    assert result.success
    assert export["status"] == "completed"
    assert export["lead_count"] == 2
    stored = ExportStorage(storage_url, storage_options)
    [key_of_file] = stored.fs.find(stored.root)
    assert key_of_file.endswith(export["file_name"])
    with stored.open_read(f"s3://{key_of_file}") as stream:
        in_s3 = stream.read()
    assert download.status_code == 200
    assert download.content == in_s3
    assert download.headers["ETag"] == f'"{export["sha256"]}"'
    rows = list(csv.DictReader(io.StringIO(download.content.decode("utf-8"))))
    assert [(row["first_name"], row["zip_code"]) for row in rows] == [
        ("Ada", "02134"),
        ("Bert", "10001"),
    ]
